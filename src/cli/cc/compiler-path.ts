/**
 * Which real compiler a shim's hello means, and the environment it runs in (design §5): the
 * compiler is named by absolute path, and neither its PATH nor its environment leads back into
 * the shim (distcc's `dcc_support_masquerade` does the same), so nothing it starts loops.
 */
import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import { basename, delimiter, join, resolve } from 'node:path';
import type { ShimHello } from './shim-protocol.js';

export interface Invocation {
  /** The compiler as the user named it (`gcc`, `/usr/bin/g++-12`): argv[0] of the real run. */
  readonly compiler: string;
  readonly args: readonly string[];
}

/**
 * The compiler and its arguments: masquerade form (`gcc -c x.c`, argv[0]'s base name is the
 * compiler) or launcher form (`muster-cc gcc -c x.c`, the compiler is argv[1]); null when the
 * hello is neither (the service then closes the connection and the shim runs the compiler).
 */
export function invocationOf(hello: ShimHello): Invocation | null {
  const [argv0 = '', argv1] = hello.argv;
  if (basename(argv0) === basename(hello.invokedAs)) {
    return { compiler: hello.invokedAs, args: hello.argv.slice(1) };
  }
  if (argv1 === hello.invokedAs) return { compiler: hello.invokedAs, args: hello.argv.slice(2) };
  return null;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function samePath(a: string, b: string): boolean {
  return resolve(a) === resolve(b);
}

/**
 * The real compiler's absolute path: a name with a slash as is (from the cwd; a path to the shim
 * itself stands for its base name), else the first executable of that name on `searchPath` that
 * is neither in the masquerade directory nor the shim itself (by realpath). Null when there is
 * none.
 */
export async function resolveCompiler(
  name: string,
  cwd: string,
  searchPath: string,
  masqueradeDir: string | undefined,
  shimPath: string | undefined,
): Promise<string | null> {
  const shimReal =
    shimPath === undefined ? undefined : await realpath(shimPath).catch(() => shimPath);
  const acceptable = async (candidate: string): Promise<boolean> => {
    if (!(await isExecutableFile(candidate))) return false;
    if (shimReal === undefined) return true;
    return (await realpath(candidate).catch(() => candidate)) !== shimReal;
  };
  if (name.includes('/')) {
    const path = resolve(cwd, name);
    if (await acceptable(path)) return path;
    // A path to the shim itself (CC=<masquerade>/cc and the CMake launcher too: `muster-cc
    // <masquerade>/cc -c x.c`) means the compiler of that name: look it up like one.
    const real = await realpath(path).catch(() => path);
    if (shimReal === undefined || real !== shimReal) return null;
    name = basename(path);
  }
  for (const entry of searchPath.split(delimiter)) {
    // An empty entry is the cwd to a shell; a compiler found that way is not worth the risk.
    if (entry === '') continue;
    const dir = resolve(cwd, entry);
    if (masqueradeDir !== undefined && masqueradeDir !== '' && samePath(dir, masqueradeDir)) {
      continue;
    }
    const candidate = join(dir, name);
    if (await acceptable(candidate)) return candidate;
  }
  return null;
}

/**
 * The compiler's environment: the shim's, without `MUSTER_CC_*` and with the masquerade
 * directory taken out of PATH.
 */
export function compilerEnvironment(
  env: Readonly<Record<string, string>>,
  masqueradeDir: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith('MUSTER_CC_')) continue;
    out[name] = value;
  }
  const path = out['PATH'];
  if (path !== undefined && masqueradeDir !== undefined && masqueradeDir !== '') {
    out['PATH'] = path
      .split(delimiter)
      .filter((entry) => entry === '' || !samePath(entry, masqueradeDir))
      .join(delimiter);
  }
  return out;
}
