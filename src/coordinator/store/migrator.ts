/**
 * Brings a database up to the schema of this code: applies, in order, the migrations it has not
 * run yet, each recorded in schema_migrations. All of it runs in one IMMEDIATE transaction, so two
 * processes opening the same file at once cannot both migrate, and a failing migration leaves the
 * database as it was.
 */
import type Database from 'better-sqlite3';
import { MusterError } from '../../protocol/errors.js';
import type { Migration } from './migrations.js';

export interface MigrationResult {
  /** Schema version before (0: a fresh database). */
  from: number;
  to: number;
}

export function migrate(
  db: Database.Database,
  list: readonly Migration[],
  now: () => Date = () => new Date(),
): MigrationResult {
  checkList(list);
  const latest = list.at(-1)?.version ?? 0;
  const run = db.transaction((): MigrationResult => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    const row = db
      .prepare<[], { version: number }>(
        'SELECT coalesce(max(version), 0) AS version FROM schema_migrations',
      )
      .get();
    const from = row?.version ?? 0;
    if (from > latest) {
      throw new MusterError(
        'STORE_SCHEMA_TOO_NEW',
        `The database has schema version ${from} but this Muster knows only up to ${latest}; ` +
          'upgrade Muster or restore a backup.',
        { databaseVersion: from, codeVersion: latest },
      );
    }
    const record = db.prepare<[number, string, string]>(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const migration of list) {
      if (migration.version <= from) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, now().toISOString());
    }
    return { from, to: latest };
  });
  return run.immediate();
}

/** Versions must be 1, 2, 3, … with no gap: a gap means a migration was lost in a merge. */
function checkList(list: readonly Migration[]): void {
  list.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new MusterError(
        'INTERNAL',
        `Migration ${index + 1} has version ${migration.version}: versions must be 1, 2, 3, …`,
      );
    }
  });
}
