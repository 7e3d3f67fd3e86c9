/**
 * The compile cache's tier on this machine (`~/.cache/muster/cc`, design §4/§5), shared by every
 * compile service of this user (a `muster build` and the `muster cc --serve` daemon may use it at
 * once, so every write is a temp file + rename and every read is checked):
 *
 *   blobs/ab/<sha256>          object and depfile bytes, stderr; verified on read (a corrupt
 *                              blob is a miss and is removed)
 *   entries/ab/<key>.json      a result: its outputs (blob, size, mode), stderr blob, toolchain
 *   manifests/ab/<direct>.json the direct key's lines { includes: [[path, sha256]], entry },
 *                              newest first, at most MANIFEST_LINES
 *
 * Size: the blobs are kept under a bound (default 5 GiB). A file's mtime is its use stamp (set
 * when it is stored or served: a blob, an entry, a manifest); when a store pushes the running
 * total over the bound, the whole blob tree is scanned and the least recently used blobs are
 * removed until it is under 90 % of it, and with them every entry and manifest last used no
 * later than the newest blob removed (serving an entry stamps its blobs after it, so what is
 * kept still has its blobs). An entry whose blob went some other way is a miss (and is removed
 * when found so). The explain records and the remembered toolchain ids next to the tier bound
 * themselves (explain.ts, toolchain-ids.ts).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeAtomic, writeAtomicSync } from '../../common/atomic-file.js';
import { isObject } from '../../common/is-object.js';
import { MANIFEST_LINE_LIMITS } from '../../api/requests.js';
import { readSmallSync, SYNC_READ_BYTES } from './file-hashes.js';
import { listStamped, removeUsedBefore, touch } from './trim-dir.js';

export const DEFAULT_LOCAL_TIER_BYTES = 5 * 1024 ** 3;
export const MANIFEST_LINES = 16;
/** Files up to this size are written with direct system calls (writeFileAtomic). */
const SYNC_WRITE_BYTES = SYNC_READ_BYTES;
/** Entries and manifests are small; a bigger one is not ours. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
const BLOB_NAME = /^[0-9a-f]{64}$/;
const JSON_NAME = /^[0-9a-f]{64}\.json$/;

/** A kept result (`entries/ab/<key>.json`). */
export interface LocalEntry {
  key: string;
  /** One or two: the object, and the depfile when the compile wrote one. */
  outputs: { name: 'object' | 'depfile'; sha256: string; size: number; mode: number }[];
  stderr: { sha256: string; size: number } | null;
  exitCode: 0;
  toolchain: string;
  createdAt: string;
}

/** "With these headers (path, sha256), that entry." */
export interface ManifestLine {
  includes: [string, string][];
  entry: string;
}

function isHash(value: unknown): value is string {
  return typeof value === 'string' && BLOB_NAME.test(value);
}

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function hasOnly(value: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Object.keys(value);
  return own.length === keys.length && own.every((k) => keys.includes(k));
}

const ENTRY_KEYS = ['key', 'outputs', 'stderr', 'exitCode', 'toolchain', 'createdAt'] as const;
const OUTPUT_KEYS = ['name', 'sha256', 'size', 'mode'] as const;
const BLOB_REF_KEYS = ['sha256', 'size'] as const;

function isOutput(value: unknown): boolean {
  return (
    isObject(value) &&
    hasOnly(value, OUTPUT_KEYS) &&
    (value['name'] === 'object' || value['name'] === 'depfile') &&
    isHash(value['sha256']) &&
    isSize(value['size']) &&
    isSize(value['mode']) &&
    value['mode'] <= 0o777
  );
}

/**
 * An entry file's result, or null when it is not one (exactly the fields of LocalEntry, within
 * their bounds). By hand, as manifestLinesOf and for the same reason: every hit reads one.
 */
export function localEntryOf(value: unknown): LocalEntry | null {
  if (!isObject(value) || !hasOnly(value, ENTRY_KEYS)) return null;
  const { key, outputs, stderr, exitCode, toolchain, createdAt } = value;
  if (!isHash(key) || exitCode !== 0) return null;
  if (typeof toolchain !== 'string' || toolchain.length === 0 || toolchain.length > 200)
    return null;
  if (typeof createdAt !== 'string' || createdAt.length > 64) return null;
  if (!Array.isArray(outputs) || outputs.length < 1 || outputs.length > 2) return null;
  if (!(outputs as unknown[]).every(isOutput)) return null;
  const blob =
    stderr === null ||
    (isObject(stderr) &&
      hasOnly(stderr, BLOB_REF_KEYS) &&
      isHash(stderr['sha256']) &&
      isSize(stderr['size']));
  return blob ? (value as unknown as LocalEntry) : null;
}

