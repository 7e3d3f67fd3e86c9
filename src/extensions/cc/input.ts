/**
 * cc/compile's input, checked field by field (the extension ships alone: no zod). Every path is
 * a safe relative path; what they name is confined to the work dir or the toolchain when used.
 * The arguments are those of a plain compile only (remote-args.ts); the driver must be the one
 * the toolchain's description names (toolchains.ts).
 */
import { ccError, inputObject, invalidInput } from './errors.js';
import { checkRelativePath } from './paths.js';
import { refusedCompileArgs } from './remote-args.js';

/** An argument naming a place in the work dir by its absolute path on the agent. */
export interface WorkPathArg {
  workPath: string;
}

export type CompileArg = string | WorkPathArg;

export interface DebugPrefixMap {
  /** A directory of the work dir ('' = the work dir itself). */
  dir: string;
  /**
   * Appended to the directory's absolute path as it is (gcc matches maps as plain string
   * prefixes): a user's own map of an absolute path, moved under the directory that stands for
   * the client's `/`, is `{ dir: 'root', suffix: '/home/me/proj', to: … }`.
   */
  suffix?: string;
  /** What it reads as in the debug information (the client's directory). */
  to: string;
}

export interface CompileOutput {
  name: 'object' | 'depfile';
  /** Relative to the work dir. */
  path: string;
}

export interface CompileInput {
  /** The toolchain's id: its files are in `<toolchains>/<id>/`. */
  toolchain: string;
  /** The driver, relative to the toolchain's root (`bin/x86_64-linux-gnu-gcc-12`). */
  driver: string;
  /**
   * The compiler's arguments, as the client rewrote them for the agent (design §2): the source
   * is the directives-only text among the task's inputs, named as the command line named it
   * (relative to `cwd`), or, for a source the client named by an absolute path, by
   * `{ workPath }` (its place in the work dir, which the agent turns into an absolute path).
   * `-nostdinc` and the debug prefix maps are added by the extension, after these.
   */
  args: CompileArg[];
  /** The compiler's working directory, relative to the work dir (made when missing). */
  cwd: string;
  /**
   * Added last, in this order, as `-fdebug-prefix-map=<work dir>/<dir><suffix>=<to>`, so the
   * object's debug information names the client's directories (gcc tries the last map first
   * and applies only the first that matches).
   */
  debugPrefixMaps: DebugPrefixMap[];
  /** The only variables of the client's environment that reach the compiler. */
  env: Record<string, string>;
  outputs: CompileOutput[];
}

/** Environment variables a compile may take from the client: they change messages or dates. */
export const CLIENT_ENV = /^(LANG|LC_[A-Z]+|SOURCE_DATE_EPOCH|TZ|GCC_COLORS|GCC_URLS|TERM_URLS)$/;

const LIMITS = { args: 4096, argBytes: 64 * 1024, maps: 16, text: 4096, env: 32 };

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalidInput(`${what} must be a string`);
  if (value.includes('\0')) throw invalidInput(`${what} contains a NUL byte`);
  if (value.length > LIMITS.text) throw invalidInput(`${what} is longer than ${LIMITS.text}`);
  return value;
}

function dirPath(value: unknown, what: string): string {
  return value === '' ? '' : checkRelativePath(value, what);
}

function parseArgs(value: unknown): CompileArg[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > LIMITS.args) {
    throw invalidInput(`cc/compile: "args" must be an array of 1 to ${LIMITS.args} arguments`);
  }
  let bytes = 0;
  const args = value.map((raw: unknown, i): CompileArg => {
    const what = `cc/compile: args[${i}]`;
    if (typeof raw === 'string') {
      if (raw.includes('\0')) throw invalidInput(`${what} contains a NUL byte`);
      bytes += Buffer.byteLength(raw) + 1;
      return raw;
    }
    const { workPath } = inputObject(raw, `${what} (a string or { workPath })`, ['workPath']);
    const path = checkRelativePath(workPath, `${what}.workPath`);
    bytes += path.length + 1;
    return { workPath: path };
  });
  if (bytes > LIMITS.argBytes) {
    throw invalidInput(`cc/compile: "args" are longer than ${LIMITS.argBytes} bytes`);
  }
  return args;
}

