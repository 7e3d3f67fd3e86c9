/**
 * Compile sessions in the store (migration 6), on real SQLite: an older database upgraded, open
 * builds with their records (names, times clamped to the session, outcomes), closing, and the
 * new columns through replication and through a failback's merge (checked by the same schema
 * the primary checks a backup's history with).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { buildHistorySchema, fromBackup } from '../../src/coordinator/ha/history-schema.js';
import { migrations } from '../../src/coordinator/store/migrations.js';
import { migrate } from '../../src/coordinator/store/migrator.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { CompileRecord } from '../../src/coordinator/store/types.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-store-compile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

/** A store whose clock reads `clock.now` (ms). */
function store(clock = { now: Date.parse('2030-01-01T00:00:00.000Z') }): Store {
  const s = openSqliteStore(file('db'), { now: () => new Date(clock.now) });
  open.push(s);
  return s;
}

const record = (overrides: Partial<CompileRecord> = {}): CompileRecord => ({
  label: 'gcc -c a.c -o a.o',
  placement: 'local',
  cache: 'miss',
  exitCode: 0,
  startedAt: Date.parse('2030-01-01T00:00:01.000Z'),
  durationMs: 500,
  ...overrides,
});

const summary = { jobs: 3, remote: 0, local: 2, cacheHits: 1, fallbacks: 1 };

/** What crosses at failback: JSON, as the primary receives it. */
function overTheWire(value: unknown): { build: Record<string, unknown> } & Record<string, unknown> {
  return JSON.parse(JSON.stringify(value)) as { build: Record<string, unknown> };
}

function closedCode(err: unknown): boolean {
  return err instanceof MusterError && err.code === 'COMPILE_SESSION_CLOSED';
}

describe('store: migration 6 (compile sessions)', () => {
  it('upgrades a database of migration 5: its builds are closed plan builds, its tasks plan tasks', () => {
    const path = file('old');
    const db = new Database(path);
    migrate(db, migrations.slice(0, 5), () => new Date('2029-01-01T00:00:00.000Z'));
    db.prepare(
      `INSERT INTO builds (status, plan, files, created_by, created_at, uid)
       VALUES ('succeeded', '{"name":"old","tasks":[]}', '[]', 'ada', '2029-01-01T00:00:00.000Z',
               '0123456789abcdef0123456789abcdef')`,
    ).run();
    db.prepare(
      `INSERT INTO tasks (build_id, name, position, status) VALUES (1, 't', 0, 'succeeded')`,
    ).run();
    db.close();

    const upgraded = openSqliteStore(path);
    open.push(upgraded);
    const build = upgraded.getBuild(1);
    assert.equal(build?.kind, 'plan');
    assert.equal(build?.open, false);
    assert.equal(build?.summary, null);
    const task = upgraded.getTask(1, 't');
    assert.deepEqual(
      [task?.label, task?.cache, task?.placement, task?.fallback],
      [null, null, null, null],
    );
    assert.deepEqual(upgraded.listOpenBuilds(), []);
  });
});

