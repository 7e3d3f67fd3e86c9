/**
 * Replication of the store to a backup coordinator, and the merge of a backup's history back.
 *
 * Primary side: while `recording` is on, triggers (migration 2) append (table, primary key) to
 * repl_changes in commit order. readChanges() turns a page of them into the rows as they are now
 * (or a deletion), so applying pages in order converges on the primary's state; every change is
 * an idempotent upsert or delete. A snapshot (VACUUM INTO) plus the sequence number it stands at
 * starts a backup off; acknowledged changes are pruned.
 *
 * Backup side: applySnapshot() and applyChanges() write the primary's rows with the primary's
 * ids, remembering in repl_state which stream and sequence number they reached, in the same
 * transaction, so a restarted backup resumes where it stopped. The primary's row always wins: a
 * row of the backup that holds the same value of a UNIQUE key under another id gives way (see
 * unique-keys.ts), so no constraint can stop replication.
 *
 * Failback: exportBuildHistory() gives everything of one build; mergeBuildHistory() writes a
 * build from a backup into this store, matching it by its uid and renumbering it when its id is
 * taken by another build.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { MusterError } from '../../protocol/errors.js';
import { fileListsSql } from './blob-columns.js';
import { mergeBuild } from './history-merge.js';
import { prepareYields, referencedTables } from './unique-keys.js';

/** Replicated tables in an order that satisfies their foreign keys. */
export const REPLICATED_TABLES = [
  'users',
  'api_tokens',
  'settings',
  'ha_state',
  'agents',
  'extensions',
  'audit',
  'secrets',
  'toolchains',
  'cache_entries',
  'cache_manifests',
  'builds',
  'tasks',
  'attempts',
  'log_chunks',
] as const;
export type ReplicatedTable = (typeof REPLICATED_TABLES)[number];

/** A row as JSON: BLOB columns become { $b64 }. */
export type WireRow = Record<string, unknown>;

export interface Change {
  seq: number;
  table: ReplicatedTable;
  key: unknown[];
  /** The row as it is now; null when it no longer exists. */
  row: WireRow | null;
}

export interface ChangePage {
  stream: string;
  changes: Change[];
  /** The last sequence number this page covers (resume after it). */
  lastSeq: number;
}

export interface ReplicationPosition {
  stream: string | null;
  seq: number;
  /** When the last page was applied (ISO). */
  at: string | null;
}

/** One build and everything recorded under it, as a backup hands it back. */
export interface BuildHistory {
  build: WireRow;
  tasks: WireRow[];
  attempts: WireRow[];
  /** Log chunks with id > afterLogId, oldest first (a page). */
  logs: WireRow[];
}

interface TableInfo {
  columns: string[];
  pk: string[];
  select: Database.Statement;
  upsert: Database.Statement;
  remove: Database.Statement;
  /** Make way for a row: the backup's rows with its unique values under other keys yield. */
  yields: Database.Statement[];
}

/** Tables whose rows a snapshot does not simply replace: the backup's own logins stay. */
const KEEPS_LOCAL_ROWS: ReadonlySet<ReplicatedTable> = new Set(['users', 'api_tokens']);

const CHANGES_LIMIT = { default: 500, max: 5000 };

/**
 * Logins made on a backup get token ids from here up, out of the way of the primary's: a
 * snapshot replaces the primary's tokens and keeps these, so a user logged in to a backup stays
 * logged in when it takes a new copy. One of them yields to the primary's token with the same
 * hash (a failback copies a backup's logins to the primary, under the primary's ids: the login
 * goes on working through that copy), and ends with its user's account (see userChanged).
 */
export const LOCAL_TOKEN_BASE = 2 ** 40;

