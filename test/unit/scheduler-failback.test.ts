/**
 * The primary's scheduler after a failback, on the store the merge leaves (real SQLite, fake
 * agents): an attempt the primary recorded just before it died, which never reached its backup,
 * is stale once the backup ran the task itself. Its loss (or end) must not run the task again:
 * the failover benchmark saw tasks succeed twice that way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { parsePlan } from '../../src/api/plan/parse.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { EventBus } from '../../src/coordinator/events.js';
import { newAgentTaskId } from '../../src/coordinator/scheduler/agent-task-id.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { BuildRow } from '../../src/coordinator/store/types.js';
import { FakeSchedulerAgent } from '../helpers/fake-scheduler-agent.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-sched-failback-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: Store[] = [];
const schedulers: Scheduler[] = [];
afterEach(() => {
  for (const s of schedulers.splice(0)) s.stop();
  for (const store of open.splice(0)) store.close();
});

function store(): Store {
  const s = openSqliteStore(file('db'));
  open.push(s);
  return s;
}

/** A backup's copy of `primary`: snapshot, then every page of changes. */
function copyOf(primary: Store): Store {
  const backup = store();
  const snap = file('snap');
  const { stream, seq } = primary.replication.writeSnapshot(snap);
  backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
  return backup;
}

class FakeAgent extends FakeSchedulerAgent {
  constructor(name: string, slots: number) {
    super(name, slots);
    this.taskKind = { extension: 'core', operation: 'run' };
  }
}

function scheduler(primary: Store, agents: FakeAgent[]): Scheduler {
  const s = new Scheduler({
    store: primary,
    pool: { ready: () => agents.filter((a) => a.connected) },
    blobs: new BlobStore(join(dir, `blobs-${++counter}`)),
    events: new EventBus(),
    log: pino({ level: 'silent' }),
    agentLossGraceMs: 10_000,
  });
  schedulers.push(s);
  return s;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

/** Records an attempt of `task` running on `agent`, as a scheduler's dispatch does. */
function dispatched(s: Store, build: BuildRow, task: string, number: number, agent: string) {
  const agentTaskId = newAgentTaskId(build, task, number);
  const at = new Date().toISOString();
  s.createAttempt({
    buildId: build.id,
    taskName: task,
    number,
    agent,
    agentTaskId,
    status: 'running',
    startedAt: at,
  });
  s.updateTask(build.id, task, { status: 'running', attempts: number, agent, startedAt: at });
  return agentTaskId;
}

/**
 * The primary runs build `t`, `u`; its backup holds a copy. The primary records a dispatch of
 * `t` on a0 and dies before the backup receives it; the backup takes over and runs `t` on a1
 * (`backupEnd`: to its end, or still running when the primary takes the cluster back). The
 * primary merges the backup's history. Returns the primary's store and the two attempts' ids.
 */
function afterFailback(backupEnd: 'succeeded' | 'running') {
  const primary = store();
  primary.replication.setRecording(true);
  const build = primary.createBuild(
    parsePlan('tasks:\n  t:\n    run: x\n  u:\n    run: y\n'),
    [],
    'ada',
  );
  primary.setBuildStatus(build.id, 'running', { startedAt: new Date().toISOString() });
  const backup = copyOf(primary);
  const stale = dispatched(primary, build, 't', 1, 'a0');
  const backups = dispatched(backup, build, 't', 1, 'a1');
  if (backupEnd === 'succeeded') {
    const at = new Date().toISOString();
    backup.finishAttempt(backup.getAttemptByAgentTaskId(backups)!.id, 'succeeded', {
      exitCode: 0,
      finishedAt: at,
    });
    backup.updateTask(build.id, 't', { status: 'succeeded', exitCode: 0, finishedAt: at });
  }
  primary.replication.mergeBuildHistory(
    backup.replication.exportBuildHistory(build.id, 0, 100),
    [],
  );
  return { primary, build, stale, backups };
}

const attemptsOf = (s: Store, buildId: number) =>
  s.listAttempts(buildId, 't').map((a) => [a.number, a.agentTaskId, a.status]);

describe('scheduler after a failback', () => {
  it('never runs again a task the backup finished, whatever became of its stale attempt', async () => {
    for (const onAgent of ['gone', 'running', 'done'] as const) {
      const { primary, build, stale, backups } = afterFailback('succeeded');
      assert.deepEqual(attemptsOf(primary, build.id), [
        [1, stale, 'running'],
        [2, backups, 'succeeded'],
      ]);
      const a0 = new FakeAgent('a0', 2);
      // 'gone': the primary died before its start reached the agent (what the benchmark hit).
      a0.onAgent = onAgent === 'gone' ? [] : [{ taskId: stale, state: onAgent }];
      const s = scheduler(primary, [a0]);
      s.start();
      s.onAgentReady(a0);
      await until(() => a0.started.length === 1, `u to start (${onAgent})`);
      assert.deepEqual(
        a0.started.map((x) => x.spec.taskId.split(':')[1]),
        ['u'],
        `only u runs, t is not run again (${onAgent})`,
      );
      assert.deepEqual(a0.attached, [], 'the stale attempt is not followed');
      // A stale attempt the agent still has is stopped, or forgotten once done.
      await until(
        () => a0.cancelled.length + a0.released.length === (onAgent === 'gone' ? 0 : 1),
        'the stale attempt to be settled',
      );
      assert.deepEqual(a0.cancelled, onAgent === 'running' ? [stale] : []);
      assert.deepEqual(a0.released, onAgent === 'done' ? [stale] : []);
      for (const x of a0.started) x.finish({});
      await until(() => primary.getBuild(build.id)?.status === 'succeeded', 'the build');
      assert.deepEqual(attemptsOf(primary, build.id), [
        [1, stale, 'lost'],
        [2, backups, 'succeeded'],
      ]);
      assert.equal(primary.getTask(build.id, 't')?.status, 'succeeded');
      s.stop();
    }
  });

  it("follows the backup's attempt still running, not a new one, when the stale one is lost", async () => {
    const { primary, build, stale, backups } = afterFailback('running');
    const a0 = new FakeAgent('a0', 2);
    const a1 = new FakeAgent('a1', 2);
    a1.onAgent = [{ taskId: backups, state: 'running' }];
    const s = scheduler(primary, [a0, a1]);
    s.start();
    s.onAgentReady(a1);
    // a0 never got the stale start: its attempt is lost when a0 connects.
    s.onAgentReady(a0);
    await until(() => a1.attached.length === 1, "the backup's attempt to be followed");
    await until(() => primary.getAttemptByAgentTaskId(stale)?.status === 'lost', 'the loss');
    await until(() => a0.started.length + a1.started.length >= 2, 'u to start');
    const names = [...a0.started, ...a1.started].map((x) => x.spec.taskId.split(':')[1]);
    assert.deepEqual(names.sort(), ['t', 'u'], 't followed (attach), u started: t not again');
    assert.equal(primary.getTask(build.id, 't')?.status, 'running');
    a1.started.find((x) => x.spec.taskId === backups)!.finish({});
    for (const x of [...a0.started, ...a1.started]) if (x.spec.taskId !== backups) x.finish({});
    await until(() => primary.getBuild(build.id)?.status === 'succeeded', 'the build');
    assert.deepEqual(attemptsOf(primary, build.id), [
      [1, stale, 'lost'],
      [2, backups, 'succeeded'],
    ]);
    assert.equal(a0.started.length + a1.started.length, 2, 'nothing else ran');
  });
});
