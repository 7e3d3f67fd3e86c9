/**
 * The compiler option table (ccache's `compopt.cpp` shape): every gcc/clang option whose meaning
 * matters to Muster, with how it takes its value and what it does to a job. Options that are not
 * here pass to both sides unchanged (gcc refuses an unknown one the same way everywhere) and are
 * part of the cache key. Kept sorted by name; a unit test checks the order and that no name is
 * listed twice.
 */

/** Why a compile runs on this machine (design §1's table); shown by `--explain` and the stats. */
export type LocalReason =
  | 'native-cpu'
  | 'profiling'
  | 'extra-output'
  | 'split-dwarf'
  | 'debug-macros'
  | 'records-command-line'
  | 'user-programs'
  | 'assembler-files'
  | 'precompiled-header'
  | 'cxx-modules'
  | 'environment'
  | 'autoconf-probe'
  | 'clang-unverified'
  | 'preprocessor-mode'
  | 'several-arch'
  | 'unsupported-option'
  | 'device-output'
  /** An option an agent's compile does not take (src/extensions/cc/remote-args.ts). */
  | 'agent-refuses';

/** Why a command is not a compile at all: the shim runs the real compiler unchanged. */
export type PassthroughReason =
  | 'unknown-compiler'
  | 'not-a-compile'
  | 'no-input'
  | 'several-inputs'
  | 'not-c-or-cxx'
  | 'stdin-input'
  | 'stdout-output'
  | 'response-file'
  | 'missing-argument';

/**
 * How an option takes its value:
 * - `none`: `-c`, the whole argument is the option;
 * - `separate`: the value is the next argument (`-Xpreprocessor X`);
 * - `joined`: the value is glued (`-Wa,…`, `-specs=…`, `--param=…`): the name is a prefix;
 * - `either`: glued or the next argument (`-DX` / `-D X`, `-o F` / `-oF`);
 * - `prefix`: a family of options named by this prefix, no value (`-fdump-…`, `-fmodules…`).
 */
export type ValueShape = 'none' | 'separate' | 'joined' | 'either' | 'prefix';

/**
 * What the option is for:
 * - `common`: given to the local preprocessing and to the remote compile (and keyed);
 * - `cpp`: only to the local preprocessing (include paths, forced includes): dropped remotely,
 *   left out of the preprocessor key (its effect is in the text);
 * - `dep`: a depfile option (`-MD`, `-MF`, …): only to the local preprocessing, keyed by its effect;
 * - `output`: `-o`;
 * - `language`: `-x`, positional;
 * - `mode`: decides what kind of run this is (`-c`, `-E`, `-S`, `-M`, `--version`…).
 */
export type OptionRole = 'common' | 'cpp' | 'dep' | 'output' | 'language' | 'mode';

export interface OptionSpec {
  readonly name: string;
  readonly value: ValueShape;
  readonly role: OptionRole;
  /** Its value is a path (informational: `--explain` names it as a file). */
  readonly path?: boolean;
  /** The compile must run locally, for this reason. */
  readonly local?: LocalReason;
  /** The result may not be cached: it writes or reads files the key does not cover. */
  readonly noCache?: boolean;
  /** The direct-mode key cannot be trusted (ccache: `-Wp,X`, `-Xpreprocessor`). */
  readonly noDirect?: boolean;
}

function o(
  name: string,
  value: ValueShape,
  role: OptionRole,
  extra: Omit<OptionSpec, 'name' | 'value' | 'role'> = {},
): OptionSpec {
  return { name, value, role, ...extra };
}

const extraOutput = { local: 'extra-output', noCache: true } as const;
const profiling = { local: 'profiling', noCache: true } as const;
const userPrograms = { local: 'user-programs', noCache: true } as const;
const pch = { local: 'precompiled-header', noCache: true } as const;
const modules = { local: 'cxx-modules', noCache: true } as const;
const nativeCpu = { local: 'native-cpu', noCache: true } as const;
const macroDebug = { local: 'debug-macros' } as const;
const recordsArgs = { local: 'records-command-line' } as const;
const preprocessorMode = { local: 'preprocessor-mode' } as const;

