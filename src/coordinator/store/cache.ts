/**
 * The shared compile cache (migration 5): results by key, direct-mode manifests, toolchains, and
 * the last use of each result for eviction.
 *
 * Entries and toolchains are immutable: a put whose key exists changes nothing and answers the
 * row already there (an exact key means the same result; the first one stays, so a result never
 * changes under a client that has read it). A row is written only when every blob it names is in
 * the blob store with the size it declares: the caller passes the store's sizes (`BlobSizeOf`),
 * and keeps those blobs from being swept until the row is written (BlobSweeper.hold); from then
 * on the row itself keeps them (ReplicationStore.fileLists).
 *
 * Entries, manifests and toolchains are replicated; entries' uses are not (a hit would put a
 * change on the stream). A toolchain's last use is part of its row, rewritten at most every 10
 * minutes (TOOLCHAIN_USE_STAMP_MS): which toolchains agents get follows it, also on a backup that takes
 * over. Toolchains are the one row a user can remove (an admin), or that goes when unused for
 * the coordinator's --toolchain-retention; each user may have TOOLCHAIN_ROWS.perUser of them. Eviction deletes the least recently used entries (never used: by creation) until the
 * total is within Cache.MaxBytes; their manifest lines go with them (ON DELETE CASCADE), their
 * blobs with the next blob sweep.
 */
