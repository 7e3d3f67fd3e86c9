/**
 * The compile cache's tier on this machine (`~/.cache/muster/cc`, design §4/§5), shared by every
 * compile service of this user (a `muster build` and the `muster cc --serve` daemon may use it at
 * once):
 *
 *   tier-v1.sqlite     one SQLite database (WAL): the results (`entries`: outputs, stderr,
 *                      toolchain), the direct keys' manifests (`manifests`: lines { includes:
 *                      [[path, sha256]], entry }, newest first, at most MANIFEST_LINES) and the
 *                      blobs (objects, depfiles, compiler messages) up to INLINE_BLOB_BYTES
 *   files/ab/<sha256>  larger blobs, one file each (written through the thread pool)
 *
 * The same database holds the `muster cc --explain` records (`explain`: the last lookup of each
 * object, explain.ts), which bound their own number. They wait in memory and are written together
 * within EXPLAIN_FLUSH_MS (and at flush() and close()), so a compile's answer waits for no write
 * of its own record; a row never replaces a newer one of the same object (another process's). A
 * database of this schema version made before the table existed gets it at the next open, or at
 * the next write of records when the open could not add it (the database locked or not writable
 * then); an older Muster sharing the file ignores it. `readExplain` reads them on a read-only
 * connection: `muster cc --explain` makes no database and sets aside or removes nothing (SQLite
 * may leave its empty -wal and -shm files beside the database).
 *
 * One database rather than a file per item: keeping a result wrote three files (a temp file and
 * a rename each, in fan-out folders an empty cache makes), and creating a file cost 0.1–1.3 ms of
 * kernel CPU on the 2-core VM — a large part of the service's work on a clean build, on cores
 * the compiles need. Every blob is verified on read (a corrupt one is a miss and is removed), and
 * every row read is checked to be the one asked for.
 *
 * Size: the blobs are kept under a bound (default 5 GiB). Every row has a use stamp, set when it
 * is stored or served (a served row's stamp is kept in memory and written with the others within
 * STAMP_FLUSH_MS, and before a trim); when a store pushes the total over the bound, the least
 * recently used blobs are removed until it is under 90 % of it, and with them every entry and
 * manifest last used no later than the newest blob removed (serving an entry stamps its blobs
 * after it, so what is kept still has its blobs). An entry whose blob went some other way is a
 * miss (and is removed when found so).
 *
 * The database is opened again when its file was removed or replaced under it (a user clearing
 * the cache: SQLite itself leaves a moved file's WAL alone when it closes the old connection).
 * One that is not a database or is corrupt is set aside (`tier-v1.sqlite.corrupt`) and started
 * afresh — it is a cache. A database this process cannot use now (locked past the busy timeout,
 * a disk error) makes lookups miss and stores fail (logged by their callers); compiles go on.
 * The cache dir belongs on a local disk: SQLite's WAL needs memory shared by the processes using
 * it, which a network file system does not give across machines. When the database is made, the
 * folders of the earlier layout (`blobs/`, `entries/`, `manifests/`: a file per item) and any
 * `files/` left without it are removed; at each open, files in `files/` no row names (a crash
 * between a file and its row) are removed once they are STALE_FILE_MS old; the explain records'
 * folder of that layout (`explain/`, a file per object), and folders moved aside for removal that
 * a process did not live to remove (`*.gone-*`), whenever they are found. The remembered
 * toolchain ids next to the tier bound themselves (toolchain-ids.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { writeAtomic, writeAtomicSync } from '../../common/atomic-file.js';
import { isObject } from '../../common/is-object.js';
import { MusterError } from '../../protocol/errors.js';
import { MANIFEST_LINE_LIMITS } from '../../api/requests.js';
import { SYNC_READ_BYTES } from './file-hashes.js';

export const DEFAULT_LOCAL_TIER_BYTES = 5 * 1024 ** 3;
export const MANIFEST_LINES = 16;
/** Files up to this size are written with direct system calls (writeFileAtomic). */
const SYNC_WRITE_BYTES = SYNC_READ_BYTES;
/** Blobs up to this size live in the database; larger ones are files (`files/ab/<sha256>`). */
export const INLINE_BLOB_BYTES = SYNC_READ_BYTES;
/** Entries and manifests are small; a bigger one is not ours. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
const BLOB_NAME = /^[0-9a-f]{64}$/;
/** The database's file: the schema's version is in its name (another version keeps its own). */
export const TIER_DB_NAME = 'tier-v1.sqlite';
/** The folders of the earlier layout (a file per item), removed when the database is made. */
const LEGACY_DIRS = ['blobs', 'entries', 'manifests'];
/** The explain records' folder of the earlier layout: removed at any open that finds it. */
const LEGACY_EXPLAIN_DIR = 'explain';
/** A folder moved aside to be removed (one whose removal a process did not live to finish). */
const GONE_NAME = /\.gone-[0-9a-f]{12}$/;
const FILES_DIR = 'files';
/** How long a write waits for another process's (the database's busy timeout). */
const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Served rows' use stamps wait in memory at most this long. */
const STAMP_FLUSH_MS = 1000;
/** Explain records wait in memory at most this long (`--explain` right after a build sees them). */
const EXPLAIN_FLUSH_MS = 100;
/** A large blob's file no row names is removed once it is this old (not one being stored). */
const STALE_FILE_MS = 10 * 60_000;
/** Rows a trim removes in one transaction (it yields between them). */
const TRIM_BATCH = 256;
/** The WAL is cut back to this after a checkpoint (it never shrinks otherwise). */
const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    inline INTEGER NOT NULL,
    used INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS blobs_used ON blobs (used);
  CREATE TABLE IF NOT EXISTS blob_data (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
  CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    used INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
  CREATE TABLE IF NOT EXISTS manifests (
    direct TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    used INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS manifests_used ON manifests (used);
`;
const HAS_EXPLAIN = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'explain'";
const EXPLAIN_OF = 'SELECT object, source, at, body FROM explain WHERE object = ?';
/**
 * `muster cc --explain`'s records (explain.ts), by absolute object path; `source` (absolute) for
 * `--explain SOURCE`, `at` (ISO 8601, UTC: sorts as time) to keep the newest.
 */
const EXPLAIN_SCHEMA = `
  CREATE TABLE IF NOT EXISTS explain (
    object TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL
  ) WITHOUT ROWID;
`;

/** An explain record as the tier keeps it (its body is explain.ts's to write and check). */
export interface ExplainRow {
  /** The object's absolute path. */
  readonly object: string;
  /** The source's absolute path. */
  readonly source: string;
  readonly at: string;
  readonly body: string;
}

/** A kept result (a row of `entries`). */
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
 * An entry row's result, or null when it is not one (exactly the fields of LocalEntry, within
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
 * A manifest row's lines, or null when it is not one: `{ "lines": [ { "includes": [[path,
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
  /** The use stamps' clock (ms; tests give their own). */
  readonly now?: () => number;
  /** How long a write waits for another process's (tests give a short one). */
  readonly busyTimeoutMs?: number;
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
 * A file of the cache dir (a large blob of the tier), written atomically, 0600
 * in a 0700 folder made first (once per process, again if it went): a small one with direct
 * system calls (a thread-pool round trip per step cost more CPU than the write), a larger one
 * through the pool, so that it does not hold up the compiles the service answers meanwhile.
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

/** A database whose schema is not this version's (another program's file of that name). */
class TierSchemaError extends Error {
  override readonly name = 'TierSchemaError';
}

/** The database's file was replaced while this process opened it: opened again. */
class TierReplacedError extends Error {
  override readonly name = 'TierReplacedError';
}

/** The tier was closed (its service stops): what still runs misses and stores nothing. */
class TierClosedError extends Error {
  override readonly name = 'TierClosedError';
}

function errorCode(err: unknown): unknown {
  return isObject(err) ? err['code'] : undefined;
}

/** Not a usable database: set aside and started afresh. */
function isUnusable(err: unknown): boolean {
  const code = errorCode(err);
  return (
    err instanceof TierSchemaError ||
    (typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')))
  );
}

/** An error of a system call (ENOENT, EACCES, EIO…), not of a program. */
function isSystemError(err: unknown): boolean {
  return isObject(err) && typeof err['errno'] === 'number' && typeof err['code'] === 'string';
}

/** What a cache may meet and carry on from (SQLite's errors, the file system's); not bugs. */
function isCacheFailure(err: unknown): boolean {
  return (
    err instanceof Database.SqliteError ||
    err instanceof TierReplacedError ||
    err instanceof TierClosedError ||
    isUnusable(err) ||
    isSystemError(err)
  );
}

interface BlobRow {
  sha256: string;
  size: number;
  inline: number;
  data: Buffer | null;
}

interface TrimBatch {
  removed: number;
  total: number;
  cutoff: number | null;
  files: string[];
}

type StampTable = 'blobs' | 'entries' | 'manifests';

function prepare(db: Database.Database) {
  const q = {
    blob: db.prepare<[string], BlobRow>(
      'SELECT b.sha256, b.size, b.inline, d.data FROM blobs b ' +
        'LEFT JOIN blob_data d ON d.sha256 = b.sha256 WHERE b.sha256 = ?',
    ),
    blobSize: db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE sha256 = ?'),
    putBlob: db.prepare<[string, number, number, number]>(
      'INSERT OR REPLACE INTO blobs (sha256, size, inline, used) VALUES (?, ?, ?, ?)',
    ),
    putBlobData: db.prepare<[string, Buffer]>(
      'INSERT OR REPLACE INTO blob_data (sha256, data) VALUES (?, ?)',
    ),
    removeBlob: db.prepare<[string]>('DELETE FROM blobs WHERE sha256 = ?'),
    removeBlobData: db.prepare<[string]>('DELETE FROM blob_data WHERE sha256 = ?'),
    blobBytes: db.prepare<[], { total: number | null }>('SELECT sum(size) AS total FROM blobs'),
    blobsByUse: db.prepare<[], { sha256: string; size: number; inline: number; used: number }>(
      'SELECT sha256, size, inline, used FROM blobs ORDER BY used, sha256',
    ),
    entry: db.prepare<[string], { key: string; body: string }>(
      'SELECT key, body FROM entries WHERE key = ?',
    ),
    putEntry: db.prepare<[string, string, number]>(
      'INSERT OR REPLACE INTO entries (key, body, used) VALUES (?, ?, ?)',
    ),
    removeEntry: db.prepare<[string]>('DELETE FROM entries WHERE key = ?'),
    manifest: db.prepare<[string], { direct: string; body: string }>(
      'SELECT direct, body FROM manifests WHERE direct = ?',
    ),
    putManifest: db.prepare<[string, string, number]>(
      'INSERT OR REPLACE INTO manifests (direct, body, used) VALUES (?, ?, ?)',
    ),
    removeEntriesUsedBy: db.prepare<[number]>('DELETE FROM entries WHERE used <= ?'),
    removeManifestsUsedBy: db.prepare<[number]>('DELETE FROM manifests WHERE used <= ?'),
    stamp: {
      blobs: db.prepare<[number, string]>('UPDATE blobs SET used = max(used, ?) WHERE sha256 = ?'),
      entries: db.prepare<[number, string]>('UPDATE entries SET used = max(used, ?) WHERE key = ?'),
      manifests: db.prepare<[number, string]>(
        'UPDATE manifests SET used = max(used, ?) WHERE direct = ?',
      ),
    },
  };
  return {
    q,
    storeBlob: db.transaction((hash: string, data: Buffer, inline: boolean, used: number) => {
      if (inline) q.putBlobData.run(hash, data);
      else q.removeBlobData.run(hash);
      q.putBlob.run(hash, data.length, inline ? 1 : 0, used);
    }),
    dropBlob: db.transaction((hash: string) => {
      q.removeBlob.run(hash);
      q.removeBlobData.run(hash);
    }),
    /** Puts `line` first in the manifest (its twin moved up), keeping MANIFEST_LINES. */
    addLine: db.transaction((direct: string, line: ManifestLine, used: number) => {
      const row = q.manifest.get(direct);
      const old = row?.direct === direct ? manifestLinesOf(parseJson(row.body)) : null;
      const same = (l: ManifestLine): boolean =>
        l.entry === line.entry && JSON.stringify(l.includes) === JSON.stringify(line.includes);
      const lines = [line, ...(old ?? []).filter((l) => !same(l))];
      q.putManifest.run(direct, JSON.stringify({ lines: lines.slice(0, MANIFEST_LINES) }), used);
    }),
    stamps: db.transaction((stamps: ReadonlyMap<StampTable, ReadonlyMap<string, number>>) => {
      for (const [table, keys] of stamps) for (const [key, at] of keys) q.stamp[table].run(at, key);
    }),
    /** Removes up to TRIM_BATCH of the least recently used blobs while over `target`. */
    trimBatch: db.transaction((target: number, files: string): TrimBatch => {
      const batch: TrimBatch = {
        removed: 0,
        total: q.blobBytes.get()?.total ?? 0,
        cutoff: null,
        files: [],
      };
      const chosen: string[] = [];
      for (const blob of q.blobsByUse.iterate()) {
        if (batch.total <= target || chosen.length >= TRIM_BATCH) break;
        chosen.push(blob.sha256);
        if (blob.inline !== 1) batch.files.push(fanout(files, blob.sha256));
        batch.total -= blob.size;
        batch.cutoff = blob.used;
      }
      for (const hash of chosen) {
        q.removeBlob.run(hash);
        q.removeBlobData.run(hash);
      }
      batch.removed = chosen.length;
      return batch;
    }),
    removeUsedBy: db.transaction((cutoff: number) => {
      q.removeEntriesUsedBy.run(cutoff);
      q.removeManifestsUsedBy.run(cutoff);
    }),
  };
}

/**
 * The explain table's statements, making the table first when a database made before it lacks
 * it; null when it cannot be made now (locked past the busy timeout, read-only): the tier works
 * on without explain records until its next open.
 */
function prepareExplain(db: Database.Database): ExplainStatements | null {
  if (db.prepare(HAS_EXPLAIN).get() === undefined) {
    try {
      db.exec(EXPLAIN_SCHEMA);
    } catch (err) {
      if (!(err instanceof Database.SqliteError) || isUnusable(err)) throw err;
      return null;
    }
  }
  const get = db.prepare<[string], ExplainRow>(EXPLAIN_OF);
  // Never over a newer record of the object (another process's, written before this batch).
  const put = db.prepare<[string, string, string, string]>(
    'INSERT INTO explain (object, source, at, body) VALUES (?, ?, ?, ?) ' +
      'ON CONFLICT (object) DO UPDATE SET source = excluded.source, at = excluded.at, ' +
      'body = excluded.body WHERE excluded.at >= explain.at',
  );
  const keepNewest = db.prepare<[number]>(
    'DELETE FROM explain WHERE object IN ' +
      '(SELECT object FROM explain ORDER BY at DESC, object LIMIT -1 OFFSET ?)',
  );
  return {
    get,
    putAll: db.transaction((rows: readonly ExplainRow[], keep: number | null) => {
      for (const row of rows) put.run(row.object, row.source, row.at, row.body);
      if (keep !== null) keepNewest.run(keep);
    }),
  };
}

interface ExplainStatements {
  readonly get: Database.Statement<[string], ExplainRow>;
  /** Writes `rows`, then keeps the newest `keep` records (null: no trim asked for). */
  readonly putAll: (rows: readonly ExplainRow[], keep: number | null) => void;
}

type Prepared = ReturnType<typeof prepare>;

interface Open extends Prepared {
  readonly db: Database.Database;
  /** The database file's inode when opened: another one there means it was replaced. */
  readonly ino: number;
  /** Null while the table is missing (prepareExplain could not add it: tried again later). */
  explain: ExplainStatements | null;
}

/** Explain records as `readExplain` gives them. */
export interface ExplainRows {
  /** The record of `object` (an absolute path), or null. */
  of(object: string): ExplainRow | null;
  /** The records of compiles of `source` (an absolute path), newest first. */
  ofSource(source: string): Iterable<ExplainRow>;
}

/**
 * Reads the explain records of the cache dir `dir` through `read` (in it: the rows are read
 * while it runs), on a read-only connection: no database is made, nothing set aside or removed
 * (`muster cc --explain`; SQLite may leave its empty -wal and -shm files). Undefined when there
 * is no database (or it went meanwhile), no explain table in it, or the file is not a sound
 * database (the service sets it aside at its next open); LOCAL_CACHE_UNREADABLE when it cannot
 * be read now (locked past the busy timeout, not readable).
 */
export function readExplain<T>(dir: string, read: (rows: ExplainRows) => T): T | undefined {
  const file = join(dir, TIER_DB_NAME);
  if (!existsSync(file)) return undefined;
  try {
    return readExplainOf(file, read);
  } catch (err) {
    if (!(err instanceof Database.SqliteError) && !isSystemError(err)) throw err;
    if (!existsSync(file) || isUnusable(err)) return undefined;
    throw new MusterError(
      'LOCAL_CACHE_UNREADABLE',
      `cannot read ${file}: ${err instanceof Error ? err.message : String(err)} ` +
        '(if another process holds it, try again; if it is not readable, fix its permissions ' +
        'or remove the folder: it is a cache, the next compile starts a new one)',
    );
  }
}

function readExplainOf<T>(file: string, read: (rows: ExplainRows) => T): T | undefined {
  const db = new Database(file, {
    readonly: true,
    fileMustExist: true,
    timeout: DEFAULT_BUSY_TIMEOUT_MS,
  });
  try {
    if (db.prepare(HAS_EXPLAIN).get() === undefined) return undefined;
    const of = db.prepare<[string], ExplainRow>(EXPLAIN_OF);
    const bySource = db.prepare<[string], ExplainRow>(
      'SELECT object, source, at, body FROM explain WHERE source = ? ORDER BY at DESC',
    );
    return read({
      of(object) {
        const row = of.get(object);
        return row?.object === object ? row : null;
      },
      *ofSource(source) {
        for (const row of bySource.iterate(source)) if (row.source === source) yield row;
      },
    });
  } finally {
    db.close();
  }
}

export class LocalTier {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #file: string;
  readonly #files: string;
  readonly #now: () => number;
  readonly #busyTimeoutMs: number;
  #open: Open | null = null;
  /** Bytes of blobs as this process last knew them (null: not summed since the open). */
  #bytes: number | null = null;
  #trimming: Promise<void> | null = null;
  /** Served rows' use stamps not written yet (#flushStamps). */
  #stamps = new Map<StampTable, Map<string, number>>();
  #stampTimer: NodeJS.Timeout | null = null;
  /** Explain records not written yet, by object, and a trim asked for (#flushExplain). */
  #explains = new Map<string, ExplainRow>();
  #explainKeep: number | null = null;
  #explainTimer: NodeJS.Timeout | null = null;
  #closed = false;
  /** The inode of the file #openDb last opened (what #setAside may move). */
  #opening: number | null = null;

  constructor(options: LocalTierOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? DEFAULT_LOCAL_TIER_BYTES;
    this.#now = options.now ?? Date.now;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.#file = join(this.dir, TIER_DB_NAME);
    this.#files = join(this.dir, FILES_DIR);
  }

  /** Stores `data` under its hash (a no-op but for the use stamp when it is there already). */
  async putBlob(data: Buffer): Promise<string> {
    const hash = sha256(data);
    const inline = data.length <= INLINE_BLOB_BYTES;
    const existing = this.#read(({ q }) => q.blobSize.get(hash));
    if (existing?.size === data.length && (inline || this.#fileThere(hash, data.length))) {
      // At once, not with the served rows' stamps: the entry stored next is stamped now, and a
      // trim meanwhile must not see its blob as old.
      this.#use(({ q }) => q.stamp.blobs.run(this.#now(), hash));
      return hash;
    }
    if (!inline) await writeFileAtomic(fanout(this.#files, hash), data);
    this.#use((open) => open.storeBlob(hash, data, inline, this.#now()));
    this.#grew(existing?.size === data.length ? 0 : data.length);
    return hash;
  }

  /**
   * The blob's bytes, or null when it is missing, not of `size` (an entry's record of it), or
   * corrupt (then it is removed).
   */
  async getBlob(hash: string, size?: number): Promise<Buffer | null> {
    if (!isHash(hash)) return null;
    const row = this.#read(({ q }) => q.blob.get(hash));
    if (row === null || row === undefined || row.sha256 !== hash) return null;
    if (size !== undefined && size !== row.size) return null;
    const data = row.inline === 1 ? row.data : await this.#readFile(hash, row.size);
    if (data === 'unavailable') return null;
    if (data === null || data.length !== row.size || sha256(data) !== hash) {
      await this.#removeBlob(hash, row.inline === 1);
      return null;
    }
    this.#stamp('blobs', hash);
    return data;
  }

  async putEntry(entry: LocalEntry): Promise<void> {
    this.#use(({ q }) => q.putEntry.run(entry.key, JSON.stringify(entry), this.#now()));
  }

  /** The entry under `key`, or null when there is none or it cannot be read. */
  async getEntry(key: string): Promise<LocalEntry | null> {
    if (!isHash(key)) return null;
    const row = this.#read(({ q }) => q.entry.get(key));
    if (row === null || row === undefined || row.key !== key) return null;
    const entry = localEntryOf(parseJson(row.body));
    if (entry === null || entry.key !== key) return null;
    this.#stamp('entries', key);
    return entry;
  }

  async removeEntry(key: string): Promise<void> {
    if (isHash(key)) this.#write(({ q }) => q.removeEntry.run(key));
  }

  /** The direct key's manifest lines, newest first (empty when there are none). */
  async getManifest(direct: string): Promise<ManifestLine[]> {
    if (!isHash(direct)) return [];
    const row = this.#read(({ q }) => q.manifest.get(direct));
    if (row === null || row === undefined || row.direct !== direct) return [];
    const lines = manifestLinesOf(parseJson(row.body));
    if (lines === null) return [];
    this.#stamp('manifests', direct);
    return lines;
  }

  /**
   * Puts `line` first in the direct key's manifest (a line with the same includes and entry
   * moves up), keeping the newest MANIFEST_LINES; in one transaction, so two writers at once
   * both keep their line.
   */
  async addManifestLine(direct: string, line: ManifestLine): Promise<void> {
    if (!BLOB_NAME.test(direct)) throw new Error(`not a key: ${direct}`);
    this.#use((open) => open.addLine.immediate(direct, line, this.#now()));
  }

  /**
   * The explain record of `object` (an absolute path): the one waiting to be written, else the
   * database's; null when there is none or it cannot be read now.
   */
  explainOf(object: string): ExplainRow | null {
    const waiting = this.#explains.get(object);
    if (waiting !== undefined) return waiting;
    const row = this.#read(({ explain }) => explain?.get.get(object));
    return row?.object === object ? row : null;
  }

  /**
   * Keeps `row` as its object's explain record: written with the others within
   * EXPLAIN_FLUSH_MS; dropped when the database cannot be used then (an explanation, no more).
   */
  putExplain(row: ExplainRow): void {
    if (this.#closed) return;
    this.#explains.delete(row.object); // the newest last, as they are written
    this.#explains.set(row.object, row);
    this.#scheduleExplain();
  }

  /** Keeps only the newest `max` explain records, at the next write of them. */
  keepNewestExplain(max: number): void {
    this.#explainKeep = max;
    this.#scheduleExplain();
  }

  /** Writes what waits in memory (use stamps, explain records) now. */
  flush(): void {
    this.#flushStamps();
    this.#flushExplain();
  }

  /** The blobs' total size. */
  async scanBytes(): Promise<number> {
    const total = this.#use(({ q }) => q.blobBytes.get()?.total ?? 0);
    this.#bytes = total;
    return total;
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

  /**
   * Writes the use stamps and closes the database for good: what still runs (a store, a trim)
   * misses and keeps nothing. Idempotent.
   */
  close(): void {
    const open = this.#open;
    const s = statSync(this.#file, { throwIfNoEntry: false });
    if (open !== null && s?.ino === open.ino) this.#flushStamps();
    // Not into a new database made just for them (the cache dir cleared meanwhile).
    if (!this.#closed && s !== undefined) this.#flushExplain();
    this.#closed = true;
    this.#closeDb();
    this.#explains = new Map();
    this.#explainKeep = null;
    if (this.#explainTimer !== null) clearTimeout(this.#explainTimer);
    this.#explainTimer = null;
  }

  /** Closes the connection (the next use opens the file again); its unwritten stamps go. */
  #closeDb(): void {
    const open = this.#open;
    this.#open = null;
    this.#bytes = null;
    this.#stamps = new Map();
    if (this.#stampTimer !== null) clearTimeout(this.#stampTimer);
    this.#stampTimer = null;
    try {
      open?.db.close();
    } catch {
      // What cannot be closed cleanly is dropped: SQLite recovers a WAL at the next open.
    }
  }

  async #trim(): Promise<void> {
    const target = Math.floor(this.maxBytes * 0.9);
    let cutoff: number | null = null;
    for (;;) {
      // A batch at a time, each choosing and removing in one write transaction (nothing another
      // process stamps or stores meanwhile is removed unseen), the loop free in between.
      this.#flushStamps();
      const batch = this.#use((open) => open.trimBatch.immediate(target, this.#files));
      this.#bytes = batch.total;
      if (batch.removed === 0) break;
      if (batch.cutoff !== null) cutoff = Math.max(cutoff ?? batch.cutoff, batch.cutoff);
      for (const file of batch.files) await rm(file, { force: true }).catch(() => null);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (cutoff !== null) {
      const before = cutoff;
      this.#flushStamps();
      this.#use((open) => open.removeUsedBy(before));
    }
  }

  /**
   * Counts a stored blob against the bound: the total is summed after each open and again when
   * the count passes the bound (other processes store too), then trimmed if it is over.
   */
  #grew(bytes: number): void {
    const counted = this.#bytes === null ? null : (this.#bytes += bytes);
    if (counted !== null && counted <= this.maxBytes) return;
    const total = this.#read(({ q }) => q.blobBytes.get()?.total ?? 0);
    if (total === null) return;
    this.#bytes = total;
    // In the background: the store that pushed it over does not wait for it, nor fail with it
    // (a trim that fails runs again at the next store over the bound).
    // eslint-disable-next-line no-restricted-syntax -- see above
    if (total > this.maxBytes) this.trim().catch(() => undefined);
  }

  /** A large blob's file: null when it is missing or not its size, 'unavailable' on an error. */
  async #readFile(hash: string, size: number): Promise<Buffer | null | 'unavailable'> {
    const file = fanout(this.#files, hash);
    try {
      const s = await stat(file);
      if (!s.isFile() || s.size !== size) return null;
      return await readFile(file);
    } catch (err) {
      return errorCode(err) === 'ENOENT' ? null : 'unavailable';
    }
  }

  async #removeBlob(hash: string, inline: boolean): Promise<void> {
    this.#write((open) => open.dropBlob(hash));
    if (!inline) await rm(fanout(this.#files, hash), { force: true }).catch(() => null);
  }

  #fileThere(hash: string, size: number): boolean {
    const s = statSync(fanout(this.#files, hash), { throwIfNoEntry: false });
    return s?.isFile() === true && s.size === size;
  }

  /** A served row's use stamp: kept in memory, written with the others soon (#flushStamps). */
  #stamp(table: StampTable, key: string): void {
    let keys = this.#stamps.get(table);
    if (keys === undefined) {
      keys = new Map<string, number>();
      this.#stamps.set(table, keys);
    }
    keys.set(key, this.#now());
    if (this.#stampTimer !== null) return;
    this.#stampTimer = setTimeout(() => {
      this.#stampTimer = null;
      this.#flushStamps(); // never throws: #write keeps to cache failures, and stamps are SQL only
    }, STAMP_FLUSH_MS);
    this.#stampTimer.unref();
  }

  #scheduleExplain(): void {
    if (this.#explainTimer !== null || this.#closed) return;
    this.#explainTimer = setTimeout(() => {
      this.#explainTimer = null;
      this.#flushExplain(); // never throws: #write keeps to cache failures
    }, EXPLAIN_FLUSH_MS);
    this.#explainTimer.unref();
  }

  /**
   * Writes the waiting explain records in one transaction; dropped when the database cannot be
   * used now, or when it went since this process opened it (the cache dir cleared: not made
   * again just for them — the next compile's store makes it).
   */
  #flushExplain(): void {
    if (this.#explainTimer !== null) clearTimeout(this.#explainTimer);
    this.#explainTimer = null;
    if (this.#explains.size === 0 && this.#explainKeep === null) return;
    const rows = [...this.#explains.values()];
    const keep = this.#explainKeep;
    this.#explains = new Map();
    this.#explainKeep = null;
    if (this.#open !== null && !existsSync(this.#file)) return;
    this.#write((open) => {
      open.explain ??= prepareExplain(open.db);
      open.explain?.putAll(rows, keep);
    });
  }

  #flushStamps(): void {
    if (this.#stampTimer !== null) clearTimeout(this.#stampTimer);
    this.#stampTimer = null;
    if (this.#stamps.size === 0) return;
    const stamps = this.#stamps;
    this.#stamps = new Map();
    // A stamp only orders trimming: one not written makes its row a little older, no more.
    this.#write((open) => open.stamps(stamps));
  }

  /** A read: null when the database cannot be used now (a miss, as a missing row is). */
  #read<T>(work: (open: Open) => T): T | null {
    try {
      return this.#use(work);
    } catch (err) {
      if (!isCacheFailure(err)) throw err;
      return null;
    }
  }

  /** A removal or stamps: not done when the database cannot be used now (harmless). */
  #write(work: (open: Open) => unknown): void {
    try {
      this.#use(work);
    } catch (err) {
      if (!isCacheFailure(err)) throw err;
    }
  }

  /**
   * Runs `work` on the open database, opening it first (again, when its file went or was
   * replaced); a database found unusable is set aside and the work tried once on a new one.
   */
  #use<T>(work: (open: Open) => T): T {
    for (let attempt = 0; ; attempt++) {
      const open = this.#current();
      try {
        return work(open);
      } catch (err) {
        if (attempt > 0 || !isUnusable(err)) throw err;
        this.#setAside(open.ino);
      }
    }
  }

  #current(): Open {
    if (this.#closed) throw new TierClosedError('the local tier is closed');
    const open = this.#open;
    if (open !== null) {
      const s = statSync(this.#file, { throwIfNoEntry: false });
      if (s !== undefined && s.ino === open.ino) return open;
      // Removed or replaced: SQLite leaves the WAL of a database moved from under it alone.
      this.#closeDb();
    }
    for (let attempt = 0; ; attempt++) {
      try {
        this.#open = this.#openDb();
        return this.#open;
      } catch (err) {
        if (attempt > 1) throw err;
        if (err instanceof TierReplacedError) continue;
        if (!isUnusable(err)) throw err;
        this.#setAside(this.#opening);
      }
    }
  }

  #openDb(): Open {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // Never a link to elsewhere (SQLite would follow it); the file made 0600 before SQLite opens
    // it, so its WAL and shared-memory files are 0600 too. A WAL left by a database that went is
    // SQLite's to drop (it does when it opens a database with no pages).
    if (lstatSync(this.#file, { throwIfNoEntry: false })?.isSymbolicLink() === true)
      rmSync(this.#file);
    let made = false;
    try {
      closeSync(openSync(this.#file, 'wx', 0o600));
      made = true;
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
    }
    const ino = statSync(this.#file).ino;
    this.#opening = ino;
    const db = new Database(this.#file, { timeout: this.#busyTimeoutMs });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
      // The schema under a write lock only when it is not there yet (two first opens at once).
      if (db.pragma('user_version', { simple: true }) !== 1) {
        db.transaction(() => {
          const version = db.pragma('user_version', { simple: true });
          if (version === 1) return;
          if (version !== 0) throw new TierSchemaError(`schema version ${String(version)}`);
          db.exec(SCHEMA);
          db.exec(EXPLAIN_SCHEMA);
          db.pragma('user_version = 1');
        }).immediate();
      }
      const explain = prepareExplain(db);
      if (statSync(this.#file).ino !== ino) throw new TierReplacedError('replaced while opened');
      if (made) this.#removeLeftovers([...LEGACY_DIRS, FILES_DIR, LEGACY_EXPLAIN_DIR]);
      else {
        this.#removeLeftovers([LEGACY_EXPLAIN_DIR]);
        this.#sweepFiles();
      }
      return { db, ino, explain, ...prepare(db) };
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * Moves an unusable database out of the way — only the file found unusable (`ino`): another
   * process may have set it aside already and made a new one there — so that the next open
   * makes a new one.
   */
  #setAside(ino: number | null): void {
    this.#closeDb();
    const s = statSync(this.#file, { throwIfNoEntry: false });
    if (s === undefined || s.ino !== ino) return;
    try {
      renameSync(this.#file, `${this.#file}.corrupt`);
    } catch {
      rmSync(this.#file, { force: true });
    }
  }

  /**
   * The earlier layout's folders (and, for a new database, the large blobs' files left from one
   * that went), moved aside at once (this process's next stores make their own) and removed in
   * the background (a cache: nothing reads them).
   */
  #removeLeftovers(names: readonly string[]): void {
    const gone: string[] = [];
    for (const name of names) {
      const aside = join(this.dir, `${name}.gone-${randomBytes(6).toString('hex')}`);
      try {
        renameSync(join(this.dir, name), aside);
        gone.push(aside);
      } catch {
        continue; // not there
      }
    }
    // And those a process moved aside but did not live to remove.
    let found: string[] = [];
    try {
      found = readdirSync(this.dir);
    } catch {
      // Not listable now (removed meanwhile): met again at the next open.
    }
    for (const name of found) {
      const path = join(this.dir, name);
      if (GONE_NAME.test(name) && !gone.includes(path)) gone.push(path);
    }
    for (const path of gone)
      // eslint-disable-next-line no-restricted-syntax -- a folder not removed is only disk space: nothing reads it
      rm(path, { recursive: true, force: true }).catch(() => undefined);
  }

  /** Large blobs' files no row names (a crash between the two), and stale temp files. */
  #sweepFiles(): void {
    const sweep = async (): Promise<void> => {
      const old = Date.now() - STALE_FILE_MS;
      for (const top of await readdir(this.#files).catch(() => [] as string[])) {
        const dir = join(this.#files, top);
        for (const name of await readdir(dir).catch(() => [] as string[])) {
          const s = await stat(join(dir, name)).catch(() => null);
          if (s === null || s.mtimeMs > old) continue;
          // undefined: no row; null: the database cannot say now (keep the file).
          const row = BLOB_NAME.test(name)
            ? this.#read(({ q }) => q.blobSize.get(name))
            : undefined;
          if (row === undefined) await rm(join(dir, name), { force: true });
        }
      }
    };
    // eslint-disable-next-line no-restricted-syntax -- a file not removed now is met again at the next open
    sweep().catch(() => undefined);
  }
}

function parseJson(text: string): unknown {
  if (text.length > MAX_JSON_BYTES) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
