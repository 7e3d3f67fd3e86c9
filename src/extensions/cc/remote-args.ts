/**
 * What a remote compile's command line may hold (issue 13): the one check of cc/compile's
 * arguments, made by the agent's cc extension before it starts a compiler (input.ts), by the
 * coordinator on a job's body (api/requests.ts remoteCompileInput) and by the client before it
 * sends a compile away (src/cli/cc/classify.ts: such a compile runs on the client, local reason
 * `agent-refuses`). A leaf with no imports: the extension ships it alone, and the shared layer
 * imports it (eslint.config.js names this one file).
 *
 * An allow-list of option shapes, not a list of dangerous options: gcc has thousands, and new
 * ones that write or load files come with each release. What passes is what a plain compile of
 * one text to one object takes — optimisation, warnings, `-f…`/`-m…` code generation flags
 * whose values are names or numbers (never a path), `-g…`, `-std=`, macros, `--param`, `-Wa,`
 * assembler flags that name no file, link options gcc ignores when it does not link (`-lm`,
 * `-static`) — and the compile's own `-c`, `-x c|c++`, one source and `-o` naming the declared
 * object. Refused, each with the argument named: whatever runs or loads another program
 * (`-wrapper`, `-B`, `-specs=`, `-fplugin…`, `-fuse-ld=`, `--plugin`, `-iplugindir=`), reads or
 * writes files of its own (`-fprofile-…`, `-fdump-…`, `-save-temps`, `-MF`, `-aux-info`,
 * `--sysroot`, `-I`, `-include`, `-Wp,` with more than macros, `-Xpreprocessor`), asks the
 * driver something instead of compiling (`-print-…`, `-v`, `-E`), link options with paths or
 * the linker's own arguments (`-L`, `-T`, `-Wl,`, `-Xlinker`), response files (`@file`), a
 * value with a `/` where a name is expected, and any path that is absolute or leads out of the
 * work dir.
 */

/** An argument: a string, or a place in the work dir the agent turns into an absolute path. */
export type CompileArgument = string | { readonly workPath: string };

/** Flags allowed as they are. */
const PLAIN = new Set([
  '-c',
  '-w',
  '-ansi',
  '-pedantic',
  '-pedantic-errors',
  '-pipe',
  '-pthread',
  '-undef',
  // Profiling calls (mcount): code, no file at compile time.
  '-p',
  '-pg',
  // Link options that name nothing: gcc ignores them when it does not link.
  '-static',
  '-shared',
  '-pie',
  '-no-pie',
  '-rdynamic',
  '-s',
  '-static-libgcc',
  '-static-libstdc++',
]);

const RUNS = 'runs or loads another program';
const FILES = 'reads or writes files of its own';
const LINKS = 'is a link option (a compile does not link)';
const ODD = 'has a path or an odd value';

/** `-f…` options that run programs, read or write files, or make outputs besides the object. */
const F_REFUSED: readonly [RegExp, string][] = [
  [/^-f(plugin|use-ld|use-linker-plugin)/, RUNS],
  [/^-f(profile|auto-profile|branch-probabilities|test-coverage|coverage|create-profile)/, FILES],
  [/^-f(dump|callgraph-info|stack-usage|opt-info|save-optimization-record|time-trace)/, FILES],
  [/^-f(diagnostics-(add|set)-output|diagnostics-format=.*-file$)/, FILES],
  [/^-f(compare-debug|self-test|lto|wpa|ltrans|record-gcc-switches|repo)/, FILES],
  [
    /^-f(modules|module-|deps-|pch-preprocess|preprocessed|directives-only|working-directory)/,
    FILES,
  ],
  [/^-f(sanitize-(coverage-)?(black|white|ignore|allow)list|xray-|crash-diagnostics)/, FILES],
];

/** A name or number value (no path, no spaces): what the allowed families take after `=`. */
const FLAG_SHAPE = /^[a-zA-Z0-9][a-zA-Z0-9+_.,=:-]*$/;
/** A name: what `--param`, `-target`, `-arch` take. */
const NAME = /^[a-zA-Z0-9_.=+-]+$/;

