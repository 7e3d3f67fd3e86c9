/**
 * Replication on real SQLite: the change stream a primary records, a backup's copy built from a
 * snapshot plus pages, the position it resumes from, logins kept across snapshots, and the
 * forward-only merge of a backup's history.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { Plan } from '../../src/api/plan/types.js';
import { LOCAL_TOKEN_BASE } from '../../src/coordinator/store/replication.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-repl-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

function store(): Store {
  const s = openSqliteStore(file('db'));
  open.push(s);
  return s;
}

function plan(...names: string[]): Plan {
  return {
    name: 'demo',
    tasks: names.map((name) => ({
      name,
      extension: 'core',
      operation: 'run',
      input: { command: `echo ${name}` },
      inputs: [],
      outputs: [],
      needs: [],
      env: {},
      timeoutMs: undefined,
      retries: 0,
      requires: [],
    })),
  };
}

/** A backup's copy of `primary`: snapshot, then every page of changes. */
function copyOf(primary: Store): Store {
  const backup = store();
  const snap = file('snap');
  const { stream, seq } = primary.replication.writeSnapshot(snap);
  backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
  return backup;
}

function catchUp(primary: Store, backup: Store): void {
  for (;;) {
    const position = backup.replication.position();
    const page = primary.replication.readChanges(position.stream ?? '', position.seq);
    if (page.changes.length === 0 && page.lastSeq === position.seq) return;
    backup.replication.applyChanges(page, new Date().toISOString());
  }
}

function same(a: Store, b: Store): void {
  assert.deepEqual(b.listUsers(), a.listUsers());
  assert.deepEqual(b.listSettings(), a.listSettings());
  assert.deepEqual(b.listAgents(), a.listAgents());
  const builds = a.listBuilds({});
  assert.deepEqual(b.listBuilds({}), builds);
  for (const build of builds) {
    assert.deepEqual(b.listTasks(build.id), a.listTasks(build.id));
    assert.deepEqual(b.listAttempts(build.id), a.listAttempts(build.id));
    assert.deepEqual(b.readLogs(build.id, {}), a.readLogs(build.id, {}));
  }
}

describe('replication: the change stream', () => {
  it('records nothing until a backup is selected', () => {
    const primary = store();
    primary.setSetting('Agent.InstanceId', 'x');
    assert.equal(primary.replication.outStream(), null);
    assert.equal(primary.replication.lastSeq(), 0);
    assert.throws(
      () => primary.replication.readChanges('any', 0),
      (e: unknown) => e instanceof MusterError && e.code === 'SNAPSHOT_REQUIRED',
    );
  });

  it('copies users, settings, agents, builds, attempts and logs (binary too) exactly', () => {
    const primary = store();
    const stream = primary.replication.setRecording(true)!;
    assert.ok(stream);
    primary.createUser('ada', 'admin', 'hash');
    primary.setSetting('Agent.InstanceId', 'shared');
    const backup = copyOf(primary);
    same(primary, backup);
    // Then changes: a build run to its end, with a log chunk of arbitrary bytes.
    primary.addAgent({
      name: 'a1',
      host: '127.0.0.1',
      port: 7000,
      accessKey: 'k',
      fingerprint: null,
      tls: true,
      labels: ['x'],
      slots: null,
    });
    const build = primary.createBuild(plan('t1', 't2'), [], 'ada');
    const attempt = primary.createAttempt({
      buildId: build.id,
      taskName: 't1',
      number: 1,
      agent: 'a1',
      agentTaskId: `b${build.id}:t1:1`,
      status: 'running',
      startedAt: '2030-01-01T00:00:00.000Z',
    });
    primary.updateTask(build.id, 't1', { status: 'running', attempts: 1, agent: 'a1' });
    primary.appendLog({
      buildId: build.id,
      taskName: 't1',
      attempt: 1,
      stream: 'stdout',
      data: Buffer.from([0, 255, 10, 200]),
      at: '2030-01-01T00:00:01.000Z',
    });
    primary.finishAttempt(attempt.id, 'succeeded', {
      exitCode: 0,
      finishedAt: '2030-01-01T00:00:02.000Z',
    });
    primary.setSetting('Agent.InstanceId', undefined);
    primary.removeAgent('a1');
    catchUp(primary, backup);
    same(primary, backup);
    assert.equal(backup.getSetting('Agent.InstanceId'), undefined);
    assert.deepEqual(backup.readLogs(build.id, {})[0]?.data, Buffer.from([0, 255, 10, 200]));
  });

  it('sends each changed row once per page, as it is now', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const build = primary.createBuild(plan('t'), [], 'ada');
    for (let i = 0; i < 5; i++) primary.updateTask(build.id, 't', { attempts: i });
    const page = primary.replication.readChanges(primary.replication.outStream()!, 0);
    const taskChanges = page.changes.filter((c) => c.table === 'tasks');
    assert.equal(taskChanges.length, 1);
    assert.equal(taskChanges[0]?.row?.attempts, 4);
    assert.equal(page.lastSeq, primary.replication.lastSeq());
  });

  it('resumes after pruning, and asks for a snapshot when the position is gone', () => {
    const primary = store();
    const stream = primary.replication.setRecording(true)!;
    primary.setSetting('a', 1);
    primary.setSetting('b', 2);
    const seq = primary.replication.lastSeq();
    primary.replication.prune(seq - 1);
    assert.equal(primary.replication.readChanges(stream, seq - 1).changes.length, 1);
    assert.throws(
      () => primary.replication.readChanges(stream, 0),
      (e: unknown) => e instanceof MusterError && e.code === 'SNAPSHOT_REQUIRED',
    );
    assert.throws(
      () => primary.replication.readChanges('another-stream', seq),
      (e: unknown) => e instanceof MusterError && e.code === 'SNAPSHOT_REQUIRED',
    );
    // Selecting again starts a new stream.
    const next = primary.replication.setRecording(true);
    assert.notEqual(next, stream);
  });

  it("keeps a backup's own logins across a new snapshot", () => {
    const primary = store();
    primary.replication.setRecording(true);
    const ada = primary.createUser('ada', 'admin', 'hash');
    primary.createToken(ada.id, 'primary-token', '2099-01-01T00:00:00.000Z');
    const backup = copyOf(primary);
    backup.replication.reserveIds('api_tokens', LOCAL_TOKEN_BASE);
    const local = backup.createToken(ada.id, 'backup-token', '2099-01-01T00:00:00.000Z');
    assert.ok(local.id >= LOCAL_TOKEN_BASE);
    primary.createUser('bob', 'viewer', 'hash');
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    const now = '2030-01-01T00:00:00.000Z';
    assert.ok(backup.useToken('backup-token', now), 'the login made on the backup survives');
    assert.ok(backup.useToken('primary-token', now));
    assert.deepEqual(
      backup.listUsers().map((u) => u.name),
      ['ada', 'bob'],
    );
  });
});

