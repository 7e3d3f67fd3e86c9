/**
 * Which compilers Muster understands and which language a source is, as gcc's driver decides:
 * by the last `-x` before the file, else by its suffix (case-sensitive: `.C` is C++); the C++
 * drivers (g++, c++, clang++) also compile `.c` as C++.
 */
import { basename } from 'node:path';

export type Language = 'c' | 'c++';
export type CompilerFamily = 'gcc' | 'clang';

export interface CompilerName {
  readonly family: CompilerFamily;
  /** g++, c++, clang++ (and their triple- or version-named forms). */
  readonly cxxDriver: boolean;
}

// gcc, g++, cc, c++, clang, clang++, optionally after a target triple (`x86_64-linux-gnu-`)
// and before a version (`-12`, `-17.0`).
const driverName = /^(?:[\w.]+-)*(gcc|g\+\+|cc|c\+\+|clang|clang\+\+)(?:-\d+(?:\.\d+)*)?$/;

/** The compiler a command names, or null when Muster does not know it (then it runs as is). */
export function compilerName(compiler: string): CompilerName | null {
  const match = driverName.exec(basename(compiler));
  const name = match?.[1];
  if (name === undefined) return null;
  const family: CompilerFamily = name.startsWith('clang') ? 'clang' : 'gcc';
  return { family, cxxDriver: name.endsWith('++') };
}

const cxxSuffixes = new Set(['.cc', '.cp', '.cxx', '.cpp', '.CPP', '.c++', '.C']);

/** The suffix gcc reads a language from: from the last dot of the last path component. */
export function suffixOf(path: string): string {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash ? path.slice(dot) : '';
}

/** The language of a source by its suffix, or null when it is not C or C++ (`.s`, `.i`, `.h`…). */
export function languageBySuffix(path: string, cxxDriver: boolean): Language | null {
  const suffix = suffixOf(path);
  if (suffix === '.c') return cxxDriver ? 'c++' : 'c';
  if (cxxSuffixes.has(suffix)) return 'c++';
  return null;
}

/** The language an explicit `-x NAME` gives, or null when it is not plain C or C++ source. */
export function languageByName(name: string): Language | null {
  if (name === 'c') return 'c';
  if (name === 'c++') return 'c++';
  return null;
}

/** `dir/name.ext` → `name` + `ext` (gcc's `%b` with a new suffix: the object or depfile name). */
export function withSuffix(path: string, suffix: string): string {
  const base = basename(path);
  const dot = base.lastIndexOf('.');
  return (dot >= 0 ? base.slice(0, dot) : base) + suffix;
}