/** Sorted by name (JavaScript string order, as the test checks). */
export const optionTable: readonly OptionSpec[] = [
  o('-###', 'none', 'mode'),
  o('--compile', 'none', 'mode'),
  o('--coverage', 'none', 'common', profiling),
  o('--help', 'prefix', 'mode'),
  o('--param', 'separate', 'common'),
  o('--param=', 'joined', 'common'),
  o('--print-', 'prefix', 'mode'),
  o('--specs', 'separate', 'common', userPrograms),
  o('--specs=', 'joined', 'common', userPrograms),
  o('--sysroot', 'separate', 'cpp', { path: true }),
  o('--sysroot=', 'joined', 'cpp', { path: true }),
  o('--target-help', 'none', 'mode'),
  o('--target=', 'joined', 'common'),
  o('--version', 'none', 'mode'),
  o('-A', 'either', 'cpp'),
  o('-B', 'either', 'common', { ...userPrograms, path: true }),
  o('-C', 'none', 'cpp', preprocessorMode),
  o('-CC', 'none', 'cpp', preprocessorMode),
  o('-D', 'either', 'common'),
  o('-E', 'none', 'mode'),
  o('-H', 'none', 'cpp', preprocessorMode),
  o('-I', 'either', 'cpp', { path: true }),
  o('-L', 'either', 'common', { path: true }),
  o('-M', 'none', 'mode'),
  o('-MD', 'none', 'dep'),
  o('-MF', 'either', 'dep', { path: true }),
  o('-MG', 'none', 'dep'),
  o('-MJ', 'either', 'common', extraOutput),
  o('-MM', 'none', 'mode'),
  o('-MMD', 'none', 'dep'),
  o('-MP', 'none', 'dep'),
  o('-MQ', 'either', 'dep'),
  o('-MT', 'either', 'dep'),
  o('-P', 'none', 'cpp', preprocessorMode),
  o('-S', 'none', 'mode'),
  o('-T', 'either', 'common', { path: true }),
  o('-U', 'either', 'common'),
  o('-Wa,', 'joined', 'common'),
  o('-Wl,', 'joined', 'common'),
  o('-Wp,', 'joined', 'cpp'),
  o('-Xassembler', 'separate', 'common'),
  o('-Xclang', 'separate', 'common', { local: 'clang-unverified' }),
  o('-Xlinker', 'separate', 'common'),
  o('-Xpreprocessor', 'separate', 'cpp', { ...preprocessorMode, noCache: true, noDirect: true }),
  o('-arch', 'separate', 'common'),
  o('-aux-info', 'separate', 'common', { ...extraOutput, path: true }),
  o('-c', 'none', 'mode'),
  o('-d', 'prefix', 'common', extraOutput),
  o('-dumpbase', 'separate', 'common', extraOutput),
  o('-dumpbase-ext', 'separate', 'common', extraOutput),
  o('-dumpdir', 'separate', 'common', extraOutput),
  o('-dumpfullversion', 'none', 'mode'),
  o('-dumpmachine', 'none', 'mode'),
  o('-dumpspecs', 'none', 'mode'),
  o('-dumpversion', 'none', 'mode'),
  o('-fauto-profile', 'prefix', 'common', profiling),
  o('-fbranch-probabilities', 'none', 'common', profiling),
  o('-fcallgraph-info', 'prefix', 'common', extraOutput),
  o('-fdebug-prefix-map=', 'joined', 'common'),
  o('-fdiagnostics-add-output', 'prefix', 'common', extraOutput),
  o('-fdirectives-only', 'none', 'cpp', preprocessorMode),
  o('-fdump-', 'prefix', 'common', extraOutput),
  o('-ffile-prefix-map=', 'joined', 'common'),
  o('-flto', 'prefix', 'common', recordsArgs),
  o('-fmacro-prefix-map=', 'joined', 'common'),
  o('-fmodule-', 'prefix', 'common', modules),
  o('-fmodules', 'prefix', 'common', modules),
  o('-fpch-preprocess', 'none', 'cpp', pch),
  o('-fplugin', 'prefix', 'common', userPrograms),
  o('-fpreprocessed', 'none', 'cpp', preprocessorMode),
  o('-fprofile-arcs', 'none', 'common', profiling),
  o('-fprofile-dir=', 'joined', 'common', profiling),
  o('-fprofile-generate', 'prefix', 'common', profiling),
  o('-fprofile-sample-use', 'prefix', 'common', profiling),
  o('-fprofile-use', 'prefix', 'common', profiling),
  o('-frecord-gcc-switches', 'none', 'common', recordsArgs),
  o('-frepo', 'none', 'common', extraOutput),
  o('-fstack-usage', 'none', 'common', extraOutput),
  o('-fsyntax-only', 'none', 'mode'),
  o('-ftest-coverage', 'none', 'common', profiling),
  o('-ftime-trace', 'prefix', 'common', extraOutput),
  o('-fworking-directory', 'none', 'cpp'),
  o('-g3', 'none', 'common', macroDebug),
  o('-ggdb3', 'none', 'common', macroDebug),
  o('-gsplit-dwarf', 'none', 'common', { local: 'split-dwarf', noCache: true }),
  o('-gtoggle', 'none', 'common', { local: 'unsupported-option', noCache: true }),
  o('-idirafter', 'either', 'cpp', { path: true }),
  o('-imacros', 'either', 'cpp', { local: 'precompiled-header', path: true }),
  o('-imultiarch', 'either', 'cpp'),
  o('-imultilib', 'either', 'cpp'),
  o('-include', 'either', 'cpp', { path: true }),
  o('-include-pch', 'either', 'cpp', { ...pch, path: true }),
  o('-iprefix', 'either', 'cpp', { path: true }),
  o('-iquote', 'either', 'cpp', { path: true }),
  o('-isysroot', 'either', 'cpp', { path: true }),
  o('-isystem', 'either', 'cpp', { path: true }),
  o('-iwithprefix', 'either', 'cpp'),
  o('-iwithprefixbefore', 'either', 'cpp'),
  o('-l', 'either', 'common'),
  o('-march=native', 'none', 'common', nativeCpu),
  o('-mcpu=native', 'none', 'common', nativeCpu),
  o('-mllvm', 'separate', 'common'),
  o('-mtune=native', 'none', 'common', nativeCpu),
  o('-nostdinc', 'none', 'cpp'),
  o('-nostdinc++', 'none', 'cpp'),
  o('-o', 'either', 'output', { path: true }),
  o('-print-', 'prefix', 'mode'),
  o('-remap', 'none', 'cpp'),
  o('-save-temps', 'prefix', 'common', extraOutput),
  o('-specs=', 'joined', 'common', userPrograms),
  o('-target', 'separate', 'common'),
  o('-traditional-cpp', 'none', 'cpp', preprocessorMode),
  o('-u', 'either', 'common'),
  o('-undef', 'none', 'common'),
  o('-v', 'none', 'mode'),
  o('-wrapper', 'separate', 'common', userPrograms),
  o('-x', 'either', 'language'),
  o('-z', 'either', 'common'),
];