function parseMaps(value: unknown): DebugPrefixMap[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > LIMITS.maps) {
    throw invalidInput(`cc/compile: "debugPrefixMaps" must be an array of at most ${LIMITS.maps}`);
  }
  return value.map((raw: unknown, i) => {
    const what = `cc/compile: debugPrefixMaps[${i}]`;
    const { dir, suffix, to } = inputObject(raw, what, ['dir', 'suffix', 'to']);
    return {
      dir: dirPath(dir, `${what}.dir`),
      ...(suffix === undefined ? {} : { suffix: text(suffix, `${what}.suffix`) }),
      to: text(to, `${what}.to`),
    };
  });
}

function parseEnv(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidInput('cc/compile: "env" must be an object of strings');
  }
  const env = value as Record<string, unknown>;
  const names = Object.keys(env);
  if (names.length > LIMITS.env) throw invalidInput('cc/compile: too many "env" variables');
  const out: Record<string, string> = {};
  for (const name of names) {
    if (!CLIENT_ENV.test(name)) {
      throw invalidInput(`cc/compile: env ${name} is not one a compile takes from the client`);
    }
    out[name] = text(env[name], `cc/compile: env ${name}`);
  }
  return out;
}

function parseOutputs(value: unknown): CompileOutput[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 2) {
    throw invalidInput('cc/compile: "outputs" must be an array of 1 or 2 outputs');
  }
  const outputs = value.map((raw: unknown, i): CompileOutput => {
    const what = `cc/compile: outputs[${i}]`;
    const { name, path } = inputObject(raw, what, ['name', 'path']);
    if (name !== 'object' && name !== 'depfile') {
      throw invalidInput(`${what}.name must be "object" or "depfile"`);
    }
    return { name, path: checkRelativePath(path, `${what}.path`) };
  });
  const names = new Set(outputs.map((o) => o.name));
  const paths = new Set(outputs.map((o) => o.path));
  if (names.size !== outputs.length || paths.size !== outputs.length) {
    throw invalidInput('cc/compile: "outputs" name each output and each path once');
  }
  if (!names.has('object')) throw invalidInput('cc/compile: "outputs" has no object');
  return outputs;
}

export function parseCompileInput(input: unknown): CompileInput {
  const obj = inputObject(input, 'cc/compile: the input', [
    'toolchain',
    'driver',
    'args',
    'cwd',
    'debugPrefixMaps',
    'env',
    'outputs',
  ]);
  if (typeof obj.toolchain !== 'string' || !/^[0-9a-f]{64}$/.test(obj.toolchain)) {
    throw ccError('INVALID_INPUT', 'cc/compile: "toolchain" must be a toolchain id (sha256 hex)');
  }
  const spec: CompileInput = {
    toolchain: obj.toolchain,
    driver: checkRelativePath(obj.driver, 'cc/compile: "driver"'),
    args: parseArgs(obj.args),
    cwd: obj.cwd === undefined ? '' : dirPath(obj.cwd, 'cc/compile: "cwd"'),
    debugPrefixMaps: parseMaps(obj.debugPrefixMaps),
    env: parseEnv(obj.env),
    outputs: parseOutputs(obj.outputs),
  };
  // Only what a plain compile of the text to the object needs: nothing that runs another
  // program, reads or writes other files, or reaches outside the work dir (remote-args.ts).
  const object = spec.outputs.find((o) => o.name === 'object')?.path ?? '';
  const refused = refusedCompileArgs(spec.args, spec.cwd, object);
  if (refused !== null) throw invalidInput(`cc/compile: ${refused}`);
  return spec;
}