describe('store: open builds', () => {
  it('creates a running, open compile build with no tasks, counted per user', () => {
    const s = store();
    const build = s.createOpenBuild({ name: 'make -j4', createdBy: 'ada', kind: 'compile' });
    assert.equal(build.status, 'running');
    assert.equal(build.kind, 'compile');
    assert.equal(build.open, true);
    assert.equal(build.plan.name, 'make -j4');
    assert.deepEqual(build.plan.tasks, []);
    assert.equal(build.startedAt, '2030-01-01T00:00:00.000Z');
    s.createOpenBuild({ name: 'ninja', createdBy: 'ada', kind: 'compile' });
    assert.equal(s.countOpenBuilds('ada'), 2);
    assert.equal(s.countOpenBuilds('bob'), 0);
    assert.deepEqual(
      s.listOpenBuilds().map((b) => b.plan.name),
      ['make -j4', 'ninja'],
    );
    // A plan build is never open.
    assert.equal(s.createBuild({ name: 'p', tasks: [] }, [], 'ada').open, false);
    assert.equal(s.countOpenBuilds('ada'), 2);
  });

  it('appends records as finished tasks job-1, job-2, … that go on counting across batches', () => {
    const clock = { now: Date.parse('2030-01-01T00:00:00.000Z') };
    const s = store(clock);
    const build = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    clock.now += 10_000;
    const first = s.appendRecords(build.id, [
      record(),
      record({ placement: 'cache', cache: 'hit', durationMs: 3 }),
    ]);
    const second = s.appendRecords(build.id, [
      record({ exitCode: 1, label: 'gcc -c bad.c', fallback: 'agent-lost' }),
      record({ exitCode: null }),
    ]);
    assert.deepEqual(
      [...first, ...second].map((t) => t.name),
      ['job-1', 'job-2', 'job-3', 'job-4'],
    );
    const tasks = s.listTasks(build.id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.status, t.agent, t.placement, t.cache, t.exitCode, t.fallback]),
      [
        ['job-1', 'succeeded', 'local', 'local', 'miss', 0, null],
        ['job-2', 'succeeded', 'cache', 'cache', 'hit', 0, null],
        ['job-3', 'failed', 'local', 'local', 'miss', 1, 'agent-lost'],
        ['job-4', 'failed', 'local', 'local', 'miss', null, null],
      ],
    );
    assert.equal(tasks[0]?.label, 'gcc -c a.c -o a.o');
    assert.equal(tasks[0]?.startedAt, '2030-01-01T00:00:01.000Z');
    assert.equal(tasks[0]?.finishedAt, '2030-01-01T00:00:01.500Z');
    assert.equal(tasks[0]?.attempts, 0);
    assert.equal(tasks[0]?.error, null);
    assert.equal(tasks[2]?.error, 'the compiler exited with 1');
    assert.equal(tasks[3]?.error, 'a signal ended the compiler');
    // The build stays open and running, whatever its tasks did.
    assert.equal(s.getBuild(build.id)?.status, 'running');
    assert.equal(s.getBuild(build.id)?.open, true);
  });

  it("clamps a client's times to the session: not before it opened, not after now", () => {
    const clock = { now: Date.parse('2030-01-01T00:00:00.000Z') };
    const s = store(clock);
    const build = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    clock.now += 60_000;
    const [early, late, long] = s.appendRecords(build.id, [
      record({ startedAt: 0, durationMs: 1000 }),
      record({ startedAt: Date.parse('2031-01-01T00:00:00.000Z'), durationMs: 5 }),
      record({
        startedAt: Date.parse('2030-01-01T00:00:30.000Z'),
        durationMs: Number.MAX_SAFE_INTEGER,
      }),
    ]);
    assert.equal(early?.startedAt, '2030-01-01T00:00:00.000Z');
    assert.equal(early?.finishedAt, '2030-01-01T00:00:01.000Z');
    assert.equal(late?.startedAt, '2030-01-01T00:01:00.000Z');
    assert.equal(late?.finishedAt, '2030-01-01T00:01:00.000Z');
    assert.equal(long?.startedAt, '2030-01-01T00:00:30.000Z');
    assert.equal(long?.finishedAt, '2030-01-01T00:01:00.000Z');
  });

  it("closes with the command's exit code and the summary; a closed build takes nothing more", () => {
    const s = store();
    const ok = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    const closed = s.closeBuild(ok.id, { exitCode: 0, summary });
    assert.equal(closed.status, 'succeeded');
    assert.equal(closed.open, false);
    assert.equal(closed.error, null);
    assert.deepEqual(closed.summary, summary);
    assert.equal(closed.finishedAt, '2030-01-01T00:00:00.000Z');
    assert.deepEqual(s.getBuild(ok.id), closed);
    assert.throws(() => s.appendRecords(ok.id, [record()]), closedCode);
    assert.throws(() => s.closeBuild(ok.id, { exitCode: 0, summary }), closedCode);
    assert.deepEqual(s.listTasks(ok.id), []);

    const failed = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    assert.equal(
      s.closeBuild(failed.id, { exitCode: 2, summary }).error,
      'the command exited with 2',
    );
    const killed = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    assert.equal(
      s.closeBuild(killed.id, { exitCode: null, summary: null }).error,
      'a signal ended the command',
    );
    const gone = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    const idle = s.closeBuild(gone.id, {
      exitCode: null,
      summary: null,
      error: 'the client went away',
    });
    assert.deepEqual(
      [idle.status, idle.error, idle.summary],
      ['failed', 'the client went away', null],
    );
    assert.equal(s.countOpenBuilds('ada'), 0);
  });

  it('refuses records for a plan build or a build that does not exist', () => {
    const s = store();
    const planBuild = s.createBuild({ name: 'p', tasks: [] }, [], 'ada');
    assert.throws(() => s.appendRecords(planBuild.id, [record()]), closedCode);
    assert.throws(
      () => s.appendRecords(999, [record()]),
      (err: unknown) => err instanceof MusterError && err.code === 'NOT_FOUND',
    );
  });

  it('is no longer open once cancelled like any build', () => {
    const s = store();
    const build = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    s.setBuildStatus(build.id, 'running', {});
    assert.equal(s.getBuild(build.id)?.open, true);
    s.setBuildStatus(build.id, 'cancelled', { finishedAt: '2030-01-01T00:00:05.000Z' });
    assert.equal(s.getBuild(build.id)?.open, false);
    assert.throws(() => s.appendRecords(build.id, [record()]), closedCode);
  });
});