/**
 * A manifest file's lines, or null when it is not one: `{ "lines": [ { "includes": [[path,
 * sha256]…], "entry" } ] }`, nothing else, within the bounds. Checked by hand, not by a schema:
 * every hit reads a manifest of tens of headers, and zod took ~1.5 ms for one (50–60 ms of CPU
 * in a warm rebuild of Lua's 34 files), this a few microseconds.
 */
export function manifestLinesOf(value: unknown): ManifestLine[] | null {
  if (!isObject(value) || Object.keys(value).length !== 1) return null;
  const lines = value['lines'];
  if (!Array.isArray(lines) || lines.length > MANIFEST_LINES) return null;
  for (const line of lines as unknown[]) {
    if (!isObject(line) || Object.keys(line).length !== 2 || !isHash(line['entry'])) return null;
    const includes = line['includes'];
    if (!Array.isArray(includes) || includes.length > MANIFEST_LINE_LIMITS.includes) return null;
    for (const include of includes as unknown[]) {
      if (!Array.isArray(include) || include.length !== 2) return null;
      const [path, hash] = include as unknown[];
      if (typeof path !== 'string' || path.length === 0 || path.length > MANIFEST_LINE_LIMITS.path)
        return null;
      if (!isHash(hash)) return null;
    }
  }
  return lines as ManifestLine[];
}

export interface LocalTierOptions {
  readonly dir: string;
  /** The bound on the blobs' bytes. */
  readonly maxBytes?: number;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function fanout(root: string, name: string): string {
  return join(root, name.slice(0, 2), name);
}

/** Folders this process made or found (a fan-out folder is made once, never removed). */
const madeDirs = new Set<string>();

/**
 * A file of the cache dir (the tier's, an explain record), written atomically, 0600 in a 0700
 * folder made first (once per process, again if it went): a small one (entries, manifests, most objects) with
 * direct system calls — keeping a result took ~25 thread-pool round trips, ~4 ms of CPU per
 * compile on the 2-core VM —, a larger one through the pool, so that it does not hold up the
 * compiles the service answers meanwhile.
 */
export async function writeFileAtomic(file: string, data: Buffer | string): Promise<void> {
  const dir = dirname(file);
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > SYNC_WRITE_BYTES) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(file, data, 0o600);
    return;
  }
  if (!madeDirs.has(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    madeDirs.add(dir);
  }
  try {
    writeAtomicSync(file, data, 0o600);
  } catch (err) {
    // The folder went (a user cleared the cache meanwhile): made again, once.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    madeDirs.delete(dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    madeDirs.add(dir);
    writeAtomicSync(file, data, 0o600);
  }
}

/**
 * Synchronous, like the blob reads below: a hit reads an entry, a manifest and a blob or two,
 * small files in the page cache, and the thread pool's round trips cost more CPU than the reads.
 */
function readBounded(file: string): Buffer | null {
  try {
    const s = statSync(file);
    if (!s.isFile() || s.size > MAX_JSON_BYTES) return null;
    return readFileSync(file);
  } catch {
    return null;
  }
}

export class LocalTier {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #blobs: string;
  readonly #entries: string;
  readonly #manifests: string;
  /** Bytes of blobs as this process last knew them (null: not scanned yet). */
  #bytes: number | null = null;
  #scanning: Promise<void> | null = null;
  #trimming: Promise<void> | null = null;

  constructor(options: LocalTierOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? DEFAULT_LOCAL_TIER_BYTES;
    this.#blobs = join(this.dir, 'blobs');
    this.#entries = join(this.dir, 'entries');
    this.#manifests = join(this.dir, 'manifests');
  }

