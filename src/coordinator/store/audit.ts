/**
 * The audit log: the `audit` table (migration 8), one row per administrative change. Bounded:
 * writing a row drops the oldest beyond `maxRows`, so the table cannot grow without end.
 * Replicated to the selected backup like the other tables; the rows a backup writes while it runs
 * the cluster are handed back at failback (exportSince on the backup, merge on the primary),
 * matched by their uid so a failback run twice adds each row once.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AuditActorKind } from '../../api/views/audit.js';
import type { AuditRowView } from '../../api/views/ha.js';

/** What the table keeps at most: the newest rows. */
export const DEFAULT_AUDIT_MAX_ROWS = 100_000;
const LIST_LIMIT = { default: 100, max: 1000 };

/** A row of the table: what a backup hands back at failback too (GET /api/v1/ha/history/audit). */
export type AuditRow = AuditRowView;

export type NewAuditRow = Omit<AuditRow, 'id' | 'uid' | 'at'> & { at?: number; uid?: string };

export interface AuditFilter {
  limit?: number;
  /** Rows with a smaller id (the page after one ending at this id). */
  beforeId?: number;
  action?: string;
  actor?: string;
}

interface AuditSql {
  id: number;
  uid: string;
  at: number;
  actor: string;
  actor_kind: AuditActorKind;
  ip: string | null;
  action: string;
  target: string;
  details: string;
}

function toRow(row: AuditSql): AuditRow {
  return {
    id: row.id,
    uid: row.uid,
    at: row.at,
    actor: row.actor,
    actorKind: row.actor_kind,
    ip: row.ip,
    action: row.action,
    target: row.target,
    details: JSON.parse(row.details) as Record<string, unknown>,
  };
}

function toSql(row: Omit<AuditRow, 'id'>): AuditSqlInsert {
  return {
    uid: row.uid,
    at: row.at,
    actor: row.actor,
    actor_kind: row.actorKind,
    ip: row.ip,
    action: row.action,
    target: row.target,
    details: JSON.stringify(row.details),
  };
}

function prepareAudit(db: Database.Database) {
  return {
    insert: db.prepare<[AuditSqlInsert]>(
      `INSERT INTO audit (uid, at, actor, actor_kind, ip, action, target, details)
       VALUES (@uid, @at, @actor, @actor_kind, @ip, @action, @target, @details)
       ON CONFLICT (uid) DO NOTHING`,
    ),
    byUid: db.prepare<[string], AuditSql>('SELECT * FROM audit WHERE uid = ?'),
    // The newest maxRows stay: the row just past them, and every older one, go.
    prune: db.prepare<[number]>(
      'DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)',
    ),
    list: db.prepare<[ListParams], AuditSql>(
      `SELECT * FROM audit
       WHERE (@before IS NULL OR id < @before)
         AND (@action IS NULL OR action = @action)
         AND (@actor IS NULL OR actor = @actor)
       ORDER BY id DESC LIMIT @limit`,
    ),
    since: db.prepare<[number, number, number], AuditSql>(
      'SELECT * FROM audit WHERE at >= ? AND id > ? ORDER BY id LIMIT ?',
    ),
  };
}

export class AuditStore {
  private readonly sql: ReturnType<typeof prepareAudit>;

  constructor(
    db: Database.Database,
    private readonly transaction: <T>(fn: () => T) => T,
    private readonly now: () => Date,
    private readonly maxRows = DEFAULT_AUDIT_MAX_ROWS,
  ) {
    this.sql = prepareAudit(db);
  }

  /** Writes a row (in the caller's transaction, if any) and drops the oldest beyond the limit. */
  record(entry: NewAuditRow): AuditRow {
    const uid = entry.uid ?? randomUUID();
    this.sql.insert.run(toSql({ ...entry, uid, at: entry.at ?? this.now().getTime() }));
    this.sql.prune.run(this.maxRows);
    return toRow(this.sql.byUid.get(uid)!);
  }

  /** Newest first. */
  list(filter: AuditFilter = {}): AuditRow[] {
    const limit = Math.min(Math.max(filter.limit ?? LIST_LIMIT.default, 1), LIST_LIMIT.max);
    return this.sql.list
      .all({
        before: filter.beforeId ?? null,
        action: filter.action ?? null,
        actor: filter.actor ?? null,
        limit,
      })
      .map(toRow);
  }

  /**
   * Rows written at or after `atMs` (a takeover) with an id above `afterId`, oldest first, at most
   * `limit`: what a backup hands back, a page at a time.
   */
  exportSince(atMs: number, afterId: number, limit: number): AuditRow[] {
    return this.sql.since.all(atMs, afterId, limit).map(toRow);
  }

  /**
   * Adds rows another coordinator wrote (a backup's, at failback) under new local ids; a row whose
   * uid is here already is skipped, so merging twice changes nothing. Returns how many were added.
   */
  merge(rows: readonly Omit<AuditRow, 'id'>[]): number {
    return this.transaction(() => this.mergeRows(rows));
  }

  private mergeRows(rows: readonly Omit<AuditRow, 'id'>[]): number {
    let added = 0;
    for (const row of rows) {
      added += this.sql.insert.run(toSql(row)).changes;
    }
    if (added > 0) this.sql.prune.run(this.maxRows);
    return added;
  }
}

type AuditSqlInsert = Omit<AuditSql, 'id'>;

interface ListParams {
  before: number | null;
  action: string | null;
  actor: string | null;
  limit: number;
}
