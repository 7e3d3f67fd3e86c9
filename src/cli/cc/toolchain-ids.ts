/**
 * The toolchain of each compiler the service meets, found once per (realpath, mtime, size) for
 * the service's life (`discoverToolchain` asks the driver and ldd: far too slow for every job).
 *
 * A compiler that cannot be shipped to agents (a script, ccache, a driver whose programs lie
 * outside its prefix) still gets an id for the local tier: the sha256 of its own bytes and its
 * `--version` output. Such an id names no Toolchain, so its results stay on this machine.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { discoverToolchain, type Toolchain } from './toolchain.js';

const run = promisify(execFile);
const MAX_REMEMBERED = 64;

export interface ToolchainInfo {
  /** What the cache key names. */
  readonly id: string;
  /** The shippable toolchain, or null: the id is local (see `unshippable`). */
  readonly toolchain: Toolchain | null;
  readonly unshippable: string | null;
}

export type Discover = (compiler: string, searchPath: string) => Promise<Toolchain>;

/** The local id of a compiler that cannot be shipped (null when it does not run). */
export async function localToolchainId(compiler: string): Promise<string | null> {
  try {
    const bytes = await readFile(compiler);
    const { stdout } = await run(compiler, ['--version'], {
      encoding: 'buffer',
      timeout: 30_000,
      env: { ...process.env, LC_ALL: 'C' },
    });
    return createHash('sha256')
      .update('muster-local-toolchain\0')
      .update(createHash('sha256').update(bytes).digest('hex'))
      .update('\0')
      .update(stdout)
      .digest('hex');
  } catch {
    return null;
  }
}

export class ToolchainIds {
  readonly #discover: Discover;
  readonly #known = new Map<string, Promise<ToolchainInfo | null>>();

  constructor(discover: Discover = discoverToolchain) {
    this.#discover = discover;
  }

  /** The compiler's toolchain (null: it cannot be identified, so nothing of it is cached). */
  async of(compiler: string, searchPath: string): Promise<ToolchainInfo | null> {
    let key: string;
    try {
      const real = await realpath(compiler);
      const s = await stat(real);
      key = `${real}\0${s.mtimeMs}\0${s.size}`;
    } catch {
      return null;
    }
    let known = this.#known.get(key);
    if (known === undefined) {
      known = this.#find(compiler, searchPath);
      if (this.#known.size >= MAX_REMEMBERED) {
        const oldest = this.#known.keys().next();
        if (oldest.done !== true) this.#known.delete(oldest.value);
      }
      this.#known.set(key, known);
    }
    return known;
  }

  async #find(compiler: string, searchPath: string): Promise<ToolchainInfo | null> {
    try {
      const toolchain = await this.#discover(compiler, searchPath);
      return { id: toolchain.id, toolchain, unshippable: null };
    } catch (err) {
      const id = await localToolchainId(compiler);
      if (id === null) return null;
      return { id, toolchain: null, unshippable: err instanceof Error ? err.message : String(err) };
    }
  }
}
