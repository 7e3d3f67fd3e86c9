/** The backup coordinators registered with this one (as a primary): the `backups` table. */
import type Database from 'better-sqlite3';

export interface BackupRow {
  name: string;
  url: string;
  fingerprint: string | null;
  /** The backup's TLS certificate (PEM), trusted for calls to it, or null without TLS. */
  certificate: string | null;
  /** The secret the backup registered with; each side proves itself to the other with it. */
  secret: string;
  registeredAt: string;
  lastContact: string | null;
  /** The last change sequence the backup has applied, and when it said so. */
  ackedSeq: number;
  ackedAt: string | null;
}

interface BackupSql {
  name: string;
  url: string;
  fingerprint: string | null;
  certificate: string | null;
  secret: string;
  registered_at: string;
  last_contact: string | null;
  acked_seq: number;
  acked_at: string | null;
}

function toBackup(row: BackupSql): BackupRow {
  return {
    name: row.name,
    url: row.url,
    fingerprint: row.fingerprint,
    certificate: row.certificate,
    secret: row.secret,
    registeredAt: row.registered_at,
    lastContact: row.last_contact,
    ackedSeq: row.acked_seq,
    ackedAt: row.acked_at,
  };
}

/** The statements, prepared once: `get` runs on every authenticated API answer of a primary. */
function prepare(db: Database.Database) {
  return {
    list: db.prepare<[], BackupSql>('SELECT * FROM backups ORDER BY name'),
    get: db.prepare<[string], BackupSql>('SELECT * FROM backups WHERE name = ?'),
    put: db.prepare(
      `INSERT INTO backups (name, url, fingerprint, certificate, secret, registered_at,
         last_contact)
       VALUES (@name, @url, @fingerprint, @certificate, @secret, @at, @at)
       ON CONFLICT (name) DO UPDATE SET url = excluded.url, fingerprint = excluded.fingerprint,
         certificate = excluded.certificate, last_contact = excluded.last_contact`,
    ),
    touch: db.prepare<[string, string]>('UPDATE backups SET last_contact = ? WHERE name = ?'),
    ack: db.prepare<[number, string, string, string]>(
      'UPDATE backups SET acked_seq = ?, acked_at = ?, last_contact = ? WHERE name = ?',
    ),
    remove: db.prepare<[string]>('DELETE FROM backups WHERE name = ?'),
  };
}

export class BackupsStore {
  private readonly sql: ReturnType<typeof prepare>;

  constructor(db: Database.Database) {
    this.sql = prepare(db);
  }

  list(): BackupRow[] {
    return this.sql.list.all().map(toBackup);
  }

  get(name: string): BackupRow | undefined {
    const row = this.sql.get.get(name);
    return row && toBackup(row);
  }

  /** Adds or re-registers (new address or certificate; same secret). */
  put(
    row: Pick<BackupRow, 'name' | 'url' | 'fingerprint' | 'certificate' | 'secret'>,
    at: string,
  ): void {
    this.sql.put.run({ ...row, at });
  }

  touch(name: string, at: string): void {
    this.sql.touch.run(at, name);
  }

  ack(name: string, seq: number, at: string): void {
    this.sql.ack.run(seq, at, at, name);
  }

  remove(name: string): boolean {
    return this.sql.remove.run(name).changes > 0;
  }
}