describe('replication: merging a backup history back', () => {
  it('moves rows only forward: a stale copy never undoes what the primary recorded', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const build = primary.createBuild(plan('t'), [], 'ada');
    primary.setBuildStatus(build.id, 'running', { startedAt: '2030-01-01T00:00:00.000Z' });
    const backup = copyOf(primary);
    // The primary finishes the build; the backup's copy still says running.
    primary.updateTask(build.id, 't', { status: 'succeeded', attempts: 1 });
    primary.setBuildStatus(build.id, 'succeeded', { finishedAt: '2030-01-01T00:01:00.000Z' });
    const stale = backup.replication.exportBuildHistory(build.id, 0, 100);
    primary.replication.mergeBuildHistory(stale, []);
    assert.equal(primary.getBuild(build.id)?.status, 'succeeded');
    assert.equal(primary.getTask(build.id, 't')?.status, 'succeeded');
  });

  it('takes what the backup got further with, and appends its logs once', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const build = primary.createBuild(plan('t'), [], 'ada');
    const backup = copyOf(primary);
    backup.createAttempt({
      buildId: build.id,
      taskName: 't',
      number: 1,
      agent: 'a1',
      agentTaskId: `b${build.id}:t:1`,
      status: 'succeeded',
      startedAt: '2030-01-01T00:00:00.000Z',
    });
    backup.updateTask(build.id, 't', { status: 'succeeded', attempts: 1, agent: 'a1' });
    backup.setBuildStatus(build.id, 'succeeded', { finishedAt: '2030-01-01T00:01:00.000Z' });
    backup.appendLog({
      buildId: build.id,
      taskName: 't',
      attempt: 1,
      stream: 'stdout',
      data: Buffer.from('from the backup\n'),
      at: '2030-01-01T00:00:01.000Z',
    });
    const history = backup.replication.exportBuildHistory(build.id, 0, 100);
    assert.equal(primary.replication.mergeBuildHistory(history, history.logs), build.id);
    primary.replication.mergeBuildHistory(history, []);
    assert.equal(primary.getBuild(build.id)?.status, 'succeeded');
    assert.equal(primary.getTask(build.id, 't')?.status, 'succeeded');
    assert.equal(primary.listAttempts(build.id).length, 1);
    assert.deepEqual(
      primary.readLogs(build.id, {}).map((c) => c.data.toString()),
      ['from the backup\n'],
    );
  });

  it("keeps both sides' compile jobs that each numbered alike, once however often merged", () => {
    const primary = store();
    primary.replication.setRecording(true);
    const session = primary.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    const at = Date.parse(session.createdAt);
    const rec = (label: string, ms: number) => ({
      label,
      placement: 'local' as const,
      cache: 'miss' as const,
      exitCode: 0,
      startedAt: at + ms,
      durationMs: 1,
    });
    primary.appendRecords(session.id, [rec('gcc -c a.c', 1), rec('gcc -c b.c', 2)]);
    const backup = copyOf(primary);
    // Each side then numbers jobs the other never receives: a record and a remote job each.
    primary.appendRecords(session.id, [rec('gcc -c x.c', 3)]);
    primary.appendJobTask(session.id, { label: 'gcc -c p.c', spec: '{"p":1}', status: 'queued' });
    backup.appendRecords(session.id, [rec('gcc -c y.c', 4)]);
    const job = backup.appendJobTask(session.id, {
      label: 'gcc -c q.c',
      spec: '{"q":1}',
      status: 'queued',
    });
    backup.createAttempt({
      buildId: session.id,
      taskName: job.name,
      number: 1,
      agent: 'a2',
      agentTaskId: 'backup-job',
      status: 'running',
      startedAt: new Date(at + 5).toISOString(),
    });
    backup.appendLog({
      buildId: session.id,
      taskName: job.name,
      attempt: 1,
      stream: 'stderr',
      data: Buffer.from('warning: q'),
      at: new Date(at + 6).toISOString(),
    });
    assert.deepEqual(
      [primary.listTasks(session.id), backup.listTasks(session.id)].map((t) =>
        t.map((r) => r.name),
      ),
      [
        ['job-1', 'job-2', 'job-3', 'job-4'],
        ['job-1', 'job-2', 'job-3', 'job-4'],
      ],
    );
    const history = backup.replication.exportBuildHistory(session.id, 0, 10);
    assert.equal(primary.replication.mergeBuildHistory(history, history.logs), session.id);
    // The same history again (a failback cut short and run again, or its next log page).
    primary.replication.mergeBuildHistory(history, []);
    const tasks = primary.listTasks(session.id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.label]),
      [
        ['job-1', 'gcc -c a.c'],
        ['job-2', 'gcc -c b.c'],
        ['job-3', 'gcc -c x.c'],
        ['job-4', 'gcc -c p.c'],
        ['job-5', 'gcc -c y.c'],
        ['job-6', 'gcc -c q.c'],
      ],
    );
    // The backup's job keeps its attempt and its log, under its name here.
    assert.deepEqual(
      primary.listAttempts(session.id).map((a) => [a.taskName, a.agentTaskId]),
      [['job-6', 'backup-job']],
    );
    assert.deepEqual(
      primary.readLogs(session.id, { taskName: 'job-6' }).map((c) => c.data.toString()),
      ['warning: q'],
    );
    assert.equal(primary.getTask(session.id, 'job-6')?.attempts, 1);
  });

  it('renumbers a build whose id the primary gave to another, and clashing attempts', () => {
    const primary = store();
    const backup = store();
    const mine = primary.createBuild(plan('t'), [], 'ada');
    const theirs = backup.createBuild(plan('t'), [], 'bob');
    assert.equal(mine.id, theirs.id);
    primary.createAttempt({
      buildId: mine.id,
      taskName: 't',
      number: 1,
      agent: 'a1',
      agentTaskId: 'primary-attempt',
      status: 'running',
      startedAt: '2030-01-01T00:00:00.000Z',
    });
    backup.createAttempt({
      buildId: theirs.id,
      taskName: 't',
      number: 1,
      agent: 'a2',
      agentTaskId: 'backup-attempt',
      status: 'succeeded',
      startedAt: '2030-01-01T00:00:00.000Z',
    });
    const id = primary.replication.mergeBuildHistory(
      backup.replication.exportBuildHistory(theirs.id, 0, 10),
      [],
    );
    assert.notEqual(id, mine.id);
    assert.equal(primary.getBuild(id)?.createdBy, 'bob');
    assert.equal(primary.getBuild(mine.id)?.createdBy, 'ada');
    assert.equal(primary.listAttempts(id)[0]?.agentTaskId, 'backup-attempt');
  });
});