describe('store: compile sessions under high availability', () => {
  it('replicate with their records, and a session the backup went on with merges back closed', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const build = primary.createOpenBuild({ name: 'make -j8', createdBy: 'ada', kind: 'compile' });
    primary.appendRecords(build.id, [record(), record({ placement: 'cache', cache: 'hit' })]);

    // The backup's copy: a snapshot, then the change stream.
    const backup = store();
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    primary.appendRecords(build.id, [record({ label: 'gcc -c late.c', fallback: 'no-agent' })]);
    for (;;) {
      const position = backup.replication.position();
      const page = primary.replication.readChanges(position.stream ?? '', position.seq);
      if (page.changes.length === 0 && page.lastSeq === position.seq) break;
      backup.replication.applyChanges(page, new Date().toISOString());
    }
    assert.deepEqual(backup.getBuild(build.id), primary.getBuild(build.id));
    assert.deepEqual(backup.listTasks(build.id), primary.listTasks(build.id));
    assert.deepEqual(backup.listOpenBuilds(), primary.listOpenBuilds());

    // The primary goes away; the client goes on with the backup, then closes the session there.
    backup.appendRecords(build.id, [record({ exitCode: 1, label: 'gcc -c broken.c' })]);
    backup.closeBuild(build.id, { exitCode: 2, summary });

    // Failback: the history crosses as JSON and is checked like anything a backup sends.
    const wire = overTheWire(backup.replication.exportBuildHistory(build.id, 0, 100));
    const history = fromBackup(buildHistorySchema, wire, 'history');
    assert.equal(primary.replication.mergeBuildHistory(history, history.logs), build.id);
    const merged = primary.getBuild(build.id);
    assert.equal(merged?.status, 'failed');
    assert.equal(merged?.open, false);
    assert.equal(merged?.kind, 'compile');
    assert.equal(merged?.error, 'the command exited with 2');
    assert.deepEqual(merged?.summary, summary);
    assert.deepEqual(primary.listTasks(build.id), backup.listTasks(build.id));
    assert.deepEqual(
      primary.listTasks(build.id).map((t) => [t.name, t.label, t.placement, t.fallback]),
      [
        ['job-1', 'gcc -c a.c -o a.o', 'local', null],
        ['job-2', 'gcc -c a.c -o a.o', 'cache', null],
        ['job-3', 'gcc -c late.c', 'local', 'no-agent'],
        ['job-4', 'gcc -c broken.c', 'local', null],
      ],
    );
    assert.deepEqual(primary.listOpenBuilds(), []);
  });

  it('merges a session new to the primary (opened on the backup) with its kind and open flag', () => {
    const primary = store();
    const backup = store();
    const build = backup.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    backup.appendRecords(build.id, [record()]);
    const wire = overTheWire(backup.replication.exportBuildHistory(build.id, 0, 100));
    const id = primary.replication.mergeBuildHistory(
      fromBackup(buildHistorySchema, wire, 'history'),
      [],
    );
    const merged = primary.getBuild(id);
    assert.deepEqual([merged?.kind, merged?.open, merged?.status], ['compile', true, 'running']);
    assert.deepEqual(primary.listTasks(id), backup.listTasks(build.id));
    // Still open here: the client may report to the primary again.
    assert.equal(primary.appendRecords(id, [record()])[0]?.name, 'job-2');
  });

  it('takes the history of a backup that knows no compile sessions as plan builds', () => {
    const backup = store();
    const build = backup.createBuild({ name: 'p', tasks: [] }, [], 'ada');
    const wire = overTheWire(backup.replication.exportBuildHistory(build.id, 0, 100));
    for (const key of ['kind', 'open', 'summary']) delete wire.build[key];
    const history = fromBackup(buildHistorySchema, wire, 'history');
    assert.deepEqual(
      [history.build.kind, history.build.open, history.build.summary],
      ['plan', 0, null],
    );
    const bad = { ...wire, build: { ...wire.build, summary: '{"jobs":-1}' } };
    assert.throws(
      () => fromBackup(buildHistorySchema, bad, 'history'),
      (err: unknown) => err instanceof MusterError && err.code === 'VALIDATION_FAILED',
    );
  });
});
