/**
 * The audit log on real SQLite: rows as written, newest first with filters and pages, the bound
 * on its size, replication to a backup (snapshot and change stream), and the merge of a backup's
 * rows at failback, which adds each row once however often it runs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { NewAuditRow } from '../../src/coordinator/store/audit.js';
import { REPLICATED_TABLES } from '../../src/coordinator/store/replication.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

function store(options: { auditMaxRows?: number; now?: () => Date } = {}): Store {
  const s = openSqliteStore(file('db'), options);
  open.push(s);
  return s;
}

const change = (action: string, target: string, actor = 'admin'): NewAuditRow => ({
  actor,
  actorKind: 'user',
  ip: '127.0.0.1',
  action,
  target,
  details: { note: action },
});

describe('audit: the store', () => {
  it('keeps who, when, from where and what, and lists newest first', () => {
    let now = Date.parse('2026-12-06T10:00:00Z');
    const s = store({ now: () => new Date(now) });
    const first = s.audit.record(change('user.create', 'ann'));
    now += 1000;
    s.audit.record(change('agent.add', 'a1', 'bob'));
    assert.equal(first.actor, 'admin');
    assert.equal(first.ip, '127.0.0.1');
    assert.equal(first.at, Date.parse('2026-12-06T10:00:00Z'));
    assert.match(first.uid, /^[0-9a-f-]{36}$/);
    assert.deepEqual(first.details, { note: 'user.create' });
    assert.deepEqual(
      s.audit.list().map((r) => r.action),
      ['agent.add', 'user.create'],
    );
  });

  it('filters by action and actor, and pages with beforeId', () => {
    const s = store();
    for (let i = 0; i < 5; i++) s.audit.record(change('setting.set', `k${i}`));
    s.audit.record(change('user.delete', 'ann', 'bob'));
    assert.deepEqual(
      s.audit.list({ action: 'user.delete' }).map((r) => r.target),
      ['ann'],
    );
    assert.deepEqual(
      s.audit.list({ actor: 'admin', limit: 2 }).map((r) => r.target),
      ['k4', 'k3'],
    );
    const page = s.audit.list({ actor: 'admin', limit: 2 });
    assert.deepEqual(
      s.audit.list({ actor: 'admin', limit: 2, beforeId: page.at(-1)!.id }).map((r) => r.target),
      ['k2', 'k1'],
    );
  });

  it('keeps at most its limit of rows, dropping the oldest', () => {
    const s = store({ auditMaxRows: 3 });
    for (let i = 0; i < 7; i++) s.audit.record(change('setting.set', `k${i}`));
    assert.deepEqual(
      s.audit.list().map((r) => r.target),
      ['k6', 'k5', 'k4'],
    );
  });
});

describe('audit: high availability', () => {
  it('is a replicated table: a backup gets the rows by snapshot and by the change stream', () => {
    assert.ok((REPLICATED_TABLES as readonly string[]).includes('audit'));
    const primary = store();
    primary.audit.record(change('user.create', 'before'));
    primary.replication.setRecording(true);
    primary.audit.record(change('user.create', 'snapshotted'));
    const backup = store();
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    primary.audit.record(change('agent.remove', 'streamed'));
    backup.replication.applyChanges(
      primary.replication.readChanges(stream, seq),
      new Date().toISOString(),
    );
    assert.deepEqual(backup.audit.list(), primary.audit.list());
    assert.deepEqual(
      backup.audit.list().map((r) => r.target),
      ['streamed', 'snapshotted', 'before'],
    );
  });

  it("merges a backup's rows since its takeover once, however often failback runs", () => {
    const primary = store();
    primary.audit.record(change('user.create', 'ann'));
    // The backup's copy, then what it writes once it runs the cluster.
    const backup = store();
    primary.replication.setRecording(true);
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    const takeoverAt = Date.now() + 1;
    const own = backup.audit.record({
      actor: 'backup-1',
      actorKind: 'backup',
      ip: null,
      action: 'ha.takeover',
      target: 'backup-1',
      details: { term: 2 },
      at: takeoverAt + 5,
    });
    // Meanwhile the primary, cut off, records a change of its own under the same id.
    primary.audit.record(change('setting.set', 'Agent.InstanceId'));
    const handed = backup.audit.exportSince(takeoverAt, 0, 100);
    assert.deepEqual(
      handed.map((r) => r.uid),
      [own.uid],
    );
    assert.equal(primary.audit.merge(handed), 1);
    assert.equal(primary.audit.merge(handed), 0);
    const rows = primary.audit.list();
    assert.deepEqual(
      rows.map((r) => r.action),
      ['ha.takeover', 'setting.set', 'user.create'],
    );
    assert.equal(rows[0]!.actor, 'backup-1');
    assert.equal(rows[0]!.actorKind, 'backup');
    assert.equal(rows[0]!.at, takeoverAt + 5);
    assert.deepEqual(rows[0]!.details, { term: 2 });
  });
});
