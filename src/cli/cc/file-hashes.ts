/**
 * Content hashes of sources and headers, remembered by what `stat` says of the file
 * (`dev, ino, size, mtime, ctime`, nanoseconds), so a header is read once per service lifetime
 * unless it changes. ccache's "too new" rule: a file whose mtime or ctime is within 2 s of now
 * (or in the future) may still be being written in the same second; it is hashed every time,
 * never remembered, and reported `tooNew` so the caller records no manifest from this compile.
 * A file that changes while it is read is reported `tooNew` too.
 *
 * Keeping a compile's result asks with the compile's start (`hash(path, startNs)`, the clock
 * read before the compile ran): then a file whose mtime or ctime is at or after start − 2 s is
 * too new — it may have been rewritten while the compile ran, or after it and before this
 * hash, and the object would then be recorded with content it was not made from. This holds
 * for a file remembered earlier too (its stat is checked against the start every time).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync, type BigIntStats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { timeMacrosIn, type TimeMacro } from './directives.js';

export const TOO_NEW_NS = 2_000_000_000n;
export const DEFAULT_MAX_ENTRIES = 50_000;

export interface HashedFile {
  readonly sha256: string;
  readonly size: number;
  /**
   * Modified within the last 2 s (or, given a compile's start, at or after start − 2 s), or
   * while being read: do not record it in a manifest.
   */
  readonly tooNew: boolean;
  /** `__DATE__`, `__TIME__`, `__TIMESTAMP__` found in it. */
  readonly timeMacros: readonly TimeMacro[];
}

/** What the cache needs of the file system and the clock (tests give their own). */
export interface FileHashesDeps {
  readonly stat: (path: string) => Promise<BigIntStats>;
  readonly readFile: (path: string) => Promise<Buffer>;
  /** Now, in nanoseconds since the epoch. */
  readonly now: () => bigint;
  readonly maxEntries: number;
}

/**
 * Synchronous calls under the promises: a build's hits stat hundreds of headers, and a stat
 * through the thread pool costs ~10 times the CPU of a direct one (measured: 700 stats, 50–80 ms
 * against 5). Reads too, of files up to SYNC_READ_BYTES (headers, most sources); a larger one
 * (a generated source) goes through the thread pool, so that it does not hold up every other
 * compile the service answers meanwhile.
 */
export const realFileHashesDeps: FileHashesDeps = {
  stat: async (path) => statSync(path, { bigint: true }),
  readFile: (path) => readSmallSync(path),
  now: () => BigInt(Date.now()) * 1_000_000n,
  maxEntries: DEFAULT_MAX_ENTRIES,
};

/** Files up to this size are read with one synchronous call (see realFileHashesDeps). */
export const SYNC_READ_BYTES = 256 * 1024;

/** `path`'s bytes: synchronously when it is at most SYNC_READ_BYTES, else through the pool. */
export async function readSmallSync(path: string, size?: number): Promise<Buffer> {
  if ((size ?? statSync(path).size) <= SYNC_READ_BYTES) return readFileSync(path);
  return readFile(path);
}

type Remembered = Omit<HashedFile, 'tooNew'>;

/** Modified or changed (ctime) at or after `ns`. */
function changedSince(s: BigIntStats, ns: bigint): boolean {
  return s.mtimeNs >= ns || s.ctimeNs >= ns;
}

function statKey(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export class FileHashes {
  readonly #deps: FileHashesDeps;
  /** Insertion order is age: the oldest entry goes first when the cache is full. */
  readonly #byStat = new Map<string, Remembered>();
  #reads = 0;

  constructor(deps: FileHashesDeps = realFileHashesDeps) {
    this.#deps = deps;
  }

  /** How many files were read (not answered from memory): what tests and stats look at. */
  get reads(): number {
    return this.#reads;
  }

  get size(): number {
    return this.#byStat.size;
  }

  /** The clock the rule reads (ns since the epoch): a compile's start is taken from it. */
  now(): bigint {
    return this.#deps.now();
  }

  /**
   * The file's hash, or null when it is missing, unreadable or not a regular file. With
   * `startNs` (a compile's start, from now()), too new is judged against it (see above).
   */
  async hash(path: string, startNs?: bigint): Promise<HashedFile | null> {
    const before = await this.#stat(path);
    if (before === null) return null;
    const key = statKey(before);
    const sinceStart = startNs !== undefined && changedSince(before, startNs - TOO_NEW_NS);
    const known = this.#byStat.get(key);
    if (known !== undefined) return { ...known, tooNew: sinceStart };
    let content: Buffer;
    try {
      content = await this.#deps.readFile(path);
    } catch {
      return null;
    }
    this.#reads++;
    const after = await this.#stat(path);
    const hashed: Remembered = {
      sha256: createHash('sha256').update(content).digest('hex'),
      size: content.length,
      timeMacros: timeMacrosIn(content),
    };
    const now = this.#deps.now();
    const tooNew =
      after === null ||
      statKey(after) !== key ||
      BigInt(content.length) !== before.size ||
      now - before.mtimeNs < TOO_NEW_NS ||
      now - before.ctimeNs < TOO_NEW_NS;
    if (!tooNew) this.#remember(key, hashed);
    return { ...hashed, tooNew: tooNew || sinceStart };
  }

  async #stat(path: string): Promise<BigIntStats | null> {
    try {
      const s = await this.#deps.stat(path);
      return s.isFile() ? s : null;
    } catch {
      return null;
    }
  }

  #remember(key: string, value: Remembered): void {
    if (this.#byStat.size >= this.#deps.maxEntries) {
      const oldest = this.#byStat.keys().next();
      if (oldest.done !== true) this.#byStat.delete(oldest.value);
    }
    this.#byStat.set(key, value);
  }
}
