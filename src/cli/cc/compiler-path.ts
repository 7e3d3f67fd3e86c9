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

const REMEMBERED_COMPILERS = 256;

/**
 * resolveCompiler, remembered for the service's life: a found compiler is taken again while a
 * stat of it shows the same file (one system call instead of a walk of PATH for every compile).
 * A compiler installed earlier on PATH while the service runs is noticed when the service
 * restarts (`muster build` starts its own; the per-user one exits when idle).
 */
export class CompilerPaths {
  readonly #known = new Map<string, { path: string; stamp: string }>();

  async resolve(
    name: string,
    cwd: string,
    searchPath: string,
    masqueradeDir: string | undefined,
    shimPath: string | undefined,
  ): Promise<string | null> {
    const relative =
      name.includes('/') || searchPath.split(delimiter).some((d) => d !== '' && !d.startsWith('/'));
    const key = [name, relative ? cwd : '', searchPath, masqueradeDir ?? '', shimPath ?? ''].join(
      '\0',
    );
    const known = this.#known.get(key);
    if (known !== undefined && (await stampOf(known.path)) === known.stamp) return known.path;
    const path = await resolveCompiler(name, cwd, searchPath, masqueradeDir, shimPath);
    const stamp = path === null ? null : await stampOf(path);
    if (path === null || stamp === null) {
      this.#known.delete(key);
      return path;
    }
    if (this.#known.size >= REMEMBERED_COMPILERS && !this.#known.has(key)) {
      const oldest = this.#known.keys().next();
      if (oldest.done !== true) this.#known.delete(oldest.value);
    }
    this.#known.set(key, { path, stamp });
    return path;
  }
}

async function stampOf(path: string): Promise<string | null> {
  const s = await stat(path).catch(() => null);
  return s === null ? null : `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.mode}`;
}
