/**
 * Join tokens (migration 9): what admits a new agent that dials out (src/protocol/outbound.ts).
 * An admin creates one with labels for the agents it admits and whether they are approved at
 * once; it works until it expires or is revoked. The secret stays here (each agent's key is
 * derived from it) and is shown once, at creation. Not replicated: only a primary admits agents.
 */
import type Database from 'better-sqlite3';

export interface JoinTokenRow {
  id: string;
  secret: string;
  labels: string[];
  autoApprove: boolean;
  /** ISO time; null: does not expire. */
  expiresAt: string | null;
  createdBy: string;
  createdAt: string;
  /** Agents that joined with it. */
  uses: number;
}

interface JoinTokenSql {
  id: string;
  secret: string;
  labels: string;
  auto_approve: 0 | 1;
  expires_at: string | null;
  created_by: string;
  created_at: string;
  uses: number;
}

/** Tokens kept at most (expired ones are dropped first): one more is refused (revoke some). */
export const MAX_JOIN_TOKENS = 1000;

function toRow(row: JoinTokenSql): JoinTokenRow {
  return {
    id: row.id,
    secret: row.secret,
    labels: JSON.parse(row.labels) as string[],
    autoApprove: row.auto_approve === 1,
    expiresAt: row.expires_at,
    createdBy: row.created_by,
    createdAt: row.created_at,
    uses: row.uses,
  };
}

function prepareJoinTokens(db: Database.Database) {
  return {
    insert: db.prepare<[JoinTokenSql]>(
      `INSERT INTO join_tokens (id, secret, labels, auto_approve, expires_at, created_by, created_at, uses)
       VALUES (@id, @secret, @labels, @auto_approve, @expires_at, @created_by, @created_at, @uses)`,
    ),
    byId: db.prepare<[string], JoinTokenSql>('SELECT * FROM join_tokens WHERE id = ?'),
    list: db.prepare<[], JoinTokenSql>('SELECT * FROM join_tokens ORDER BY created_at, id'),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM join_tokens'),
    remove: db.prepare<[string]>('DELETE FROM join_tokens WHERE id = ?'),
    used: db.prepare<[string]>('UPDATE join_tokens SET uses = uses + 1 WHERE id = ?'),
    removeExpired: db.prepare<[string]>(
      'DELETE FROM join_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?',
    ),
  };
}

export class JoinTokenStore {
  private readonly sql: ReturnType<typeof prepareJoinTokens>;

  constructor(
    db: Database.Database,
    private readonly now: () => Date,
  ) {
    this.sql = prepareJoinTokens(db);
  }

  /** False when MAX_JOIN_TOKENS are kept already. */
  create(row: Omit<JoinTokenRow, 'createdAt' | 'uses'>): JoinTokenRow | undefined {
    // Expired tokens admit nobody: they go before the count, so they never fill the table.
    this.removeExpired();
    if ((this.sql.count.get()?.n ?? 0) >= MAX_JOIN_TOKENS) return undefined;
    this.sql.insert.run({
      id: row.id,
      secret: row.secret,
      labels: JSON.stringify(row.labels),
      auto_approve: row.autoApprove ? 1 : 0,
      expires_at: row.expiresAt,
      created_by: row.createdBy,
      created_at: this.now().toISOString(),
      uses: 0,
    });
    return this.get(row.id);
  }

  get(id: string): JoinTokenRow | undefined {
    const row = this.sql.byId.get(id);
    return row && toRow(row);
  }

  /** A token that admits agents now: known, not expired. */
  valid(id: string): JoinTokenRow | undefined {
    const row = this.get(id);
    if (row === undefined) return undefined;
    if (row.expiresAt !== null && Date.parse(row.expiresAt) <= this.now().getTime())
      return undefined;
    return row;
  }

  list(): JoinTokenRow[] {
    return this.sql.list.all().map(toRow);
  }

  revoke(id: string): boolean {
    return this.sql.remove.run(id).changes > 0;
  }

  noteUse(id: string): void {
    this.sql.used.run(id);
  }

  /** Drops the expired tokens (housekeeping); how many went. */
  removeExpired(): number {
    return this.sql.removeExpired.run(this.now().toISOString()).changes;
  }
}
