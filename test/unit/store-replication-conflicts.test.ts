/**
 * Replication when the primary's rows collide with rows the backup has under another key, on
 * real SQLite on both sides: the logins a failback copied to the primary under new ids (issue 11:
 * the backup failed every snapshot with "UNIQUE constraint failed: api_tokens.token_hash"),
 * user names that moved to other ids, and logins of users the primary deleted or changed. The
 * primary's row always wins; the backup's row gives way by rule, never by a constraint error.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LOCAL_TOKEN_BASE } from '../../src/coordinator/store/replication.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { uniqueKeys } from '../../src/coordinator/store/unique-keys.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-repl-conflicts-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: { close(): void }[] = [];
afterEach(() => {
  for (const handle of open.splice(0)) handle.close();
});

const FAR = '2099-01-01T00:00:00.000Z';
const NOW = '2030-01-01T00:00:00.000Z';

function store(path = file('db')): Store {
  const s = openSqliteStore(path);
  open.push(s);
  return s;
}

/** A second connection to a store's file: what a future migration or feature could write. */
function raw(path: string): Database.Database {
  const db = new Database(path);
  open.push(db);
  return db;
}

/** A backup holding a copy of `primary` (snapshot), with its login ids reserved as at start. */
function backupOf(primary: Store): Store {
  const backup = store();
  backup.replication.reserveIds('api_tokens', LOCAL_TOKEN_BASE);
  snapshot(primary, backup);
  return backup;
}

function snapshot(primary: Store, backup: Store): void {
  const snap = file('snap');
  const { stream, seq } = primary.replication.writeSnapshot(snap);
  backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
}

function catchUp(primary: Store, backup: Store): void {
  for (;;) {
    const position = backup.replication.position();
    const page = primary.replication.readChanges(position.stream ?? '', position.seq, 2);
    if (page.changes.length === 0 && page.lastSeq === position.seq) return;
    backup.replication.applyChanges(page, new Date().toISOString());
  }
}

/** What the failback does with the logins made on an active backup (failback.ts). */
function failBack(primary: Store, backup: Store, afterTokenId: number): void {
  primary.replication.mergeTokens(backup.replication.exportTokens(afterTokenId));
  primary.replication.setRecording(true);
  backup.replication.resetPosition();
}

/** The primary's tokens as the backup must have them: every column but last_used_at. */
function tokens(s: Store, below = LOCAL_TOKEN_BASE): unknown[] {
  return s.replication
    .exportTokens(0)
    .filter((t) => Number(t.id) < below)
    .map(({ last_used_at: _, ...t }) => t);
}

function userOf(s: Store, token: string): string | undefined {
  return s.useToken(token, NOW)?.user.name;
}

