/**
 * One compiler command line → what Muster may do with it (design §1):
 *
 * - **passthrough**: not a compile (a link, `-E`, `-S`, several sources, assembler, an unknown
 *   compiler…): the real compiler runs unchanged;
 * - **compile**: one C or C++ source to one object, with its parts taken apart (source, output,
 *   depfile, the arguments of the local preprocessing pass and of a remote compile, the key's
 *   arguments), and whether it may run remotely, be cached, use the direct-mode key, and why not.
 *
 * Pure but for the two file reads it is given (response files, `-include X` with an `X.gch`).
 */
import { isAbsolute, join, basename } from 'node:path';
import { refusedCompileOptions } from '../../api/remote-compile-args.js';
import {
  depfileKeyArgs,
  depfileOf,
  emptyDepOptions,
  preprocessDepArgs,
  type DepfileOptions,
  type DepOptionsSeen,
} from './dep-options.js';
import {
  compilerName,
  languageByName,
  languageBySuffix,
  withSuffix,
  type CompilerFamily,
  type Language,
} from './languages.js';
import {
  readOption,
  type LocalReason,
  type OptionSpec,
  type PassthroughReason,
} from './options.js';
import { parsePrefixMap, type PrefixMap } from './prefix-maps.js';
import { expandResponseFiles, type ReadResponseFile } from './response-files.js';

export interface ClassifyInput {
  /** The compiler as the user named it (`gcc`, `/usr/bin/g++-12`, `x86_64-linux-gnu-gcc`). */
  readonly compiler: string;
  /** Its arguments as given (before `@file` expansion). */
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readResponseFile: ReadResponseFile;
  /** Whether a file exists (absolute path). */
  readonly exists: (path: string) => boolean;
}

export interface Passthrough {
  readonly kind: 'passthrough';
  readonly reason: PassthroughReason;
  /** For people: which argument decided it. */
  readonly detail: string;
}

export interface Compile {
  readonly kind: 'compile';
  readonly compiler: string;
  readonly family: CompilerFamily;
  /** The arguments after `@file` expansion. */
  readonly args: readonly string[];
  /** Response files read, relative to the cwd as written. */
  readonly responseFiles: readonly string[];
  readonly language: Language;
  /** The language came from `-x` (so `-x LANG` must precede the source again). */
  readonly languageExplicit: boolean;
  /** The source as written (it reaches `__FILE__` and `DW_AT_name`). */
  readonly source: string;
  /** The object file as written, or derived (`dir/x.c` → `x.o`). */
  readonly output: string;
  readonly outputGiven: boolean;
  readonly depfile: DepfileOptions | null;
  /** Every option but `-c`, `-o`, `-x`, the source and the depfile options, in order. */
  readonly preprocessArgs: readonly string[];
  /** The depfile options for the `-E` pass (the user's plus the driver's `-MF`/`-MQ`). */
  readonly depArgs: readonly string[];
  /** `preprocessArgs` without what only the preprocessor reads (`-I`, `-include`, `-Wp,`…). */
  readonly compileArgs: readonly string[];
  /** The arguments keyed by the direct key: `preprocessArgs` and the depfile's shape. */
  readonly keyArgs: readonly string[];
  /** Some `-g` is in effect (then the cwd reaches the object, and is keyed). */
  readonly debug: boolean;
  readonly prefixMaps: readonly PrefixMap[];
  /** Empty: may run on an agent. Otherwise why it runs here. */
  readonly localReasons: readonly LocalReason[];
  /** Empty: may be cached. Otherwise why not. */
  readonly noCacheReasons: readonly string[];
  /** Empty: the direct key (source + headers) may be used. Otherwise why not. */
  readonly noDirectReasons: readonly string[];
}

export type Classification = Passthrough | Compile;

/** Environment variables that change what gcc runs or writes. */
const localEnv = ['GCC_EXEC_PREFIX', 'COMPILER_PATH'];
const uncachedEnv = ['DEPENDENCIES_OUTPUT', 'SUNPRO_DEPENDENCIES', 'LD_PRELOAD'];

function pass(reason: PassthroughReason, detail: string): Passthrough {
  return { kind: 'passthrough', reason, detail };
}

interface Walk {
  hasCompileFlag: boolean;
  output: string | null;
  readonly inputs: { path: string; lang: string | null }[];
  readonly preprocessArgs: string[];
  readonly compileArgs: string[];
  readonly dep: DepOptionsSeen;
  readonly local: Set<LocalReason>;
  readonly noCache: Set<string>;
  readonly noDirect: Set<string>;
  readonly prefixMaps: PrefixMap[];
  debug: boolean;
  archCount: number;
}