/** One assembler flag of `-Wa,` or `-Xassembler` that names no file. */
function assemblerFlagRefusal(item: string): string | null {
  if (!/^--?[a-zA-Z0-9][a-zA-Z0-9_.+=-]*$/.test(item))
    return 'gives the assembler a file or a non-flag';
  if (/^-(a|o$|I|Z)|^--MD/.test(item)) return 'makes the assembler read or write a file';
  return null;
}

/** Why a lone option (no separate value) is refused, or null. */
function flagRefusal(arg: string): string | null {
  if (PLAIN.has(arg)) return null;
  if (/^-O([0-3sgz]|fast)?$/.test(arg)) return null;
  if (/^-std=[a-zA-Z0-9+]+$/.test(arg)) return null;
  if (/^-[DU]./s.test(arg)) return null;
  if (arg.startsWith('-Wa,')) {
    for (const item of arg.slice(4).split(',')) {
      const why = assemblerFlagRefusal(item);
      if (why !== null) return why;
    }
    return null;
  }
  if (arg.startsWith('-Wp,')) {
    // Macros for cc1 (the remote compile needs them as much as -D); anything else is the
    // preprocessor's, which ran on the client.
    const items = arg.slice(4).split(',');
    return items.every((x) => /^-[DU]./s.test(x))
      ? null
      : 'passes the preprocessor more than macros';
  }
  if (arg.startsWith('-Wl,')) return LINKS;
  if (/^-W[a-zA-Z0-9]/.test(arg)) return FLAG_SHAPE.test(arg.slice(2)) ? null : ODD;
  if (/^-f(debug|file|macro)-prefix-map=./s.test(arg)) return null;
  if (/^-f[a-zA-Z0-9]/.test(arg)) {
    for (const [pattern, why] of F_REFUSED) if (pattern.test(arg)) return why;
    return FLAG_SHAPE.test(arg.slice(2)) ? null : ODD;
  }
  if (/^-m[a-zA-Z0-9]/.test(arg)) {
    if (/^-m(arch|cpu|tune)=native$/.test(arg)) return "names the agent's own processor";
    if (arg === '-mllvm') return 'passes options to LLVM';
    return FLAG_SHAPE.test(arg.slice(2)) ? null : ODD;
  }
  if (/^-g[a-zA-Z0-9=-]*$/.test(arg)) {
    return arg === '-gsplit-dwarf' ? 'writes a second output (.dwo)' : null;
  }
  if (arg.startsWith('--param=')) return NAME.test(arg.slice(8)) ? null : 'has an odd value';
  if (arg.startsWith('--target=')) return NAME.test(arg.slice(9)) ? null : 'has an odd value';
  if (/^(-wrapper|-B|-specs|--specs|--plugin|-iplugindir)/.test(arg)) return RUNS;
  if (/^-l[a-zA-Z0-9_.+:-]+$/.test(arg)) return null;
  if (/^(-l|-L|-T|-u|-z|-Xlinker|-nostdlib|-nodefaultlibs|-nostartfiles|-r$)/.test(arg)) {
    return LINKS;
  }
  return 'is not an option a remote compile takes';
}

/** Options whose value is the next argument, with the shape that value must have. */
const SEPARATE = new Map<string, RegExp>([
  ['-D', /^./s],
  ['-U', /^./s],
  ['--param', NAME],
  ['-target', NAME],
  ['-arch', NAME],
  ['-l', /^[a-zA-Z0-9_.+:-]+$/],
]);

/** A relative path, resolved from `cwd` (itself relative), or null when it leads out. */
function resolveInside(cwd: string, path: string): string | null {
  if (path.startsWith('/')) return null;
  const parts: string[] = cwd === '' ? [] : cwd.split('/');
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else {
      parts.push(segment);
    }
  }
  return parts.join('/');
}