describe('replication: the primary wins every unique key', () => {
  it('applies a snapshot after a failback that copied the backup’s logins (the wedge)', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const ada = primary.createUser('ada', 'admin', 'hash-ada');
    primary.createToken(ada.id, 'primary-login', FAR);
    const backup = backupOf(primary);
    // The backup runs the cluster; ada logs in there; the primary comes back and fails back.
    const before = backup.replication.maxId('api_tokens');
    backup.createToken(ada.id, 'login-on-backup', FAR);
    failBack(primary, backup, before);
    snapshot(primary, backup);
    assert.deepEqual(tokens(backup, Infinity), tokens(primary), 'only the primary’s rows remain');
    assert.equal(userOf(backup, 'login-on-backup'), 'ada', 'the login on the backup still works');
    assert.equal(userOf(backup, 'primary-login'), 'ada');
    // And the stream goes on from there.
    primary.createUser('bob', 'viewer', 'hash-bob');
    catchUp(primary, backup);
    assert.deepEqual(
      backup.listUsers().map((u) => u.name),
      ['ada', 'bob'],
    );
  });

  it('applies a change that inserts a login the backup has under its own id', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const ada = primary.createUser('ada', 'admin', 'hash-ada');
    const backup = backupOf(primary);
    const local = backup.createToken(ada.id, 'login-on-backup', FAR);
    assert.ok(local.id >= LOCAL_TOKEN_BASE);
    // The same hash reaches the primary under the primary's id (a failback cut short and run
    // again on the same stream, or any future path): the change stream brings it.
    primary.replication.mergeTokens(backup.replication.exportTokens(local.id - 1));
    catchUp(primary, backup);
    assert.deepEqual(tokens(backup, Infinity), tokens(primary));
    assert.equal(userOf(backup, 'login-on-backup'), 'ada');
  });

  it('applies a snapshot whose users took names the backup has under other ids', () => {
    const primary = store();
    primary.replication.setRecording(true);
    primary.createUser('admin', 'admin', 'hash-admin');
    const backup = backupOf(primary);
    // A copy that diverged from the primary's (no API changes users on a backup today; this
    // stands for any way a backup's rows come apart from the primary's): the same two users,
    // made in the opposite order.
    const carolHere = backup.createUser('carol', 'viewer', 'hash-carol-backup');
    backup.createUser('dave', 'viewer', 'hash-dave-backup');
    backup.createToken(carolHere.id, 'carol-on-backup', FAR);
    primary.createUser('dave', 'admin', 'hash-dave-primary');
    const carol = primary.createUser('carol', 'viewer', 'hash-carol-primary');
    primary.createToken(carol.id, 'carol-on-primary', FAR);
    primary.replication.setRecording(true);
    snapshot(primary, backup);
    assert.deepEqual(backup.listUsers(), primary.listUsers());
    assert.deepEqual(tokens(backup, Infinity), tokens(primary));
    // The id carol had on the backup is dave's now: her login there must not become his.
    assert.equal(userOf(backup, 'carol-on-backup'), undefined);
    assert.equal(userOf(backup, 'carol-on-primary'), 'carol');
  });

  it('applies changes that swap two users’ names, keeping each user’s logins', () => {
    const path = file('db');
    const primary = store(path);
    primary.replication.setRecording(true);
    const ada = primary.createUser('ada', 'admin', 'hash-ada');
    const bob = primary.createUser('bob', 'viewer', 'hash-bob');
    primary.createToken(ada.id, 'ada-login', FAR);
    primary.createToken(bob.id, 'bob-login', FAR);
    const backup = backupOf(primary);
    const local = backup.createToken(ada.id, 'ada-on-backup', FAR);
    assert.ok(local.id >= LOCAL_TOKEN_BASE);
    // No API renames a user today; a future one (or a hand edit) may. The stream sends each
    // user once, as it is now, so the backup meets "bob" for id 1 while its id 2 is still bob.
    raw(path).exec(`
      UPDATE users SET name = 'tmp' WHERE name = 'ada';
      UPDATE users SET name = 'ada' WHERE name = 'bob';
      UPDATE users SET name = 'bob' WHERE name = 'tmp';`);
    catchUp(primary, backup);
    assert.deepEqual(backup.listUsers(), primary.listUsers());
    assert.deepEqual(tokens(backup), tokens(primary), 'tokens stay with their user ids');
    assert.equal(userOf(backup, 'ada-login'), 'bob');
    assert.equal(userOf(backup, 'bob-login'), 'ada');
    // A rename keeps the account (same id, same password): the backup's login stays with it.
    assert.equal(userOf(backup, 'ada-on-backup'), 'bob');
    // A snapshot of the same state changes nothing.
    primary.replication.setRecording(true);
    backup.replication.resetPosition();
    snapshot(primary, backup);
    assert.deepEqual(backup.listUsers(), primary.listUsers());
    assert.equal(userOf(backup, 'ada-on-backup'), 'bob');
  });

  it('ends the backup’s logins of a user the primary deleted, re-made or gave a new password', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const ada = primary.createUser('ada', 'admin', 'hash-ada');
    const bob = primary.createUser('bob', 'viewer', 'hash-bob');
    const eve = primary.createUser('eve', 'viewer', 'hash-eve');
    const backup = backupOf(primary);
    backup.createToken(ada.id, 'ada-on-backup', FAR);
    backup.createToken(bob.id, 'bob-on-backup', FAR);
    backup.createToken(eve.id, 'eve-on-backup', FAR);
    primary.deleteUser('bob');
    primary.setPassword('eve', 'hash-eve-2');
    catchUp(primary, backup);
    assert.equal(userOf(backup, 'ada-on-backup'), 'ada');
    assert.equal(userOf(backup, 'bob-on-backup'), undefined, 'deleted with its user');
    assert.equal(userOf(backup, 'eve-on-backup'), undefined, 'a new password ends them');
    // The same through a snapshot: bob is re-made (a new account with the old name).
    const bob2 = backup.createToken(ada.id, 'ada-again', FAR);
    assert.ok(bob2.id >= LOCAL_TOKEN_BASE);
    backup.replication.resetPosition();
    primary.replication.setRecording(true);
    primary.createUser('bob', 'viewer', 'hash-bob-2');
    primary.setPassword('ada', 'hash-ada-2');
    snapshot(primary, backup);
    assert.equal(userOf(backup, 'ada-on-backup'), undefined);
    assert.equal(userOf(backup, 'ada-again'), undefined);
    assert.deepEqual(backup.listUsers(), primary.listUsers());
  });

  it('keeps the backup’s logins of users the snapshot leaves as they were', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const ada = primary.createUser('ada', 'admin', 'hash-ada');
    const backup = backupOf(primary);
    backup.createToken(ada.id, 'ada-on-backup', FAR);
    primary.createUser('bob', 'viewer', 'hash-bob');
    primary.replication.setRecording(true);
    backup.replication.resetPosition();
    snapshot(primary, backup);
    assert.equal(userOf(backup, 'ada-on-backup'), 'ada');
  });

  it('resolves a unique key a later migration adds, read from SQLite', () => {
    const primaryPath = file('db');
    const backupPath = file('db');
    for (const path of [primaryPath, backupPath]) {
      store(path).close();
      raw(path).exec('CREATE UNIQUE INDEX agents_address ON agents (host, port)');
    }
    const primary = store(primaryPath);
    primary.replication.setRecording(true);
    const backup = store(backupPath);
    snapshot(primary, backup);
    const agent = { host: '127.0.0.1', port: 7000, accessKey: 'k', fingerprint: null, tls: true };
    backup.addAgent({ ...agent, name: 'added-on-backup', labels: [], slots: null });
    primary.addAgent({ ...agent, name: 'added-on-primary', labels: [], slots: null });
    catchUp(primary, backup);
    assert.deepEqual(backup.listAgents(), primary.listAgents());
  });

  it('reads every unique key of the replicated tables, and refuses one it cannot resolve', () => {
    const path = file('db');
    const s = store(path);
    const db = raw(path);
    const keys = (table: string) => uniqueKeys(db, table).map((k) => k.columns.join(','));
    assert.deepEqual(keys('users'), ['name']);
    assert.deepEqual(keys('api_tokens'), ['token_hash']);
    assert.deepEqual(keys('builds'), ['uid']);
    assert.deepEqual(keys('attempts').sort(), ['agent_task_id', 'build_id,task_name,number']);
    assert.deepEqual(keys('settings'), []);
    s.close();
    db.exec('CREATE UNIQUE INDEX agents_some ON agents (host) WHERE port > 0');
    assert.throws(() => openSqliteStore(path), /agents_some/);
  });
});