const exact = new Map<string, OptionSpec>(optionTable.map((spec) => [spec.name, spec]));
/** Options that may be written with more after their name, longest name first. */
const prefixed = optionTable
  .filter((spec) => spec.value !== 'none' && spec.value !== 'separate')
  .sort((a, b) => b.name.length - a.name.length);

/** One option as it appeared on the command line (one or two arguments). */
export interface ParsedOption {
  readonly spec: OptionSpec | null;
  /** The arguments as written: one, or two for a separate value. */
  readonly args: readonly string[];
  /** The option's value (`-DX` → `X`, `-o F` → `F`), or undefined for a plain option. */
  readonly value?: string;
}

/**
 * The option at `args[i]` (which starts with `-` and is not `-` itself): its spec, how many
 * arguments it takes, its value. A separate value that is missing gives `value: undefined` with
 * `missing: true` (gcc refuses the command; Muster runs it unchanged).
 */
export function readOption(
  args: readonly string[],
  i: number,
): ParsedOption & { readonly missing?: boolean } {
  const arg = args[i] ?? '';
  const spec = exact.get(arg);
  if (spec !== undefined) {
    if (spec.value === 'separate' || spec.value === 'either') {
      const value = args[i + 1];
      if (value === undefined) return { spec, args: [arg], missing: true };
      return { spec, args: [arg, value], value };
    }
    if (spec.value === 'joined') return { spec, args: [arg], value: '' };
    return { spec, args: [arg] };
  }
  for (const candidate of prefixed) {
    if (arg.startsWith(candidate.name)) {
      if (candidate.value === 'prefix') return { spec: candidate, args: [arg] };
      return { spec: candidate, args: [arg], value: arg.slice(candidate.name.length) };
    }
  }
  return { spec: null, args: [arg] };
}