function refusal(index: number, arg: string, why: string): string {
  return `argument ${index} ${JSON.stringify(arg)} ${why}`;
}

/**
 * Why these options may not reach a compiler on an agent (the message names the first such
 * argument), or null: the client's check of a compile's options before the command line is laid
 * out for the agent (no `-o`, no source: those are added after).
 */
export function refusedCompileOptions(args: readonly string[]): string | null {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const separate = SEPARATE.get(arg);
    if (separate !== undefined) {
      const value = args[i + 1];
      if (value === undefined) return refusal(i, arg, 'has no value');
      if (!separate.test(value)) return refusal(i + 1, value, `is not a value ${arg} takes here`);
      i++;
      continue;
    }
    if (arg === '-Xassembler') {
      const value = args[i + 1];
      if (value === undefined) return refusal(i, arg, 'has no value');
      const why = assemblerFlagRefusal(value);
      if (why !== null) return refusal(i + 1, value, why);
      i++;
      continue;
    }
    if (arg.startsWith('@')) return refusal(i, arg, 'is a response file');
    if (!arg.startsWith('-') || arg === '-') return refusal(i, arg, 'is not an option');
    const why = flagRefusal(arg);
    if (why !== null) return refusal(i, arg, why);
  }
  return null;
}

/**
 * Why a remote compile's whole command line may not run on an agent, or null: its options as
 * {@link refusedCompileOptions} checks them, `-c`, at most one `-x c` or `-x c++`, exactly one
 * source (a path inside the work dir, from `cwd`) and exactly one `-o`, naming `object` (the
 * declared output, relative to the work dir).
 */
export function refusedCompileArgs(
  args: readonly CompileArgument[],
  cwd: string,
  object: string,
): string | null {
  const options: string[] = [];
  const indexes: number[] = [];
  let sources = 0;
  let outputs = 0;
  let compile = false;
  // The first refusal of the line's own parts, told after the options' (a value of an option
  // this walk does not know, `-MF /x.d`, is better named by its option).
  let lineRefusal: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (typeof arg !== 'string') {
      sources++;
      continue;
    }
    if (arg === '-o') {
      const value = args[i + 1];
      outputs++;
      const named =
        value === undefined
          ? null
          : typeof value === 'string'
            ? resolveInside(cwd, value)
            : value.workPath;
      if (named !== object) {
        lineRefusal ??= refusal(i, arg, `must name the declared object ${JSON.stringify(object)}`);
      }
      i++;
      continue;
    }
    if (arg === '-x') {
      const value = args[i + 1];
      if (value !== 'c' && value !== 'c++')
        lineRefusal ??= refusal(i, arg, 'must be -x c or -x c++');
      i++;
      continue;
    }
    if (arg === '-c') compile = true;
    if (SEPARATE.has(arg) || arg === '-Xassembler') {
      // The value goes with it, whatever it looks like.
      const value = args[i + 1];
      options.push(arg);
      indexes.push(i);
      if (typeof value === 'string') {
        options.push(value);
        indexes.push(i + 1);
        i++;
      }
      continue;
    }
    if (!arg.startsWith('-') && !arg.startsWith('@')) {
      if (resolveInside(cwd, arg) === null) {
        lineRefusal ??= refusal(i, arg, 'leads out of the work dir');
      }
      sources++;
      continue;
    }
    options.push(arg);
    indexes.push(i);
  }
  const why = refusedCompileOptions(options);
  if (why !== null) {
    // Renumbered: the message names the argument's place in the whole line.
    return why.replace(/^argument (\d+)/, (_, n: string) => `argument ${indexes[Number(n)] ?? n}`);
  }
  if (lineRefusal !== null) return lineRefusal;
  if (!compile) return 'the arguments have no -c (only compiles run remotely)';
  if (sources !== 1) return `the arguments name ${sources} sources (a remote compile has one)`;
  if (outputs !== 1) return `the arguments have ${outputs} -o (a remote compile has one)`;
  return null;
}
