/**
 * Deleting builds on real SQLite: everything of the build goes (tasks, attempts, logs, its blob
 * references), other builds stay untouched, a build that has not ended is refused, the deletion
 * replicates to a backup's copy as deletions, and the list retention deletes from.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { Plan } from '../../src/api/plan/types.js';
import { shaList } from '../../src/coordinator/ha/blob-sync.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-delete-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

let clock = new Date('2030-01-01T00:00:00.000Z');
function store(): Store {
  const s = openSqliteStore(file('db'), { now: () => clock });
  open.push(s);
  return s;
}

const sha = (c: string) => c.repeat(64);

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

/** A build of two tasks run to `status`, with an attempt, a log chunk and an output each. */
function ranBuild(s: Store, tag: string, status: 'succeeded' | 'failed' | 'running'): number {
  const build = s.createBuild(
    plan('t1', 't2'),
    [{ path: 'in.c', sha256: sha(tag), size: 1, mode: 0o644 }],
    'ada',
  );
  s.setBuildStatus(build.id, 'running', { startedAt: clock.toISOString() });
  for (const task of ['t1', 't2']) {
    const attempt = s.createAttempt({
      buildId: build.id,
      taskName: task,
      number: 1,
      agent: 'a1',
      agentTaskId: `b${build.id}:${task}:1`,
      status: 'running',
      startedAt: clock.toISOString(),
    });
    s.appendLog({
      buildId: build.id,
      taskName: task,
      attempt: 1,
      stream: 'stdout',
      data: Buffer.from(`${task} of ${tag}\n`),
      at: clock.toISOString(),
    });
    if (status === 'running') continue;
    s.finishAttempt(attempt.id, 'succeeded', { exitCode: 0, finishedAt: clock.toISOString() });
    s.updateTask(build.id, task, {
      status: 'succeeded',
      outputs: [{ path: `${task}.o`, sha256: sha(task === 't1' ? 'a' : 'b'), size: 1, mode: 420 }],
    });
  }
  if (status !== 'running') s.setBuildStatus(build.id, status, { finishedAt: clock.toISOString() });
  return build.id;
}

function counts(s: Store, buildId: number): number[] {
  return [
    s.getBuild(buildId) === undefined ? 0 : 1,
    s.listTasks(buildId).length,
    s.listAttempts(buildId).length,
    s.readLogs(buildId, {}).length,
  ];
}

const referenced = (s: Store) => new Set(s.replication.fileLists().flatMap(shaList));

describe('store: deleting a build', () => {
  it('deletes the build, its tasks, attempts and logs, and nothing of another build', () => {
    const s = store();
    const gone = ranBuild(s, 'c', 'succeeded');
    const kept = ranBuild(s, 'd', 'failed');
    const before = { tasks: s.listTasks(kept), logs: s.readLogs(kept, {}) };
    assert.ok(referenced(s).has(sha('c')));
    const deleted = s.deleteBuild(gone);
    assert.equal(deleted.id, gone);
    assert.equal(deleted.status, 'succeeded');
    assert.deepEqual(counts(s, gone), [0, 0, 0, 0]);
    assert.deepEqual(counts(s, kept), [1, 2, 2, 2]);
    assert.deepEqual(s.listTasks(kept), before.tasks);
    assert.deepEqual(s.readLogs(kept, {}), before.logs);
    // Its input is no longer referenced; the outputs the other build lists too still are.
    const refs = referenced(s);
    assert.equal(refs.has(sha('c')), false);
    assert.ok(refs.has(sha('d')) && refs.has(sha('a')) && refs.has(sha('b')));
    assert.throws(
      () => s.deleteBuild(gone),
      (e: unknown) => e instanceof MusterError && e.code === 'NOT_FOUND',
    );
  });

  it('refuses a queued or running build and an open compile session (BUILD_NOT_ENDED)', () => {
    const s = store();
    const queued = s.createBuild(plan('t1'), [], 'ada').id;
    const running = ranBuild(s, 'e', 'running');
    const session = s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' }).id;
    for (const id of [queued, running, session]) {
      const before = counts(s, id);
      assert.throws(
        () => s.deleteBuild(id),
        (e: unknown) =>
          e instanceof MusterError && e.code === 'BUILD_NOT_ENDED' && e.details?.buildId === id,
      );
      assert.deepEqual(counts(s, id), before);
    }
  });

  it('replicates as deletions: a backup copy loses the build and keeps the rest', () => {
    const primary = store();
    primary.replication.setRecording(true);
    const gone = ranBuild(primary, 'c', 'succeeded');
    const kept = ranBuild(primary, 'd', 'succeeded');
    const backup = store();
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    assert.deepEqual(counts(backup, gone), [1, 2, 2, 2]);
    primary.deleteBuild(gone);
    for (;;) {
      const position = backup.replication.position();
      const page = primary.replication.readChanges(position.stream ?? '', position.seq);
      if (page.changes.length === 0 && page.lastSeq === position.seq) break;
      backup.replication.applyChanges(page, new Date().toISOString());
    }
    assert.deepEqual(counts(backup, gone), [0, 0, 0, 0]);
    assert.deepEqual(counts(backup, kept), [1, 2, 2, 2]);
    assert.deepEqual(backup.listBuilds({}), primary.listBuilds({}));
    assert.deepEqual(backup.readLogs(kept, {}), primary.readLogs(kept, {}));
    assert.deepEqual(referenced(backup), referenced(primary));
  });

  it('lists ended builds that ended before a time, oldest first, bounded, never open ones', () => {
    const s = store();
    clock = new Date('2030-01-01T00:00:00.000Z');
    const old1 = ranBuild(s, 'c', 'succeeded');
    const old2 = ranBuild(s, 'd', 'failed');
    ranBuild(s, 'e', 'running');
    s.createOpenBuild({ name: 'make', createdBy: 'ada', kind: 'compile' });
    s.createBuild(plan('t1'), [], 'ada');
    clock = new Date('2030-02-01T00:00:00.000Z');
    const recent = ranBuild(s, 'f', 'succeeded');
    const cutoff = '2030-01-15T00:00:00.000Z';
    assert.deepEqual(s.listBuildsEndedBefore(cutoff, 500), [old1, old2]);
    assert.deepEqual(s.listBuildsEndedBefore(cutoff, 1), [old1]);
    assert.deepEqual(s.listBuildsEndedBefore('2030-03-01T00:00:00.000Z', 500), [
      old1,
      old2,
      recent,
    ]);
  });
});