export function classify(input: ClassifyInput): Classification {
  const name = compilerName(input.compiler);
  if (name === null) return pass('unknown-compiler', input.compiler);
  const expanded = expandResponseFiles(input.args, input.cwd, input.readResponseFile);
  if (!expanded.ok) return pass('response-file', expanded.reason);
  const args = expanded.args;

  const walk: Walk = {
    hasCompileFlag: false,
    output: null,
    inputs: [],
    preprocessArgs: [],
    compileArgs: [],
    dep: emptyDepOptions(),
    local: new Set(),
    noCache: new Set(),
    noDirect: new Set(),
    prefixMaps: [],
    debug: false,
    archCount: 0,
  };
  let lang: string | null = null;
  for (let i = 0; i < args.length;) {
    const arg = args[i] ?? '';
    if (arg === '-' || !arg.startsWith('-')) {
      walk.inputs.push({ path: arg, lang });
      i++;
      continue;
    }
    const option = readOption(args, i);
    if (option.missing === true) return pass('missing-argument', arg);
    i += option.args.length;
    const spec = option.spec;
    if (spec === null) {
      unknownOption(walk, arg);
      continue;
    }
    if (spec.role === 'mode') {
      if (arg === '-c' || arg === '--compile') {
        walk.hasCompileFlag = true;
        continue;
      }
      return pass('not-a-compile', arg);
    }
    if (spec.role === 'output') {
      walk.output = option.value ?? '';
      continue;
    }
    if (spec.role === 'language') {
      lang = option.value === 'none' ? null : (option.value ?? null);
      continue;
    }
    applyFlags(walk, spec, arg);
    if (spec.role === 'dep') {
      depOption(walk.dep, spec.name, option.args, option.value);
      continue;
    }
    const handled = special(walk, spec, option.args, option.value, input);
    if (handled !== null) return handled;
  }

  if (!walk.hasCompileFlag) return pass('not-a-compile', 'no -c');
  if (walk.inputs.length === 0) return pass('no-input', 'no source file');
  if (walk.inputs.length > 1) {
    return pass('several-inputs', walk.inputs.map((x) => x.path).join(' '));
  }
  const only = walk.inputs[0] ?? { path: '', lang: null };
  if (only.path === '-') return pass('stdin-input', '-');
  if (walk.output === '-') return pass('stdout-output', '-o -');
  const language =
    only.lang !== null ? languageByName(only.lang) : languageBySuffix(only.path, name.cxxDriver);
  if (language === null) {
    return pass('not-c-or-cxx', only.lang !== null ? `-x ${only.lang}` : only.path);
  }

  for (const v of localEnv) if (nonEmpty(input.env[v])) walk.local.add('environment');
  for (const v of uncachedEnv) {
    if (nonEmpty(input.env[v])) {
      walk.local.add('environment');
      walk.noCache.add(`environment: ${v}`);
    }
  }
  if (basename(only.path).startsWith('conftest.')) {
    walk.local.add('autoconf-probe');
    walk.noCache.add('autoconf-probe');
  }
  if (name.family === 'clang') walk.local.add('clang-unverified');
  if (walk.archCount > 1) walk.local.add('several-arch');

  const source = only.path;
  const outputGiven = walk.output !== null;
  const output = walk.output ?? withSuffix(source, '.o');
  const depfile = depfileOf(walk.dep, source, output, outputGiven);
  for (const path of [output, depfile?.path ?? '']) {
    // `-o /dev/null`, `-MF /dev/null`, `-MF -` (configure's probes): nothing to cache, and the
    // service must never replace a device by renaming a file over it.
    if (path === '-' || path.startsWith('/dev/')) {
      walk.local.add('device-output');
      walk.noCache.add(`device-output: ${path}`);
    }
  }
  // What an agent would refuse (remote-args.ts) is never sent: named by the table's own reason
  // when it has one, else by this.
  if (walk.local.size === 0 && refusedCompileOptions(walk.compileArgs) !== null) {
    walk.local.add('agent-refuses');
  }
  const depKey = depfileKeyArgs(depfile);
  return {
    kind: 'compile',
    compiler: input.compiler,
    family: name.family,
    args,
    responseFiles: expanded.files,
    language,
    languageExplicit: only.lang !== null,
    source,
    output,
    outputGiven,
    depfile,
    preprocessArgs: walk.preprocessArgs,
    depArgs: preprocessDepArgs(walk.dep, depfile, outputGiven),
    compileArgs: walk.compileArgs,
    keyArgs: [...walk.preprocessArgs, ...depKey],
    debug: walk.debug,
    prefixMaps: walk.prefixMaps,
    localReasons: [...walk.local],
    noCacheReasons: [...walk.noCache],
    noDirectReasons: [...walk.noDirect],
  };
}

/**
 * The local `-E -fdirectives-only` pass of a compile (design §2): the user's arguments without
 * `-c`/`-o`, the depfile options the driver would pass, the source (after its `-x` when one was
 * given) and `-o tmp`.
 */
export function preprocessArgv(job: Compile, tmp: string): string[] {
  return [
    ...job.preprocessArgs,
    ...job.depArgs,
    '-E',
    '-fdirectives-only',
    ...(job.languageExplicit ? ['-x', job.language] : []),
    job.source,
    '-o',
    tmp,
  ];
}

function nonEmpty(v: string | undefined): boolean {
  return v !== undefined && v !== '';
}

