/**
 * Which real compiler a shim's hello means, and the environment it runs in (design §5): the
 * compiler is named by absolute path, and neither its PATH nor its environment leads back into
 * the shim (distcc's `dcc_support_masquerade` does the same), so nothing it starts loops.
 */
import { constants, statSync } from 'node:fs';
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
  for (const dir of searchDirs(searchPath, cwd, masqueradeDir)) {
    const candidate = join(dir, name);
    if (await acceptable(candidate)) return candidate;
  }
  return null;
}

/** The directories resolveCompiler looks in, in order. */
function searchDirs(searchPath: string, cwd: string, masqueradeDir: string | undefined): string[] {
  const dirs: string[] = [];
  for (const entry of searchPath.split(delimiter)) {
    // An empty entry is the cwd to a shell; a compiler found that way is not worth the risk.
    if (entry === '') continue;
    const dir = resolve(cwd, entry);
    if (masqueradeDir !== undefined && masqueradeDir !== '' && samePath(dir, masqueradeDir)) {
      continue;
    }
    dirs.push(dir);
  }
  return dirs;
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
/** A remembered compiler is looked up again after this long whatever its stamps say. */
export const COMPILER_MEMO_TTL_MS = 10_000;
/** What stampOf says of a path that is not there. */
const MISSING = '-';

interface Remembered {
  readonly path: string;
  /** The compiler's stamp, then those of the PATH dirs searched before its own. */
  readonly stamps: string;
  readonly at: number;
}

/**
 * resolveCompiler, remembered for the service's life: a found compiler is taken again while a
 * stat of it shows the same file and a stat of every PATH directory searched before its own
 * shows the same directory (installing a compiler in one changes its mtime: a `gcc` put in
 * ~/bin earlier on PATH is taken from the next compile on), and for at most
 * COMPILER_MEMO_TTL_MS (what stamps miss: a file there made executable). A few system calls
 * instead of a walk of PATH for every compile.
 */
export class CompilerPaths {
  readonly #known = new Map<string, Remembered>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

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
    if (
      known !== undefined &&
      this.#now() - known.at < COMPILER_MEMO_TTL_MS &&
      (await this.#stamps(known.path, searchPath, cwd, masqueradeDir)) === known.stamps
    ) {
      return known.path;
    }
    const at = this.#now();
    const path = await resolveCompiler(name, cwd, searchPath, masqueradeDir, shimPath);
    const stamps = path === null ? '' : await this.#stamps(path, searchPath, cwd, masqueradeDir);
    if (path === null || stamps.startsWith(MISSING)) {
      this.#known.delete(key);
      return path;
    }
    if (this.#known.size >= REMEMBERED_COMPILERS && !this.#known.has(key)) {
      const oldest = this.#known.keys().next();
      if (oldest.done !== true) this.#known.delete(oldest.value);
    }
    this.#known.set(key, { path, stamps, at });
    return path;
  }

  /** The stamps of the compiler and of the PATH dirs looked in before its own, in one string. */
  async #stamps(
    path: string,
    searchPath: string,
    cwd: string,
    masqueradeDir: string | undefined,
  ): Promise<string> {
    const before = this.#searchedBefore(path, searchPath, cwd, masqueradeDir);
    return [path, ...before].map(stampOf).join('\n');
  }

  /** The PATH dirs looked in before the one `path` was found in (none: not found on PATH). */
  #searchedBefore(
    path: string,
    searchPath: string,
    cwd: string,
    masqueradeDir: string | undefined,
  ): string[] {
    const dirs = searchDirs(searchPath, cwd, masqueradeDir);
    const index = dirs.findIndex((dir) => samePath(join(dir, basename(path)), path));
    return index < 0 ? [] : dirs.slice(0, index);
  }
}

/** Synchronous: a few stats for every compile (a thread-pool stat costs ~10 times the CPU). */
function stampOf(path: string): string {
  let s;
  try {
    s = statSync(path, { throwIfNoEntry: false });
  } catch {
    return MISSING; // Not searchable, not a directory on the way: as good as not there.
  }
  return s === undefined ? MISSING : `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.mode}`;
}
