/**
 * HA state in its own table (store.ha), not in the user settings: typed accessors, the migration
 * that moves the old settings there, and its replication to a backup (snapshot and changes).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { migrations } from '../../src/coordinator/store/migrations.js';
import { migrate } from '../../src/coordinator/store/migrator.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-ha-state-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);
const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

function store(path = file('db')): Store {
  const s = openSqliteStore(path);
  open.push(s);
  return s;
}

const takeover = {
  term: 3,
  at: '2030-01-01T00:00:00.000Z',
  activeBuildIds: [4, 5],
  maxBuildId: 5,
  maxLogId: 70,
  maxTokenId: 9,
};

describe('store.ha', () => {
  it('reads what it wrote, and defaults when nothing is there', () => {
    const s = store();
    assert.equal(s.ha.term(), 1);
    assert.equal(s.ha.takeover(), undefined);
    assert.equal(s.ha.failbackProgress(), undefined);
    assert.equal(s.ha.selectedBackup(), undefined);
    assert.equal(s.ha.lastDeselection(), undefined);
    assert.deepEqual(s.ha.owed(), []);
    s.ha.setTerm(7);
    s.ha.setTakeover(takeover);
    s.ha.setFailbackProgress({ term: 3, logs: { '4': 12 } });
    s.ha.setSelectedBackup('b1');
    s.ha.setLastDeselection({ name: 'b0', at: '2030-01-01T00:00:00.000Z', reason: 'gone' });
    s.ha.setOwed(['b0']);
    assert.equal(s.ha.term(), 7);
    assert.deepEqual(s.ha.takeover(), takeover);
    assert.deepEqual(s.ha.failbackProgress(), { term: 3, logs: { '4': 12 } });
    assert.equal(s.ha.selectedBackup(), 'b1');
    assert.equal(s.ha.lastDeselection()?.name, 'b0');
    assert.deepEqual(s.ha.owed(), ['b0']);
    // None of it is a user setting.
    assert.deepEqual(s.listSettings(), {});
    s.ha.setTakeover(undefined);
    s.ha.setSelectedBackup(undefined);
    s.ha.setOwed([]);
    assert.equal(s.ha.takeover(), undefined);
    assert.equal(s.ha.selectedBackup(), undefined);
    assert.deepEqual(s.ha.owed(), []);
  });

  it('moves the HA settings of a database from before migration 4 out of the settings', () => {
    const path = file('old');
    const db = new Database(path);
    migrate(
      db,
      migrations.filter((m) => m.version < 4),
    );
    const put = db.prepare('INSERT INTO settings (key, value) VALUES (?, ?)');
    put.run('Cluster.Term', '5');
    put.run('HA.Takeover', JSON.stringify(takeover));
    put.run('HA.Failback', JSON.stringify({ term: 3, logs: { '4': 1 } }));
    put.run('Backup.Selected', '"b2"');
    put.run(
      'Backup.LastDeselected',
      JSON.stringify({ name: 'b1', at: '2030-01-01T00:00:00.000Z', reason: 'not reached' }),
    );
    put.run('Backup.Owed', '["b1"]');
    put.run('Agent.InstanceId', '"shared"');
    put.run('Agent.InstanceKey', '"key"');
    db.close();

    const s = store(path);
    assert.equal(s.ha.term(), 5);
    assert.deepEqual(s.ha.takeover(), takeover);
    assert.deepEqual(s.ha.failbackProgress(), { term: 3, logs: { '4': 1 } });
    assert.equal(s.ha.selectedBackup(), 'b2');
    assert.deepEqual(s.ha.lastDeselection(), {
      name: 'b1',
      at: '2030-01-01T00:00:00.000Z',
      reason: 'not reached',
    });
    assert.deepEqual(s.ha.owed(), ['b1']);
    // The agent settings stay user settings.
    assert.deepEqual(s.listSettings(), {
      'Agent.InstanceId': 'shared',
      'Agent.InstanceKey': 'key',
    });
  });

  it('replicates to a backup, by snapshot and by change', () => {
    const primary = store();
    primary.ha.setTerm(2);
    primary.ha.setSelectedBackup('b1');
    const stream = primary.replication.setRecording(true);
    assert.ok(stream);
    const snapshot = join(dir, `snap-${++counter}.db`);
    const at = primary.replication.writeSnapshot(snapshot);
    const backup = store();
    backup.replication.applySnapshot(snapshot, at.stream, at.seq, new Date().toISOString());
    assert.equal(backup.ha.term(), 2);
    assert.equal(backup.ha.selectedBackup(), 'b1');
    primary.ha.setTerm(4);
    primary.ha.setOwed(['b0']);
    const position = backup.replication.position();
    const page = primary.replication.readChanges(position.stream ?? '', position.seq);
    backup.replication.applyChanges(page, new Date().toISOString());
    assert.equal(backup.ha.term(), 4);
    assert.deepEqual(backup.ha.owed(), ['b0']);
  });
});
