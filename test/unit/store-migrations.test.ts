import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { migrations } from '../../src/coordinator/store/migrations.js';
import { migrate } from '../../src/coordinator/store/migrator.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-store-migrations-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const dbFile = () => join(dir, `db-${++counter}.sqlite`);

function versions(file: string): number[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare<[], { version: number }>('SELECT version FROM schema_migrations ORDER BY version')
      .all()
      .map((r) => r.version);
  } finally {
    db.close();
  }
}

const latest = migrations.length;

describe('store migrations', () => {
  it('are numbered 1, 2, 3, … with names and SQL', () => {
    migrations.forEach((m, i) => {
      assert.equal(m.version, i + 1);
      assert.ok(m.name.length > 0);
      assert.ok(m.sql.trim().length > 0);
    });
  });

  it('apply on a fresh database and are not applied again on reopen', () => {
    const file = dbFile();
    const expected = migrations.map((m) => m.version);
    const store = openSqliteStore(file);
    store.createUser('ada', 'admin', 'hash');
    store.close();
    assert.deepEqual(versions(file), expected);

    const again = openSqliteStore(file);
    assert.equal(again.getUser('ada')?.role, 'admin');
    again.close();
    assert.deepEqual(versions(file), expected);
  });

  it('set WAL mode and foreign keys on a file database', () => {
    const file = dbFile();
    openSqliteStore(file).close();
    const db = new Database(file);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
  });

  it('refuse a database whose schema is newer than the code, and leave it untouched', () => {
    const file = dbFile();
    openSqliteStore(file).close();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(
      latest + 1,
      'from the future',
      '2999-01-01T00:00:00.000Z',
    );
    db.close();

    assert.throws(
      () => openSqliteStore(file),
      (err: unknown) =>
        err instanceof MusterError &&
        err.code === 'STORE_SCHEMA_TOO_NEW' &&
        err.details?.databaseVersion === latest + 1 &&
        err.details.codeVersion === latest,
    );
    assert.deepEqual(versions(file), [...migrations.map((m) => m.version), latest + 1]);
  });

  it('roll back every migration of the run when one fails', () => {
    const db = new Database(':memory:');
    const list = [
      { version: 1, name: 'good', sql: 'CREATE TABLE a (x INTEGER)' },
      { version: 2, name: 'bad', sql: 'CREATE TABLE b (x INTEGER); INSERT INTO nope VALUES (1)' },
    ];
    assert.throws(() => migrate(db, list), /no such table: nope/);
    const tables = db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .all()
      .map((r) => r.name);
    assert.deepEqual(tables, []);
    db.close();
  });

  it('apply only the new ones when the code has more', () => {
    const db = new Database(':memory:');
    const first = { version: 1, name: 'a', sql: 'CREATE TABLE a (x INTEGER)' };
    const second = { version: 2, name: 'b', sql: 'CREATE TABLE b (x INTEGER)' };
    assert.deepEqual(migrate(db, [first]), { from: 0, to: 1 });
    assert.deepEqual(migrate(db, [first, second]), { from: 1, to: 2 });
    assert.deepEqual(migrate(db, [first, second]), { from: 2, to: 2 });
    db.close();
  });

  it('reject a list with a gap or out of order', () => {
    const db = new Database(':memory:');
    const m = (version: number) => ({ version, name: `m${version}`, sql: 'SELECT 1' });
    assert.throws(() => migrate(db, [m(1), m(3)]), /versions must be 1, 2, 3/);
    assert.throws(() => migrate(db, [m(2), m(1)]), /versions must be 1, 2, 3/);
    db.close();
  });
});
