/**
 * The environment `muster build` gives its command so that every compile reaches the launcher,
 * however the build names its compiler (docs/compile.md, "How compiles reach Muster"):
 *
 * - the masquerade directory (`dist/native/masquerade/`: gcc, g++, cc, c++, clang, clang++ as
 *   links to the native launcher, made by `npm run build`) first on `PATH`, so a Makefile that
 *   says `CC=gcc` itself still runs the launcher — distcc's and icecream's way;
 * - `CC` and `CXX`: unset → the masquerade directory's `cc` / `c++`; a bare compiler name the
 *   directory holds → that entry; anything else (an absolute path, `ccache gcc`, a name the
 *   directory does not hold) → `<launcher> <value>`, the launcher form. The directory is part of
 *   the install, not a temporary one, so configure and CMake may record these paths: they keep
 *   working after the build, through the per-user service. An install path a shell would split
 *   (a space in it) cannot be written there: make and configure split `$(CC)` at spaces, and
 *   CMake does not read shell quotes in `CC`. Then the bare names are used (`cc`, `muster-cc
 *   <value>`), found first on PATH in the masquerade directory, which also holds `muster-cc`;
 *   a configure that records them gets the plain compiler after the build;
 * - `CMAKE_C_COMPILER_LAUNCHER` / `CMAKE_CXX_COMPILER_LAUNCHER` (CMake ≥ 3.17 reads them for a
 *   new build tree): the launcher, for trees configured before with a compiler by absolute path
 *   (the service sees through a launcher whose compiler is the masquerade directory itself). A
 *   launcher of the user's own stays and runs first: `<theirs>;<launcher>` (a CMake list), so it
 *   wraps the compile and the compile still reaches the service;
 * - `MUSTER_CC_SOCKET` (this build's service) and `MUSTER_CC_MASQUERADE` (never scanned for the
 *   real compiler, so nothing loops back into the launcher).
 */
import { delimiter, join } from 'node:path';
import { packagePath } from '../../protocol/client/package-root.js';
import { MASQUERADE_ENV, SOCKET_ENV } from './shim-names.js';

/** The compiler names the masquerade directory holds. */
export const MASQUERADE_NAMES = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++'] as const;
/** The launcher's own name, also in the masquerade directory (the launcher form by PATH). */
export const LAUNCHER_NAME = 'muster-cc';
/** A path make, configure and CMake all take as one word, unquoted. */
const PLAIN_PATH = /^[A-Za-z0-9_./+,:@%=~-]+$/;

export interface LauncherPaths {
  /** The native launcher (`dist/native/muster-cc`). */
  readonly launcher: string;
  /** The directory of compiler names linked to it. */
  readonly masquerade: string;
}

/** Where the install keeps them: `dist/native/` beside `dist/src/`. */
export function installedLauncherPaths(): LauncherPaths {
  const native = packagePath('dist', 'native');
  return { launcher: join(native, 'muster-cc'), masquerade: join(native, 'masquerade') };
}

function compilerVariable(
  value: string | undefined,
  fallback: string,
  paths: LauncherPaths,
): string {
  const plain = PLAIN_PATH.test(paths.masquerade) && PLAIN_PATH.test(paths.launcher);
  const entry = (name: string): string => (plain ? join(paths.masquerade, name) : name);
  const trimmed = value?.trim() ?? '';
  if (trimmed === '') return entry(fallback);
  if ((MASQUERADE_NAMES as readonly string[]).includes(trimmed)) return entry(trimmed);
  if (
    trimmed.startsWith(paths.masquerade + '/') ||
    trimmed.startsWith(paths.launcher) ||
    trimmed.split(/\s/, 1)[0] === LAUNCHER_NAME
  )
    return trimmed;
  return `${plain ? paths.launcher : LAUNCHER_NAME} ${trimmed}`;
}

/** CMake's launcher list: the user's launcher first when there is one, then ours. */
function cmakeLauncher(value: string | undefined, paths: LauncherPaths): string {
  const theirs = (value ?? '')
    .split(';')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  const ours = (item: string): boolean =>
    item === paths.launcher || item === LAUNCHER_NAME || item.startsWith(paths.masquerade + '/');
  if (theirs.some(ours)) return theirs.join(';');
  return [...theirs, paths.launcher].join(';');
}

/** The command's environment: `env` with the launcher in place (see the file's comment). */
export function launchEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  paths: LauncherPaths,
  socket: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  const path = (env['PATH'] ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '' && dir !== paths.masquerade);
  out['PATH'] = [paths.masquerade, ...path].join(delimiter);
  out['CC'] = compilerVariable(env['CC'], 'cc', paths);
  out['CXX'] = compilerVariable(env['CXX'], 'c++', paths);
  out['CMAKE_C_COMPILER_LAUNCHER'] = cmakeLauncher(env['CMAKE_C_COMPILER_LAUNCHER'], paths);
  out['CMAKE_CXX_COMPILER_LAUNCHER'] = cmakeLauncher(env['CMAKE_CXX_COMPILER_LAUNCHER'], paths);
  out[SOCKET_ENV] = socket;
  out[MASQUERADE_ENV] = paths.masquerade;
  return out;
}

/**
 * The compilers a build most likely runs, identified while the command starts: the compiler
 * `$CC` and `$CXX` name when set (`gcc` of `muster cc gcc -O2`), else `cc` (make's default CC).
 */
export function prewarmedCompilers(env: Readonly<Record<string, string | undefined>>): string[] {
  const named = [env['CC'], env['CXX']].flatMap((value) => {
    const words = (value ?? '').trim().split(/\s+/);
    if (/(^|\/)muster$/.test(words[0] ?? '') && words[1] === 'cc') words.splice(0, 2);
    else if (/(^|\/)muster-cc$/.test(words[0] ?? '')) words.splice(0, 1);
    const program = words[0] ?? '';
    return program === '' || program.startsWith('-') ? [] : [program];
  });
  return named.length > 0 ? [...new Set(named)] : ['cc'];
}