import { createHash, randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import type { BuildFile } from '../../api/plan/types.js';
import { MusterError } from '../../protocol/errors.js';
import { SIZE_EXAMPLES, parseSize } from '../../common/size.js';
import { checkBlobs, checkEntry, checkLine, checkStamp, checkToolchain } from './cache-checks.js';
import type {
  BlobSizeOf,
  CacheBlob,
  CacheEntryRow,
  CacheManifestLine,
  CacheOutput,
  NewCacheEntry,
  NewManifestLine,
  NewToolchain,
  ToolchainRow,
  ToolchainSummary,
} from './types.js';

export type { BlobSizeOf, NewCacheEntry, NewManifestLine, NewToolchain };

/** The setting that bounds the bytes of cached results; DEFAULT_CACHE_MAX_BYTES when unset. */
export const CACHE_MAX_BYTES_SETTING = 'Cache.MaxBytes';
export const DEFAULT_CACHE_MAX_BYTES = 20 * 2 ** 30;
/**
 * Bytes, as a number or as text with an optional unit ("20GiB", "500 MB": what the web UI's text
 * field and `muster settings set` send); stored as the number. 0 turns the cache off (every
 * entry is evicted); at most 1 PiB.
 */
export const cacheMaxBytesSchema = z
  .union([
    z.number(),
    z
      .string()
      .refine((text) => parseSize(text) !== undefined, `a size such as ${SIZE_EXAMPLES}`)
      .transform((text) => parseSize(text) ?? Number.NaN),
  ])
  .pipe(
    z
      .number()
      .int()
      .min(0)
      .max(2 ** 50),
  );

/** The quota in bytes from the setting's stored value (unset or unreadable: the default). */
export function cacheMaxBytes(setting: unknown): number {
  const parsed = cacheMaxBytesSchema.safeParse(setting);
  return parsed.success ? parsed.data : DEFAULT_CACHE_MAX_BYTES;
}

/**
 * The setting that lets users' machines store results (default true: the ccache shared-cache
 * model, users of one coordinator trust each other's builds). false: only results this
 * coordinator obtained from agents are stored; clients' PUTs are refused.
 */
export const CACHE_ACCEPT_CLIENT_RESULTS_SETTING = 'Cache.AcceptClientResults';

/** Whether clients may store results, from the setting's stored value (unset: yes). */
export function acceptsClientResults(setting: unknown): boolean {
  return setting !== false;
}

/**
 * Toolchain rows at most, per user who registered them and in all (design §9): any builder may
 * register one, and each costs every agent its files. perUser is half of what a bundle ships
 * (bundles.ts SHIPPED_TOOLCHAINS), so one user's registrations alone never push out of the
 * bundle the toolchains others use. Beyond them a registration is refused
 * (TOO_MANY_TOOLCHAINS) until an admin removes some or they go unused for the retention.
 */
export const TOOLCHAIN_ROWS = { perUser: 16, total: 256 };

/** A toolchain's last use is rewritten at most this often: each write is a replicated change. */
export const TOOLCHAIN_USE_STAMP_MS = 600_000;

/** Lines kept per direct key: the newest. */
export const MANIFEST_LINES = 16;

const EVICT_BATCH = 500;
/**
 * A failback page's rows stop once their JSON reaches this (at least one row): manifest lines
 * can list thousands of headers each, so a page of `limit` of them could be hundreds of MiB.
 */
export const CACHE_PAGE_BYTES = 4 * 1024 * 1024;

export interface EvictionResult {
  removed: number;
  removedBytes: number;
  /** Bytes of the entries left. */
  totalBytes: number;
}

/** A page of the direct keys' listing (GET /cache/directs, migration 11). */
export interface DirectKeysPage {
  /** This listing's numbering: another than the caller's means its numbers mean nothing here. */
  epoch: string;
  /** The keys came from the first (the caller's epoch or number was not this one's). */
  reset: boolean;
  /** The keys after `since`, in the order they came, at most `limit`: their first 8 hex digits. */
  prefixes: string[];
  /** Where the next page starts (the last key's number, or `since` when there is none). */
  next: number;
  /** Keys come after this page. */
  more: boolean;
  /** Direct keys there are now. */
  count: number;
}

/** Where a page of a failback export ends: the last row's stamp and key. */
export interface CacheCursor {
  at: string;
  key: string;
}

/** The tables a backup hands back, in the order the primary takes them (lines need entries). */
export const CACHE_HISTORY_TABLES = ['toolchains', 'entries', 'manifests'] as const;
export type CacheHistoryTable = (typeof CACHE_HISTORY_TABLES)[number];
export interface CacheHistoryRow {
  toolchains: ToolchainRow;
  entries: CacheEntryRow;
  manifests: CacheManifestLine;
}

interface Cursor {
  since: string;
  at: string;
  key: string;
  limit: number;
}

interface LineCursor {
  since: string;
  at: string;
  direct: string;
  hash: string;
  limit: number;
}

/** The key a manifest line has in a failback cursor: its direct key and its includes' hash. */
export function manifestLineCursorKey(
  direct: string,
  includes: readonly [string, string][],
): string {
  return `${direct}:${includesHash(JSON.stringify(includes))}`;
}

function includesHash(includesJson: string): string {
  return createHash('sha256').update(includesJson).digest('hex');
}

interface EntrySql {
  key: string;
  kind: 'compile' | 'task';
  outputs: string;
  stderr_sha256: string | null;
  stderr_size: number | null;
  exit_code: number;
  size: number;
  toolchain: string | null;
  source: 'client' | 'agent';
  build_uid: string | null;
  created_by: string;
  created_at: string;
}

interface LineSql {
  direct: string;
  includes_hash: string;
  includes: string;
  entry: string;
  created_by: string;
  created_at: string;
}

interface ToolchainSql {
  id: string;
  files: string;
  info: string;
  created_by: string;
  created_at: string;
  last_used_at: string;
  size: number;
}

type ToolchainSummarySql = Omit<ToolchainSql, 'files'> & { files: number };

function toEntry(row: EntrySql): CacheEntryRow {
  return {
    key: row.key,
    kind: row.kind,
    outputs: JSON.parse(row.outputs) as CacheOutput[],
    stderr:
      row.stderr_sha256 === null ? null : { sha256: row.stderr_sha256, size: row.stderr_size ?? 0 },
    exitCode: row.exit_code,
    size: row.size,
    toolchain: row.toolchain,
    source: row.source,
    buildUid: row.build_uid,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

function toLine(row: LineSql): CacheManifestLine {
  return {
    direct: row.direct,
    includes: JSON.parse(row.includes) as [string, string][],
    entry: row.entry,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

function toToolchain(row: ToolchainSql): ToolchainRow {
  return {
    ...toToolchainSummary({ ...row, files: 0 }),
    files: JSON.parse(row.files) as BuildFile[],
  };
}

function toToolchainSummary(row: ToolchainSummarySql): ToolchainSummary {
  return {
    id: row.id,
    files: row.files,
    info: JSON.parse(row.info) as Record<string, unknown>,
    createdBy: row.created_by,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    bytes: row.size,
  };
}

/** The statements, prepared once: lookups and uses run for every compile of every client. */
function prepare(db: Database.Database) {
  return {
    entry: db.prepare<[string], EntrySql>('SELECT * FROM cache_entries WHERE key = ?'),
    insertEntry: db.prepare(
      `INSERT INTO cache_entries (key, kind, outputs, stderr_sha256, stderr_size, exit_code, size,
         toolchain, source, build_uid, created_by, created_at)
       VALUES (@key, @kind, @outputs, @stderr_sha256, @stderr_size, @exit_code, @size,
         @toolchain, @source, @build_uid, @created_by, @created_at)
       ON CONFLICT (key) DO NOTHING`,
    ),
    touch: db.prepare<{ key: string; at: string }>(
      `INSERT INTO cache_usage (key, last_used, hits)
       SELECT @key, @at, 1 WHERE EXISTS (SELECT 1 FROM cache_entries WHERE key = @key)
       ON CONFLICT (key) DO UPDATE SET last_used = max(last_used, excluded.last_used),
         hits = hits + 1`,
    ),
    lastUsed: db.prepare<[string], { last_used: string; hits: number }>(
      'SELECT last_used, hits FROM cache_usage WHERE key = ?',
    ),
    manifest: db.prepare<[string], LineSql>(
      'SELECT * FROM cache_manifests WHERE direct = ? ORDER BY created_at DESC, rowid DESC',
    ),
    insertLine: db.prepare(
      `INSERT INTO cache_manifests (direct, includes_hash, includes, entry, created_by, created_at)
       VALUES (@direct, @includes_hash, @includes, @entry, @created_by, @created_at)
       ON CONFLICT (direct, includes_hash) DO NOTHING`,
    ),
    trimLines: db.prepare<{ direct: string; keep: number }>(
      `DELETE FROM cache_manifests WHERE direct = @direct AND rowid NOT IN (
         SELECT rowid FROM cache_manifests WHERE direct = @direct
         ORDER BY created_at DESC, rowid DESC LIMIT @keep)`,
    ),
    totals: db.prepare<[], { entries: number; bytes: number }>(
      'SELECT count(*) AS entries, coalesce(sum(size), 0) AS bytes FROM cache_entries',
    ),
    leastUsed: db.prepare<[], { key: string; size: number }>(
      `SELECT e.key, e.size FROM cache_entries e LEFT JOIN cache_usage u ON u.key = e.key
       ORDER BY coalesce(u.last_used, e.created_at), e.key`,
    ),
    deleteEntries: db.prepare<[string]>(
      'DELETE FROM cache_entries WHERE key IN (SELECT value FROM json_each(?))',
    ),
    toolchain: db.prepare<[string], ToolchainSql>('SELECT * FROM toolchains WHERE id = ?'),
    toolchains: db.prepare<[], ToolchainSql>('SELECT * FROM toolchains ORDER BY created_at, id'),
    toolchainSummaries: db.prepare<[], ToolchainSummarySql>(
      `SELECT id, info, created_by, created_at, last_used_at, size,
         json_array_length(files) AS files
       FROM toolchains ORDER BY last_used_at DESC, id`,
    ),
    toolchainCounts: db.prepare<[string], { total: number; mine: number }>(
      `SELECT count(*) AS total, coalesce(sum(created_by = ?), 0) AS mine FROM toolchains`,
    ),
    touchToolchain: db.prepare<{ id: string; at: string; before: string }>(
      'UPDATE toolchains SET last_used_at = @at WHERE id = @id AND last_used_at < @before',
    ),
    deleteToolchain: db.prepare<[string]>('DELETE FROM toolchains WHERE id = ?'),
    unusedToolchains: db
      .prepare<[string], string>('SELECT id FROM toolchains WHERE last_used_at < ? ORDER BY id')
      .pluck(),
    // Failback pages: rows made since a takeover, after a cursor, by (created_at, key).
    toolchainsSince: db.prepare<Cursor, ToolchainSql>(
      `SELECT * FROM toolchains WHERE created_at >= @since AND (created_at, id) > (@at, @key)
       ORDER BY created_at, id LIMIT @limit`,
    ),
    entriesSince: db.prepare<Cursor, EntrySql>(
      `SELECT * FROM cache_entries WHERE created_at >= @since AND (created_at, key) > (@at, @key)
       ORDER BY created_at, key LIMIT @limit`,
    ),
    linesSince: db.prepare<LineCursor, LineSql>(
      `SELECT * FROM cache_manifests WHERE created_at >= @since
         AND (created_at, direct, includes_hash) > (@at, @direct, @hash)
       ORDER BY created_at, direct, includes_hash LIMIT @limit`,
    ),
    directsAfter: db
      .prepare<{ since: number; limit: number }, [number, string]>(
        `SELECT seq, substr(direct, 1, 8) FROM cache_directs WHERE seq > @since
         ORDER BY seq LIMIT @limit`,
      )
      .raw(),
    directsLastSeq: db
      .prepare<[], number>("SELECT seq FROM sqlite_sequence WHERE name = 'cache_directs'")
      .pluck(),
    directsCount: db.prepare<[], number>('SELECT n FROM cache_directs_count').pluck(),
    insertToolchain: db.prepare(
      `INSERT INTO toolchains (id, files, info, created_by, created_at, last_used_at, size)
       VALUES (@id, @files, @info, @created_by, @created_at, @last_used_at, @size)
       ON CONFLICT (id) DO NOTHING`,
    ),
  };
}

export class CacheStore {
  private readonly sql: ReturnType<typeof prepare>;
  /**
   * The direct keys' numbering as this process knows it: new at every start, so a client never
   * carries a number across a restore of the database (which may number keys again).
   */
  readonly directsEpoch = randomUUID();

  constructor(
    db: Database.Database,
    private readonly transaction: <T>(fn: () => T) => T,
    private readonly now: () => Date,
  ) {
    this.sql = prepare(db);
  }

  // ---- entries -------------------------------------------------------------------------------

  getEntry(key: string): CacheEntryRow | undefined {
    const row = this.sql.entry.get(key);
    return row && toEntry(row);
  }

  /**
   * Stores an entry unless its key exists; answers the row now under the key and whether this
   * call wrote it. BLOB_NOT_FOUND / BLOB_SIZE_MISMATCH when a blob it names is not in the blob
   * store as declared; VALIDATION_FAILED for a malformed entry. `createdAt`: now, or the stamp
   * the row had where it was made (a failback takes a backup's rows back with theirs).
   */
  putEntry(
    entry: NewCacheEntry,
    blobSizeOf: BlobSizeOf,
    createdAt: string = this.stamp(),
  ): { entry: CacheEntryRow; created: boolean } {
    checkEntry(entry);
    checkStamp(createdAt);
    const blobs: CacheBlob[] = [...entry.outputs, ...(entry.stderr ? [entry.stderr] : [])];
    checkBlobs(blobs, blobSizeOf);
    const size = blobs.reduce((sum, blob) => sum + blob.size, 0);
    return this.transaction(() => {
      const created =
        this.sql.insertEntry.run({
          key: entry.key,
          kind: entry.kind,
          outputs: JSON.stringify(
            entry.outputs.map(({ name, sha256, size, mode }) => ({ name, sha256, size, mode })),
          ),
          stderr_sha256: entry.stderr?.sha256 ?? null,
          stderr_size: entry.stderr?.size ?? null,
          exit_code: entry.exitCode,
          size,
          toolchain: entry.toolchain,
          source: entry.source,
          build_uid: entry.buildUid,
          created_by: entry.createdBy,
          created_at: createdAt,
        }).changes > 0;
      return { entry: toEntry(this.sql.entry.get(entry.key)!), created };
    });
  }

  /** Records a use of the entry (a hit) for eviction; false when there is no such entry. */
  touch(key: string, at: string = this.stamp()): boolean {
    return this.sql.touch.run({ key, at }).changes > 0;
  }

  /** When the entry was last used here and how often (undefined: never, or no such entry). */
  usage(key: string): { lastUsed: string; hits: number } | undefined {
    const row = this.sql.lastUsed.get(key);
    return row && { lastUsed: row.last_used, hits: row.hits };
  }

  totals(): { entries: number; bytes: number } {
    return this.sql.totals.get()!;
  }

  /**
   * Deletes the least recently used entries (an entry never used counts from its creation) until
   * their bytes are at most `maxBytes`. One ordered read picks them (nothing can be used in
   * between: this is synchronous, on the only connection), then they go in transactions of
   * EVICT_BATCH (one statement each), so a large eviction does not hold one huge transaction.
   */
  evict(maxBytes: number): EvictionResult {
    const total = this.totals().bytes;
    const victims: string[] = [];
    let left = total;
    if (left > maxBytes) {
      for (const { key, size } of this.sql.leastUsed.iterate()) {
        victims.push(key);
        left -= size;
        if (left <= maxBytes) break;
      }
    }
    for (let i = 0; i < victims.length; i += EVICT_BATCH) {
      const batch = JSON.stringify(victims.slice(i, i + EVICT_BATCH));
      this.transaction(() => this.sql.deleteEntries.run(batch));
    }
    return { removed: victims.length, removedBytes: total - left, totalBytes: left };
  }

  // ---- manifests -----------------------------------------------------------------------------

  /**
   * The direct keys that have manifest lines, after number `since` of listing `epoch`, in the
   * order they came (a key whose lines all went is gone from the listing; clients learn that only
   * from a listing from the first). From the first when `epoch` is another or `since` is past
   * every number given.
   */
  directKeys(epoch: string | undefined, since: number, limit: number): DirectKeysPage {
    const last = this.sql.directsLastSeq.get() ?? 0;
    const reset = epoch !== this.directsEpoch || since > last;
    const from = reset ? 0 : since;
    const rows = this.sql.directsAfter.all({ since: from, limit: limit + 1 });
    const page = rows.slice(0, limit);
    return {
      epoch: this.directsEpoch,
      reset,
      prefixes: page.map((row) => row[1]),
      next: page.at(-1)?.[0] ?? from,
      more: rows.length > limit,
      count: this.sql.directsCount.get() ?? 0,
    };
  }

  /** The lines under a direct key, newest first (each leads to an entry that exists). */
  manifest(direct: string): CacheManifestLine[] {
    return this.sql.manifest.all(direct).map(toLine);
  }

  /**
   * Adds a line to a direct key's manifest, keeping the newest MANIFEST_LINES; false when a line
   * with the same includes is there already. NOT_FOUND when its entry does not exist.
   */
  putManifestLine(line: NewManifestLine, createdAt: string = this.stamp()): boolean {
    checkLine(line);
    checkStamp(createdAt);
    const includes = JSON.stringify(line.includes);
    return this.transaction(() => {
      if (this.sql.entry.get(line.entry) === undefined)
        throw new MusterError('NOT_FOUND', `no cache entry ${line.entry}`, { entry: line.entry });
      const added =
        this.sql.insertLine.run({
          direct: line.direct,
          includes_hash: includesHash(includes),
          includes,
          entry: line.entry,
          created_by: line.createdBy,
          created_at: createdAt,
        }).changes > 0;
      if (added) this.sql.trimLines.run({ direct: line.direct, keep: MANIFEST_LINES });
      return added;
    });
  }

  // ---- toolchains ----------------------------------------------------------------------------

  getToolchain(id: string): ToolchainRow | undefined {
    const row = this.sql.toolchain.get(id);
    return row && toToolchain(row);
  }

  listToolchains(): ToolchainRow[] {
    return this.sql.toolchains.all().map(toToolchain);
  }

  /** Every toolchain without its file list (a count instead), most recently used first. */
  toolchainSummaries(): ToolchainSummary[] {
    return this.sql.toolchainSummaries.all().map(toToolchainSummary);
  }

  /**
   * Stores a toolchain unless its id exists (ids are content hashes); as putEntry. A new row's
   * last use is its registration (or the `lastUsedAt` a failback's row brings); registering one
   * that exists counts as a use of it. With `limits` (a user's registration, not a failback),
   * TOO_MANY_TOOLCHAINS when its user, or everyone, has that many already.
   */
  putToolchain(
    toolchain: NewToolchain,
    blobSizeOf: BlobSizeOf,
    createdAt: string = this.stamp(),
    limits?: { perUser: number; total: number },
  ): { toolchain: ToolchainRow; created: boolean } {
    checkToolchain(toolchain);
    checkStamp(createdAt);
    if (toolchain.lastUsedAt !== undefined) checkStamp(toolchain.lastUsedAt);
    checkBlobs(toolchain.files, blobSizeOf);
    const lastUsedAt =
      toolchain.lastUsedAt !== undefined && toolchain.lastUsedAt > createdAt
        ? toolchain.lastUsedAt
        : createdAt;
    return this.transaction(() => {
      if (limits !== undefined && this.sql.toolchain.get(toolchain.id) === undefined)
        this.checkToolchainRoom(toolchain.createdBy, limits);
      const created =
        this.sql.insertToolchain.run({
          id: toolchain.id,
          files: JSON.stringify(
            toolchain.files.map(({ path, sha256, size, mode }) => ({ path, sha256, size, mode })),
          ),
          info: JSON.stringify(toolchain.info),
          created_by: toolchain.createdBy,
          created_at: createdAt,
          last_used_at: lastUsedAt,
          size: toolchain.files.reduce((sum, f) => sum + f.size, 0),
        }).changes > 0;
      if (!created) {
        // A failback brings the backup's last use as it was; a registration is a use now.
        if (toolchain.lastUsedAt !== undefined)
          this.sql.touchToolchain.run({ id: toolchain.id, at: lastUsedAt, before: lastUsedAt });
        else this.touchToolchain(toolchain.id);
      }
      return { toolchain: toToolchain(this.sql.toolchain.get(toolchain.id)!), created };
    });
  }

  private checkToolchainRoom(user: string, limits: { perUser: number; total: number }): void {
    const { total, mine } = this.sql.toolchainCounts.get(user)!;
    if (mine >= limits.perUser)
      throw new MusterError(
        'TOO_MANY_TOOLCHAINS',
        `${user} has registered ${mine} toolchains, the most one user may have: an admin removes unused ones (muster toolchains remove ID), and those unused for the coordinator's --toolchain-retention go by themselves`,
        { scope: 'user', limit: limits.perUser },
      );
    if (total >= limits.total)
      throw new MusterError(
        'TOO_MANY_TOOLCHAINS',
        `this coordinator has ${total} toolchains, the most it keeps: an admin removes unused ones (muster toolchains remove ID), and those unused for its --toolchain-retention go by themselves`,
        { scope: 'total', limit: limits.total },
      );
  }

  /**
   * A compile job named the toolchain (or it was registered again): its last use becomes `at`,
   * unless it was stamped less than `gapMs` before (each write is replicated). True when it
   * wrote; false too when there is no such toolchain.
   */
  touchToolchain(
    id: string,
    at: string = this.stamp(),
    gapMs: number = TOOLCHAIN_USE_STAMP_MS,
  ): boolean {
    const before = new Date(Date.parse(at) - gapMs).toISOString();
    return this.sql.touchToolchain.run({ id, at, before }).changes > 0;
  }

  /** Removes a toolchain (an admin's); false when there is none. Its blobs go with a sweep. */
  removeToolchain(id: string): boolean {
    return this.transaction(() => this.sql.deleteToolchain.run(id).changes > 0);
  }

  /** Removes the toolchains last used before `before` (ISO); answers their ids. */
  removeToolchainsUnusedSince(before: string): string[] {
    return this.transaction(() => {
      const ids = this.sql.unusedToolchains.all(before);
      for (const id of ids) this.sql.deleteToolchain.run(id);
      return ids;
    });
  }

  // ---- failback -------------------------------------------------------------------------------

  /**
   * A page of the rows of one table made at or after `since` (a backup's, since its takeover),
   * oldest first, after `after` (the cursor of the page before's last row): what a backup hands
   * back. At most `limit` rows, cut once their JSON reaches `maxBytes`; `next` (the last row's cursor) when
   * there may be more, null on the last page. The primary stores them with the put methods,
   * which keep what it has (rows are immutable).
   */
  exportSince<T extends CacheHistoryTable>(
    table: T,
    since: string,
    after: CacheCursor | undefined,
    limit: number,
    maxBytes: number = CACHE_PAGE_BYTES,
  ): { rows: CacheHistoryRow[T][]; next: CacheCursor | null } {
    const at = after?.at ?? '';
    const key = after?.key ?? '';
    let page: { row: CacheHistoryRow[CacheHistoryTable]; key: string }[];
    if (table === 'toolchains') {
      page = this.sql.toolchainsSince
        .all({ since, at, key, limit })
        .map((row) => ({ row: toToolchain(row), key: row.id }));
    } else if (table === 'entries') {
      page = this.sql.entriesSince
        .all({ since, at, key, limit })
        .map((row) => ({ row: toEntry(row), key: row.key }));
    } else {
      const [direct = '', hash = ''] = key.split(':');
      page = this.sql.linesSince
        .all({ since, at, direct, hash, limit })
        .map((row) => ({ row: toLine(row), key: `${row.direct}:${row.includes_hash}` }));
    }
    let bytes = 0;
    let cut = page.length;
    for (const [i, p] of page.entries()) {
      bytes += JSON.stringify(p.row).length;
      if (bytes >= maxBytes) {
        cut = i + 1;
        break;
      }
    }
    const more = cut < page.length || page.length === limit;
    const rows = page.slice(0, cut);
    const last = rows.at(-1);
    return {
      rows: rows.map((p) => p.row) as CacheHistoryRow[T][],
      next: more && last ? { at: last.row.createdAt, key: last.key } : null,
    };
  }

  private stamp(): string {
    return this.now().toISOString();
  }
}