  /** Stores `data` under its hash (a no-op but for the use stamp when it is there already). */
  async putBlob(data: Buffer): Promise<string> {
    const hash = sha256(data);
    const file = fanout(this.#blobs, hash);
    const existing = statSync(file, { throwIfNoEntry: false });
    if (existing?.isFile() === true && existing.size === data.length) {
      await touch(file);
      return hash;
    }
    await writeFileAtomic(file, data);
    await this.#grew(data.length);
    return hash;
  }

  /** The blob's bytes, or null when it is missing or corrupt (then it is removed). */
  async getBlob(hash: string, size?: number): Promise<Buffer | null> {
    if (!isHash(hash)) return null;
    const file = fanout(this.#blobs, hash);
    let data: Buffer;
    try {
      data = await readSmallSync(file, size);
    } catch {
      return null;
    }
    if ((size !== undefined && data.length !== size) || sha256(data) !== hash) {
      await rm(file, { force: true });
      return null;
    }
    await touch(file);
    return data;
  }

  async putEntry(entry: LocalEntry): Promise<void> {
    await writeFileAtomic(fanout(this.#entries, `${entry.key}.json`), JSON.stringify(entry));
  }

  /** The entry under `key`, or null when there is none or it cannot be read. */
  async getEntry(key: string): Promise<LocalEntry | null> {
    if (!isHash(key)) return null;
    const file = fanout(this.#entries, `${key}.json`);
    const entry = localEntryOf(parseJson(readBounded(file)));
    if (entry === null || entry.key !== key) return null;
    await touch(file);
    return entry;
  }

  async removeEntry(key: string): Promise<void> {
    if (!isHash(key)) return;
    await rm(fanout(this.#entries, `${key}.json`), { force: true });
  }

  /** The direct key's manifest lines, newest first (empty when there are none). */
  async getManifest(direct: string): Promise<ManifestLine[]> {
    if (!isHash(direct)) return [];
    const file = fanout(this.#manifests, `${direct}.json`);
    const lines = manifestLinesOf(parseJson(readBounded(file)));
    if (lines === null) return [];
    await touch(file);
    return lines;
  }

  /**
   * Puts `line` first in the direct key's manifest (a line with the same includes and entry
   * moves up), keeping the newest MANIFEST_LINES. Two writers at once: the last rename wins,
   * which loses at most a line (a later miss stores it again).
   */
  async addManifestLine(direct: string, line: ManifestLine): Promise<void> {
    if (!BLOB_NAME.test(direct)) throw new Error(`not a key: ${direct}`);
    const same = (l: ManifestLine): boolean =>
      l.entry === line.entry && JSON.stringify(l.includes) === JSON.stringify(line.includes);
    const lines = [line, ...(await this.getManifest(direct)).filter((l) => !same(l))];
    await writeFileAtomic(
      fanout(this.#manifests, `${direct}.json`),
      JSON.stringify({ lines: lines.slice(0, MANIFEST_LINES) }),
    );
  }

  /** The blobs' total size, from a scan of the tree. */
  async scanBytes(): Promise<number> {
    const blobs = await listStamped(this.#blobs, BLOB_NAME, true);
    this.#bytes = blobs.reduce((sum, b) => sum + b.size, 0);
    return this.#bytes;
  }

  /**
   * Removes least recently used blobs until they fit in 90 % of the bound, and the entries and
   * manifests last used no later than the newest of them.
   */
  async trim(): Promise<void> {
    this.#trimming ??= this.#trim().finally(() => {
      this.#trimming = null;
    });
    return this.#trimming;
  }

  async #trim(): Promise<void> {
    const blobs = await listStamped(this.#blobs, BLOB_NAME, true);
    let total = blobs.reduce((sum, b) => sum + b.size, 0);
    const target = Math.floor(this.maxBytes * 0.9);
    blobs.sort((a, b) => a.used - b.used);
    let cutoff: number | null = null;
    for (const blob of blobs) {
      if (total <= target) break;
      await rm(blob.path, { force: true });
      total -= blob.size;
      cutoff = blob.used;
    }
    this.#bytes = total;
    if (cutoff === null) return;
    for (const root of [this.#entries, this.#manifests]) {
      await removeUsedBefore(await listStamped(root, JSON_NAME, true), cutoff);
    }
  }

  /**
   * Counts a stored blob against the bound. The total is not known until a scan of the tree:
   * that first scan runs once, in the background (a compile never waits for it; it counts what
   * is on disk, this blob included), and trims if the tier is over its bound.
   */
  async #grew(bytes: number): Promise<void> {
    if (this.#bytes === null) {
      if (this.#scanning === null)
        this.#scanning = this.scanBytes()
          .then(async (total) => {
            if (total > this.maxBytes) await this.trim();
          })
          .catch(() => undefined) // counted at the next store instead
          .finally(() => {
            this.#scanning = null;
          });
      return;
    }
    this.#bytes += bytes;
    if (this.#bytes > this.maxBytes) await this.trim();
  }
}

function parseJson(bytes: Buffer | null): unknown {
  if (bytes === null) return null;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
}