function prepareReplication(db: Database.Database) {
  return {
    outStream: db.prepare<[], { recording: number; out_stream: string | null }>(
      'SELECT recording, out_stream FROM repl_state',
    ),
    lastSeq: db.prepare<[], { seq: number }>(
      "SELECT coalesce(seq, 0) AS seq FROM sqlite_sequence WHERE name = 'repl_changes'",
    ),
    firstSeq: db.prepare<[], { seq: number | null }>('SELECT min(seq) AS seq FROM repl_changes'),
    changes: db.prepare<[number, number], { seq: number; tbl: ReplicatedTable; key: string }>(
      'SELECT seq, tbl, key FROM repl_changes WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    prune: db.prepare<[number]>('DELETE FROM repl_changes WHERE seq <= ?'),
    position: db.prepare<[], { in_stream: string | null; in_seq: number; in_at: string | null }>(
      'SELECT in_stream, in_seq, in_at FROM repl_state',
    ),
    /**
     * Before the primary's version of a user is written: the logins made on this backup end when
     * the id now names another account (another created_at: the backup's row came apart from
     * the primary's) or the password changed (the primary ends its own logins then too; it also
     * rehashes a password once after --password-cost is raised). A login never passes to another
     * person.
     */
    userChanged: db.prepare(
      `DELETE FROM api_tokens WHERE id >= ${LOCAL_TOKEN_BASE} AND user_id = @id AND EXISTS (
         SELECT 1 FROM users WHERE id = @id
         AND (created_at IS NOT @created_at OR password_hash IS NOT @password_hash))`,
    ),
  };
}

export class ReplicationStore {
  private readonly tables = new Map<ReplicatedTable, TableInfo>();
  /** Prepared once: some run for every finished task (deferRelease) or every backup request. */
  private readonly sql: ReturnType<typeof prepareReplication>;

  constructor(
    private readonly db: Database.Database,
    private readonly transaction: <T>(fn: () => T) => T,
  ) {
    const referenced = referencedTables(db, REPLICATED_TABLES);
    for (const table of REPLICATED_TABLES)
      this.tables.set(table, this.describe(table, referenced.has(table)));
    this.sql = prepareReplication(db);
  }

  // ---- primary: recording and reading -------------------------------------------------------

  /** Turns recording on with a new stream id (old changes dropped), or off. */
  setRecording(on: boolean): string | null {
    return this.transaction(() => {
      this.db.prepare('DELETE FROM repl_changes').run();
      const stream = on ? randomUUID() : null;
      this.db
        .prepare('UPDATE repl_state SET recording = ?, out_stream = ? WHERE id = 1')
        .run(on ? 1 : 0, stream);
      return stream;
    });
  }

  outStream(): string | null {
    const row = this.sql.outStream.get()!;
    return row.recording === 1 ? row.out_stream : null;
  }

  lastSeq(): number {
    return this.sql.lastSeq.get()?.seq ?? 0;
  }

  /** The oldest change still kept (a reader must be at or after it minus one). */
  firstSeq(): number | undefined {
    return this.sql.firstSeq.get()?.seq ?? undefined;
  }

  /**
   * Changes after `after` of `stream`. SNAPSHOT_REQUIRED when the stream is not the current one
   * or the changes right after `after` were already pruned.
   */
  readChanges(stream: string, after: number, limit?: number): ChangePage {
    const current = this.outStream();
    if (current === null || current !== stream)
      throw new MusterError('SNAPSHOT_REQUIRED', 'the stream was restarted: fetch a snapshot');
    const first = this.firstSeq();
    const last = this.lastSeq();
    if (after > last)
      throw new MusterError('SNAPSHOT_REQUIRED', 'that position is ahead of the stream');
    if (first !== undefined && after < first - 1)
      throw new MusterError('SNAPSHOT_REQUIRED', 'those changes were already pruned');
    const max = Math.min(Math.max(limit ?? CHANGES_LIMIT.default, 1), CHANGES_LIMIT.max);
    const entries = this.sql.changes.all(after, max);
    // One change per row, at its first position: later ones would send the same current state.
    const seen = new Set<string>();
    const changes: Change[] = [];
    for (const entry of entries) {
      const id = `${entry.tbl}\u0000${entry.key}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const key = JSON.parse(entry.key) as unknown[];
      const info = this.info(entry.tbl);
      const row = info.select.get(...key) as Record<string, unknown> | undefined;
      changes.push({ seq: entry.seq, table: entry.tbl, key, row: row ? toWire(row) : null });
    }
    return { stream, changes, lastSeq: entries.at(-1)?.seq ?? after };
  }

  /** Drops changes up to `seq` (the backup has them). */
  prune(seq: number): void {
    this.sql.prune.run(seq);
  }

  /**
   * Writes a consistent copy of the database to `file` and returns the stream and sequence
   * number it stands at (nothing can commit in between: this process has the only connection
   * that writes, and both steps are synchronous).
   */
  writeSnapshot(file: string): { stream: string; seq: number } {
    const stream = this.outStream();
    if (stream === null) throw new MusterError('NOT_SELECTED', 'no backup is selected');
    const seq = this.lastSeq();
    this.db.prepare('VACUUM INTO ?').run(file);
    return { stream, seq };
  }

  // ---- backup: applying ---------------------------------------------------------------------

  position(): ReplicationPosition {
    const row = this.sql.position.get()!;
    return { stream: row.in_stream, seq: row.in_seq, at: row.in_at };
  }

  /**
   * Replaces every replicated table with the snapshot's and records its position. The logins made
   * on this backup stay, as far as they do not collide with the primary's rows (see writeRow).
   * (Statements on the attached snapshot are prepared per snapshot: they exist only while it is.)
   */
  applySnapshot(file: string, stream: string, seq: number, at: string): void {
    this.db.prepare('ATTACH DATABASE ? AS snap').run(file);
    try {
      this.transaction(() => {
        this.db.pragma('defer_foreign_keys = ON');
        for (const table of [...REPLICATED_TABLES].reverse()) {
          if (!KEEPS_LOCAL_ROWS.has(table)) this.db.exec(`DELETE FROM main.${table}`);
        }
        this.db.exec(`DELETE FROM main.api_tokens WHERE id < ${LOCAL_TOKEN_BASE}`);
        // Users are written over in place, not deleted and copied: deleting one would take the
        // logins made on this backup with it. Those the primary no longer has go, with theirs.
        this.db.exec('DELETE FROM main.users WHERE id NOT IN (SELECT id FROM snap.users)');
        for (const table of REPLICATED_TABLES) {
          if (KEEPS_LOCAL_ROWS.has(table)) {
            // Few rows (accounts and logins), each under the same rule as a change.
            const rows = this.db.prepare(`SELECT * FROM snap.${table}`).all() as WireRow[];
            for (const row of rows) this.writeRow(table, row);
          } else {
            // Emptied above: nothing of this backup's is left to collide with.
            const cols = this.info(table)
              .columns.map((c) => `"${c}"`)
              .join(', ');
            this.db.exec(`INSERT INTO main.${table} (${cols}) SELECT ${cols} FROM snap.${table}`);
          }
        }
        this.db.exec('DELETE FROM main.api_tokens WHERE user_id NOT IN (SELECT id FROM users)');
        this.reserveIds('api_tokens', LOCAL_TOKEN_BASE);
        this.setPosition(stream, seq, at);
      });
    } finally {
      this.db.prepare('DETACH DATABASE snap').run();
    }
  }

  /** Applies a page in one transaction, with its position. */
  applyChanges(page: ChangePage, at: string): void {
    this.transaction(() => {
      this.db.pragma('defer_foreign_keys = ON');
      for (const change of page.changes) {
        const info = this.info(change.table);
        if (change.row === null) {
          info.remove.run(...change.key);
        } else {
          this.writeRow(change.table, fromWire(change.row, info.columns));
        }
      }
      this.setPosition(page.stream, page.lastSeq, at);
    });
  }

  /** Forgets the stream consumed (the next read starts with a snapshot); keeps when it last applied. */
  resetPosition(): void {
    this.db.prepare('UPDATE repl_state SET in_stream = NULL, in_seq = 0 WHERE id = 1').run();
  }

  // ---- failback ---------------------------------------------------------------------------------

  /** Highest id of a table with an integer key (0 when empty). */
  maxId(table: 'builds' | 'log_chunks' | 'api_tokens'): number {
    const row = this.db.prepare(`SELECT coalesce(max(id), 0) AS id FROM ${table}`).get() as {
      id: number;
    };
    return row.id;
  }

  /**
   * Makes the next id of `table` at least `next`: a backup leaves room for the primary's last
   * builds, and gives its own logins ids apart from the primary's.
   */
  reserveIds(table: 'builds' | 'api_tokens', next: number): void {
    const current = this.db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table) as
      { seq: number } | undefined;
    if (current === undefined) {
      this.db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(table, next - 1);
    } else if (current.seq < next - 1) {
      this.db.prepare('UPDATE sqlite_sequence SET seq = ? WHERE name = ?').run(next - 1, table);
    }
  }

  /** The build, its tasks and attempts, and a page of its log chunks after `afterLogId`. */
  exportBuildHistory(buildId: number, afterLogId: number, logLimit: number): BuildHistory {
    const build = this.db.prepare('SELECT * FROM builds WHERE id = ?').get(buildId) as
      Record<string, unknown> | undefined;
    if (!build) throw new MusterError('NOT_FOUND', `no build ${buildId}`);
    const all = (sql: string, ...args: unknown[]): WireRow[] =>
      (this.db.prepare(sql).all(...args) as Record<string, unknown>[]).map(toWire);
    return {
      build: toWire(build),
      tasks: all('SELECT * FROM tasks WHERE build_id = ? ORDER BY position', buildId),
      attempts: all('SELECT * FROM attempts WHERE build_id = ? ORDER BY id', buildId),
      logs: all(
        'SELECT * FROM log_chunks WHERE build_id = ? AND id > ? ORDER BY id LIMIT ?',
        buildId,
        afterLogId,
        logLimit,
      ),
    };
  }

  /** API tokens created after `afterId`, with their user's name (ids differ between stores). */
  exportTokens(afterId: number): (WireRow & { user_name: string })[] {
    return (
      this.db
        .prepare(
          `SELECT t.*, u.name AS user_name FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.id > ? ORDER BY t.id`,
        )
        .all(afterId) as Record<string, unknown>[]
    ).map((row) => toWire(row) as WireRow & { user_name: string });
  }

  /** Adds tokens this store lacks (matched by hash; users by name). Returns how many. */
  mergeTokens(tokens: (WireRow & { user_name: string })[]): number {
    return this.transaction(() => {
      let added = 0;
      for (const token of tokens) {
        const user = this.db.prepare('SELECT id FROM users WHERE name = ?').get(token.user_name) as
          { id: number } | undefined;
        if (!user) continue;
        const result = this.db
          .prepare(
            `INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at, last_used_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING`,
          )
          .run(user.id, token.token_hash, token.created_at, token.expires_at, token.last_used_at);
        added += result.changes;
      }
      return added;
    });
  }

  /**
   * Writes a build from a backup into this store (see history-merge.ts: the same build, matched
   * by uid, only moves forward; a new one keeps its id when free). Returns the local build id.
   */
  mergeBuildHistory(history: BuildHistory, appendLogs: WireRow[]): number {
    return this.transaction(() => mergeBuild(this.db, history, appendLogs));
  }

  /**
   * The JSON file lists (each a list of objects with a sha256) of every build, task output,
   * extension, toolchain and cache entry (its outputs, and its stderr as a list of one): the
   * blobs a sweep keeps and a backup copies.
   */
  fileLists(): string[] {
    const rows = this.db.prepare(fileListsSql()).all() as { list: string }[];
    return rows.map((r) => r.list);
  }

  /** Ids of builds above `id`. */
  buildIdsAbove(id: number): number[] {
    return (
      this.db.prepare('SELECT id FROM builds WHERE id > ? ORDER BY id').all(id) as { id: number }[]
    ).map((r) => r.id);
  }

  // ---- internals ----------------------------------------------------------------------------

  private setPosition(stream: string | null, seq: number, at: string | null): void {
    this.db
      .prepare('UPDATE repl_state SET in_stream = ?, in_seq = ?, in_at = ? WHERE id = 1')
      .run(stream, seq, at);
  }

  /** Writes the primary's version of a row (its values by column name; BLOBs as Buffers). */
  private writeRow(table: ReplicatedTable, row: Record<string, unknown>): void {
    const info = this.info(table);
    if (table === 'users') this.sql.userChanged.run(row);
    for (const yieldTo of info.yields) yieldTo.run(row);
    info.upsert.run(row);
  }

  private info(table: ReplicatedTable): TableInfo {
    const info = this.tables.get(table);
    if (!info) throw new MusterError('VALIDATION_FAILED', `not a replicated table: ${table}`);
    return info;
  }

  private describe(table: ReplicatedTable, referenced: boolean): TableInfo {
    const rows = this.db.prepare(`PRAGMA table_info(${table})`).all() as {
      name: string;
      pk: number;
    }[];
    const columns = rows.map((r) => r.name);
    const pk = rows
      .filter((r) => r.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((r) => r.name);
    const where = pk.map((c) => `"${c}" = ?`).join(' AND ');
    const others = columns.filter((c) => !pk.includes(c));
    const set = others.map((c) => `"${c}" = excluded."${c}"`).join(', ');
    return {
      columns,
      pk,
      select: this.db.prepare(`SELECT * FROM ${table} WHERE ${where}`),
      upsert: this.db.prepare(
        `INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')})
         VALUES (${columns.map((c) => `@${c}`).join(', ')})
         ON CONFLICT (${pk.map((c) => `"${c}"`).join(', ')}) DO ${set ? `UPDATE SET ${set}` : 'NOTHING'}`,
      ),
      remove: this.db.prepare(`DELETE FROM ${table} WHERE ${where}`),
      yields: prepareYields(this.db, table, pk, referenced),
    };
  }
}

function toWire(row: Record<string, unknown>): WireRow {
  const out: WireRow = {};
  for (const [key, value] of Object.entries(row)) {
    out[key] = Buffer.isBuffer(value) ? { $b64: value.toString('base64') } : value;
  }
  return out;
}

/** The row's values for `columns` (missing ones null), BLOBs decoded. */
function fromWire(row: WireRow, columns: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const column of columns) {
    const value = row[column];
    if (value !== null && typeof value === 'object' && '$b64' in value) {
      out[column] = Buffer.from(String(value.$b64), 'base64');
    } else if (value === undefined || value === null || typeof value !== 'object') {
      out[column] = value ?? null;
    } else {
      throw new MusterError('VALIDATION_FAILED', `column ${column} has an unexpected value`);
    }
  }
  return out;
}
