/**
 * The UNIQUE keys of a replicated table, read from SQLite, and the statements that make a
 * backup's row give way to the primary's on them.
 *
 * A backup writes the primary's rows under the primary's primary keys: the primary alone decides
 * which row is which. A row the backup holds under another primary key with the same value of a
 * UNIQUE key (a login a failback copied to the primary under a new id, a user name the primary
 * gave to another id) yields before the primary's row is written, so no write can fail on it:
 *
 *   - a row other replicated rows refer to (a user: its logins; a build: its tasks and logs) keeps
 *     its primary key and its children and takes a placeholder for the unique value. The
 *     primary's version of that row is on its way: its key changed on the primary after the
 *     backup copied it, so the stream carries it (and a snapshot overwrites or deletes every
 *     such row);
 *   - any other row is deleted.
 *
 * Keys come from PRAGMA index_list, so one a migration adds is covered. A key this cannot
 * resolve (a partial index, an expression, a non-text column of a table others refer to) stops
 * the store from opening: every test that opens a store then says what to extend here.
 */
import type Database from 'better-sqlite3';
import { MusterError } from '../../protocol/errors.js';

export interface UniqueKey {
  index: string;
  columns: string[];
  /** Each column's collation, as the index compares it. */
  collations: string[];
}

/** The table's UNIQUE keys other than its primary key. */
export function uniqueKeys(db: Database.Database, table: string): UniqueKey[] {
  const indexes = db.prepare(`PRAGMA index_list("${table}")`).all() as {
    name: string;
    unique: number;
    origin: string;
    partial: number;
  }[];
  return indexes
    .filter((index) => index.unique === 1 && index.origin !== 'pk')
    .map((index) => {
      const parts = (
        db.prepare(`PRAGMA index_xinfo("${index.name}")`).all() as {
          cid: number;
          name: string | null;
          coll: string;
          key: number;
        }[]
      ).filter((part) => part.key === 1);
      if (index.partial === 1 || parts.some((part) => part.name === null))
        throw unsupported(table, index.name, 'it is partial or on an expression');
      return {
        index: index.name,
        columns: parts.map((part) => part.name!),
        collations: parts.map((part) => part.coll),
      };
    })
    .sort((a, b) => a.index.localeCompare(b.index));
}

/**
 * Statements that make way for a row of `table` (bound by column name, like the row itself):
 * one per unique key, yielding every other row that holds the row's value of that key.
 * `referenced`: other replicated tables refer to this one (its rows are renamed, not deleted).
 */
export function prepareYields(
  db: Database.Database,
  table: string,
  pk: string[],
  referenced: boolean,
): Database.Statement[] {
  const types = new Map(
    (db.prepare(`PRAGMA table_info("${table}")`).all() as { name: string; type: string }[]).map(
      (c) => [c.name, c.type.toUpperCase()],
    ),
  );
  const other = `NOT (${pk.map((c) => `"${c}" = @${c}`).join(' AND ')})`;
  return uniqueKeys(db, table).map((key) => {
    const same = key.columns
      .map(
        (c, i) =>
          `"${c}" = @${c}${key.collations[i] === 'BINARY' ? '' : ` COLLATE ${key.collations[i]}`}`,
      )
      .join(' AND ');
    if (!referenced) return db.prepare(`DELETE FROM "${table}" WHERE ${same} AND ${other}`);
    if (key.columns.some((c) => types.get(c) !== 'TEXT'))
      throw unsupported(
        table,
        key.index,
        'other tables refer to its rows and a column is not text',
      );
    // Unique per row (its primary key) and unlike anything the primary holds (a control
    // character no name, uid or hash has).
    const placeholder = `char(1) || 'yielded ' || json_array(${pk.map((c) => `"${c}"`).join(', ')})`;
    const set = key.columns.map((c) => `"${c}" = ${placeholder}`).join(', ');
    return db.prepare(`UPDATE "${table}" SET ${set} WHERE ${same} AND ${other}`);
  });
}

/** Tables some other of `tables` refers to by a foreign key. */
export function referencedTables(db: Database.Database, tables: readonly string[]): Set<string> {
  const referenced = new Set<string>();
  for (const table of tables) {
    const keys = db.prepare(`PRAGMA foreign_key_list("${table}")`).all() as { table: string }[];
    for (const key of keys)
      if (key.table !== table && tables.includes(key.table)) referenced.add(key.table);
  }
  return referenced;
}

function unsupported(table: string, index: string, why: string): MusterError {
  return new MusterError(
    'INTERNAL',
    `replication cannot make a backup's ${table} give way on the unique index ${index}: ${why} (extend src/coordinator/store/unique-keys.ts)`,
  );
}
