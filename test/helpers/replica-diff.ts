/**
 * Compares a backup's copy with its primary's database, reading both SQLite files read-only
 * (WAL: a reader never blocks the running coordinators), table by table over the replicated
 * tables. What is by design the backup's own is left out, each with its reason below.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { LOCAL_TOKEN_BASE } from '../../src/coordinator/store/replication.js';
import type { StartedCoordinator } from './coordinator-process.js';

/** Each replicated table (see REPLICATED_TABLES) with the columns compared and its key order. */
const TABLES: { table: string; columns: string; order: string; backupOnly?: string }[] = [
  { table: 'users', columns: '*', order: 'id' },
  {
    table: 'api_tokens',
    // last_used_at is not replicated (no update trigger: each side records the uses it serves).
    columns: 'id, user_id, token_hash, created_at, expires_at',
    order: 'id',
    // Logins made on the backup while it stood by are its own (docs/high-availability.md).
    backupOnly: `id < ${LOCAL_TOKEN_BASE}`,
  },
  { table: 'settings', columns: '*', order: 'key' },
  { table: 'ha_state', columns: '*', order: 'key' },
  { table: 'agents', columns: '*', order: 'name' },
  { table: 'extensions', columns: '*', order: 'name' },
  { table: 'audit', columns: '*', order: 'id' },
  { table: 'toolchains', columns: '*', order: 'id' },
  { table: 'cache_entries', columns: '*', order: 'key' },
  { table: 'cache_manifests', columns: '*', order: 'direct, includes_hash' },
  { table: 'builds', columns: '*', order: 'id' },
  { table: 'tasks', columns: '*', order: 'build_id, name' },
  { table: 'attempts', columns: '*', order: 'id' },
  // The data itself by length: the bytes are compared by the unit tests.
  {
    table: 'log_chunks',
    columns: 'id, build_id, task_name, attempt, stream, length(data) AS bytes, at',
    order: 'id',
  },
];

function read(file: string, backup: boolean): Map<string, string[]> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables = new Map<string, string[]>();
    db.transaction(() => {
      for (const { table, columns, order, backupOnly } of TABLES) {
        const where = backup && backupOnly ? ` WHERE ${backupOnly}` : '';
        const rows = db.prepare(`SELECT ${columns} FROM ${table}${where} ORDER BY ${order}`).all();
        tables.set(
          table,
          rows.map((row) => JSON.stringify(row)),
        );
      }
    })();
    return tables;
  } finally {
    db.close();
  }
}

/**
 * How the backup's copy differs from the primary's, as lines (empty when they are the same):
 * rows only the primary has (`-`) and only the backup has (`+`), up to `limit` per table.
 */
export function replicaDiff(
  primary: StartedCoordinator,
  backup: StartedCoordinator,
  limit = 10,
): string[] {
  const ours = read(join(primary.dataDir, 'muster.db'), false);
  const theirs = read(join(backup.dataDir, 'muster.db'), true);
  const lines: string[] = [];
  for (const { table } of TABLES) {
    const a = ours.get(table) ?? [];
    const b = theirs.get(table) ?? [];
    const inB = new Set(b);
    const inA = new Set(a);
    const missing = a.filter((row) => !inB.has(row));
    const extra = b.filter((row) => !inA.has(row));
    for (const row of missing.slice(0, limit)) lines.push(`${table} - ${row}`);
    for (const row of extra.slice(0, limit)) lines.push(`${table} + ${row}`);
    if (missing.length + extra.length > 2 * limit)
      lines.push(`${table}: ${missing.length} rows missing, ${extra.length} extra in all`);
  }
  return lines;
}
