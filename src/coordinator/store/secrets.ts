/**
 * Secrets (migration 10): one row per name, its value sealed (secrets/secret-key.ts) — this store
 * never sees a value in clear, only the bytes the key made. Replicated to the selected backup like
 * the other tables; a backup never writes here (READ_ONLY), so nothing comes back at failback.
 */
import type Database from 'better-sqlite3';

export interface SecretRow {
  name: string;
  /** nonce ‖ ciphertext ‖ tag. */
  sealed: Buffer;
  keyId: string;
  setBy: string;
  /** ISO time. */
  setAt: string;
}

/** What is listed: never the sealed value. */
export type SecretSummary = Omit<SecretRow, 'sealed'>;

interface SecretSql {
  name: string;
  value: Buffer;
  key_id: string;
  set_by: string;
  set_at: string;
}

function prepareSecrets(db: Database.Database) {
  return {
    put: db.prepare<[SecretSql]>(
      `INSERT INTO secrets (name, value, key_id, set_by, set_at)
       VALUES (@name, @value, @key_id, @set_by, @set_at)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value, key_id = excluded.key_id,
         set_by = excluded.set_by, set_at = excluded.set_at`,
    ),
    get: db.prepare<[string], SecretSql>('SELECT * FROM secrets WHERE name = ?'),
    list: db.prepare<[], Omit<SecretSql, 'value'>>(
      'SELECT name, key_id, set_by, set_at FROM secrets ORDER BY name',
    ),
    remove: db.prepare<[string]>('DELETE FROM secrets WHERE name = ?'),
  };
}

export class SecretsStore {
  private readonly sql: ReturnType<typeof prepareSecrets>;

  constructor(db: Database.Database) {
    this.sql = prepareSecrets(db);
  }

  /** Creates or replaces; returns whether the name was new. */
  put(row: SecretRow): boolean {
    const existed = this.sql.get.get(row.name) !== undefined;
    this.sql.put.run({
      name: row.name,
      value: row.sealed,
      key_id: row.keyId,
      set_by: row.setBy,
      set_at: row.setAt,
    });
    return !existed;
  }

  get(name: string): SecretRow | undefined {
    const row = this.sql.get.get(name);
    return row === undefined
      ? undefined
      : {
          name: row.name,
          sealed: row.value,
          keyId: row.key_id,
          setBy: row.set_by,
          setAt: row.set_at,
        };
  }

  list(): SecretSummary[] {
    return this.sql.list
      .all()
      .map((r) => ({ name: r.name, keyId: r.key_id, setBy: r.set_by, setAt: r.set_at }));
  }

  /** Returns whether there was one. */
  remove(name: string): boolean {
    return this.sql.remove.run(name).changes > 0;
  }
}
