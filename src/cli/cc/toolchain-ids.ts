/**
 * The toolchain of each compiler the service meets, found once per (realpath, mtime, size) for
 * the service's life (`discoverToolchain` asks the driver and ldd and hashes every program: far
 * too slow for every job, and seconds for a `muster build` that starts a service per run). What
 * it found is also remembered on disk (`<cache dir>/toolchain-ids/`), with the size, mtime and
 * inode of every file it hashed: a later service takes it only while all of them still match.
 * At most MAX_ON_DISK are kept there, the least recently used go first (a file's mtime is set
 * when it is written or taken).
 *
 * A compiler that cannot be shipped to agents (a script, ccache, a driver whose programs lie
 * outside its prefix) still gets an id for the local tier: the sha256 of its own bytes and its
 * `--version` output. Such an id names no Toolchain, so its results stay on this machine.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { realpathSync, statSync } from 'node:fs';
import { mkdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { writeAtomic } from '../../common/atomic-file.js';
import { discoverToolchain, type Toolchain } from './toolchain.js';
import { keepNewest, touch } from './trim-dir.js';

const run = promisify(execFile);
const MAX_REMEMBERED = 64;
/** Compilers remembered on disk: each gcc upgrade or PATH of a build adds one. */
export const MAX_ON_DISK = 256;
const REMEMBERED_NAME = /^[0-9a-f]{64}\.json$/;
/** The remembered compilers' folder in the cache dir. */
export const TOOLCHAIN_IDS_DIR = 'toolchain-ids';

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

interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
}

const stampSchema = z.object({
  path: z.string(),
  size: z.number(),
  mtimeMs: z.number(),
  ino: z.number(),
});
const rememberedSchema = z.object({
  v: z.literal(1),
  info: z.object({
    id: z.string().regex(/^[0-9a-f]{64}$/),
    toolchain: z.unknown(),
    unshippable: z.string().nullable(),
  }),
  stamps: z.array(stampSchema).min(1).max(10_000),
});

async function stampOf(path: string): Promise<FileStamp> {
  const s = await stat(path);
  return { path, size: s.size, mtimeMs: s.mtimeMs, ino: s.ino };
}

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

export class ToolchainIds {
  readonly #discover: Discover;
  readonly #dir: string | undefined;
  readonly #known = new Map<string, Promise<ToolchainInfo | null>>();

  /** `dir`: where what was found is remembered across services (none: this service only). */
  constructor(discover: Discover = discoverToolchain, dir?: string) {
    this.#discover = discover;
    this.#dir = dir;
  }

  /**
   * The compiler's toolchain (null: it cannot be identified, so nothing of it is cached). Its
   * realpath and stat are synchronous: this runs for every compile, and through the thread pool
   * the two cost ~10 times the CPU (each a round trip of futex wake-ups on a machine whose cores
   * the build keeps busy).
   */
  async of(compiler: string, searchPath: string): Promise<ToolchainInfo | null> {
    let key: string;
    try {
      const real = realpathSync.native(compiler);
      const s = statSync(real);
      key = `${real}\0${s.mtimeMs}\0${s.size}`;
    } catch {
      return null;
    }
    let known = this.#known.get(key);
    if (known === undefined) {
      known = this.#remembered(key, compiler, searchPath);
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

  #file(key: string, searchPath: string): string | undefined {
    if (this.#dir === undefined) return undefined;
    const name = createHash('sha256').update(`${key}\0${searchPath}`).digest('hex');
    return join(this.#dir, `${name}.json`);
  }

  /** From disk when every file it was made of is unchanged; else found again and written. */
  async #remembered(
    key: string,
    compiler: string,
    searchPath: string,
  ): Promise<ToolchainInfo | null> {
    const file = this.#file(key, searchPath);
    if (file !== undefined) {
      const kept = await readFile(file, 'utf8')
        .then((text) => rememberedSchema.parse(JSON.parse(text)))
        .catch(() => null);
      if (kept !== null) {
        const now = await Promise.all(kept.stamps.map((s) => stampOf(s.path).catch(() => null)));
        if (now.every((s, i) => s !== null && sameStamp(s, kept.stamps[i]!))) {
          await touch(file);
          return kept.info as ToolchainInfo;
        }
      }
    }
    const info = await this.#find(compiler, searchPath);
    if (info !== null && file !== undefined) {
      try {
        const paths = [
          await realpath(compiler),
          ...(info.toolchain?.files.map((f) => f.source) ?? []),
        ];
        const stamps = await Promise.all(paths.map(stampOf));
        await mkdir(this.#dir!, { recursive: true, mode: 0o700 });
        await writeAtomic(file, JSON.stringify({ v: 1, info, stamps }), 0o600);
        await keepNewest(this.#dir!, REMEMBERED_NAME, MAX_ON_DISK);
      } catch {
        // Not remembered: found again by the next service.
      }
    }
    return info;
  }
}