function applyFlags(walk: Walk, spec: OptionSpec, arg: string): void {
  if (spec.local !== undefined) walk.local.add(spec.local);
  if (spec.noCache === true) walk.noCache.add(`${spec.local ?? 'option'}: ${arg}`);
  if (spec.noDirect === true) walk.noDirect.add(arg);
}

/** An option not in the table: both sides, keyed; a long one Muster cannot read stays local. */
function unknownOption(walk: Walk, arg: string): void {
  if (arg.startsWith('--')) {
    // gcc's long aliases (--output=, --include=, --define-macro…) could hide an output or an
    // input: run such a command as written.
    walk.local.add('unsupported-option');
    walk.noCache.add(`unsupported-option: ${arg}`);
  }
  if (arg.startsWith('-g')) debugOption(walk, arg);
  walk.preprocessArgs.push(arg);
  walk.compileArgs.push(arg);
}

function debugOption(walk: Walk, arg: string): void {
  if (arg === '-g0' || arg === '-ggdb0' || /^-gdwarf(-\d+)?0$/.test(arg)) walk.debug = false;
  else if (/^-g(\d|gdb\d?|dwarf(-\d+)?|stabs\+?\d?|xcoff\+?\d?|vms\d?|btf|ctf\d?)?$/.test(arg)) {
    walk.debug = true;
  }
}

function depOption(
  dep: DepOptionsSeen,
  name: string,
  args: readonly string[],
  value: string | undefined,
): void {
  dep.given.push(...args);
  if (name === '-MD') dep.style = 'MD';
  else if (name === '-MMD') dep.style = 'MMD';
  else if (name === '-MF') dep.mf = value ?? '';
  else if (name === '-MT') dep.targets.push({ name: value ?? '', quoted: false });
  else if (name === '-MQ') dep.targets.push({ name: value ?? '', quoted: true });
  else if (name === '-MP') dep.phony = true;
  else if (name === '-MG') dep.missingOk = true;
}

/**
 * Options whose value needs a closer look (`-Wp,`, `-Wa,`, `-include`, prefix maps, `-g…`,
 * `-arch`); every other option just goes to its side(s). Returns a passthrough when the option
 * makes the command something other than a compile.
 */
function special(
  walk: Walk,
  spec: OptionSpec,
  args: readonly string[],
  value: string | undefined,
  input: ClassifyInput,
): Passthrough | null {
  const arg = args[0] ?? '';
  let role = spec.role;
  if (spec.name === '-Wp,') {
    const items = (value ?? '').split(',');
    const [first, second] = items;
    if (items.length === 2 && (first === '-MD' || first === '-MMD') && second !== undefined) {
      // The kernel's and Lua's depfile style: a dependency option like -MD -MF.
      walk.dep.given.push(arg);
      walk.dep.style = first === '-MD' ? 'MD' : 'MMD';
      walk.dep.wpPath = second;
      return null;
    }
    if (items.some((x) => x === '-M' || x === '-MM' || x === '-E')) {
      return pass('not-a-compile', arg);
    }
    if (items.some((x) => x.startsWith('-M'))) {
      // A depfile written in a way Muster does not follow: a hit could not restore it.
      walk.local.add('unsupported-option');
      walk.noCache.add(`unsupported-option: ${arg}`);
    }
    if (items.every((x) => x.startsWith('-D') || x.startsWith('-U'))) {
      // Macros given to cc1 directly: the remote compile needs them as much as -D.
      role = 'common';
    } else {
      walk.noDirect.add(arg);
      if (items.some((x) => x.startsWith('-D') || x.startsWith('-U'))) {
        walk.local.add('preprocessor-mode');
      }
    }
  } else if (spec.name === '-Wa,') {
    assemblerOptions(walk, (value ?? '').split(','), arg);
  } else if (spec.name === '-Xassembler') {
    assemblerOptions(walk, [value ?? ''], arg);
  } else if (spec.name === '-include' && value !== undefined) {
    const path = isAbsolute(value) ? value : join(input.cwd, value);
    if (input.exists(`${path}.gch`)) {
      walk.local.add('precompiled-header');
      walk.noCache.add(`precompiled-header: ${value}.gch`);
    }
  } else if (spec.name === '-arch') {
    walk.archCount++;
  } else if (arg.startsWith('-g')) {
    debugOption(walk, arg);
  } else {
    const map = parsePrefixMap(arg);
    if (map !== null) walk.prefixMaps.push(map);
  }
  walk.preprocessArgs.push(...args);
  if (role !== 'cpp') walk.compileArgs.push(...args);
  return null;
}

/** `-Wa,…` items that make the assembler read or write files of this machine keep it local. */
function assemblerOptions(walk: Walk, items: readonly string[], arg: string): void {
  for (const item of items) {
    if (item.startsWith('-a') || item.startsWith('--MD') || !item.startsWith('-')) {
      walk.local.add('assembler-files');
      walk.noCache.add(`assembler-files: ${arg}`);
      return;
    }
  }
}
