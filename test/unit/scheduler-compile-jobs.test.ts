/**
 * Remote compile jobs in the scheduler (scheduler/compile-jobs.ts), against fake agents and a
 * real in-memory store: placement only on agents with the toolchain, no retry and no loss grace,
 * not started when no agent has it, when the session's queue is full or no slot came in
 * maxQueueMs; cancelled when the client goes away or the session closes; settled, not run, by a
 * scheduler that loads them after a restart; and the record that settles a job's row.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { compileJobBody } from '../../src/api/requests.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { jobSpec } from '../../src/coordinator/compile/jobs.js';
import { EventBus } from '../../src/coordinator/events.js';
import {
  jobQueueCap,
  literalPattern,
  type NewCompileJob,
} from '../../src/coordinator/scheduler/compile-jobs.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { BuildRow } from '../../src/coordinator/store/types.js';
import { parsePlan } from '../../src/api/plan/parse.js';
import { globMatch } from '../../src/host/glob.js';
import { MusterError } from '../../src/protocol/errors.js';
import { FakeSchedulerAgent } from '../helpers/fake-scheduler-agent.js';

const TOOLCHAIN = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const TEXT = { sha256: 'c'.repeat(64), size: 120 };

function jobBody(overrides: { toolchain?: string; maxQueueMs?: number } = {}) {
  return compileJobBody.parse({
    label: 'gcc -O2 -c lapi.c -o lapi.o',
    input: {
      toolchain: overrides.toolchain ?? TOOLCHAIN,
      driver: 'bin/gcc',
      args: ['-O2', '-c', { workPath: 'lapi.c' }, '-o', 'lapi.o'],
      cwd: '',
      debugPrefixMaps: [{ dir: '', to: '/home/ada/lua' }],
      env: { LANG: 'C' },
      outputs: [{ name: 'object', path: 'lapi.o' }],
    },
    source: { path: 'lapi.c', ...TEXT },
    maxQueueMs: overrides.maxQueueMs ?? 60_000,
  });
}

function job(overrides: { toolchain?: string; maxQueueMs?: number } = {}): NewCompileJob {
  const body = jobBody(overrides);
  return { label: body.label, spec: jobSpec(body), maxQueueMs: body.maxQueueMs };
}

const running: Scheduler[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of running.splice(0)) s.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

let store: Store;
let blobs: BlobStore;

beforeEach(async () => {
  for (const s of running.splice(0)) s.stop();
  store = openSqliteStore(':memory:');
  const dir = await mkdtemp(join(tmpdir(), 'scheduler-jobs-'));
  dirs.push(dir);
  blobs = new BlobStore(dir);
  await blobs.init();
});

function scheduler(agents: FakeSchedulerAgent[], logged?: string[]): Scheduler {
  const s = new Scheduler({
    store,
    pool: { ready: () => agents.filter((a) => a.connected) },
    blobs,
    events: new EventBus(),
    log: logged
      ? pino({ level: 'error' }, { write: (line: string) => void logged.push(line) })
      : pino({ level: 'silent' }),
    // Plan tasks wait this long for a lost agent; compile jobs never do.
    agentLossGraceMs: 3_600_000,
  });
  s.start();
  running.push(s);
  return s;
}

function session(s: Scheduler): BuildRow {
  const build = store.createOpenBuild({ name: 'make -j4', createdBy: 'ada', kind: 'compile' });
  s.submit(build);
  return build;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

async function storeBlob(text: string): Promise<{ sha256: string; size: number }> {
  const data = Buffer.from(text);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const writer = await blobs.createWriter(sha256, data.length);
  await writer.write(0, data);
  await writer.finish();
  return { sha256, size: data.length };
}

describe('scheduler: remote compile jobs', () => {
  it('run a job only on an agent that has its toolchain, with its text as its only input', async () => {
    const without = new FakeSchedulerAgent('without', 8, [OTHER]);
    const withIt = new FakeSchedulerAgent('with', 1, [TOOLCHAIN]);
    const s = scheduler([without, withIt]);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    assert.equal(handle.task, 'job-1');
    await until(() => withIt.started.length === 1, 'the job to start');
    assert.equal(without.started.length, 0);
    const spec = withIt.started[0]!.spec;
    assert.deepEqual(
      [spec.extension, spec.operation, spec.inputs, spec.outputs, spec.timeoutMs],
      [
        'cc',
        'compile',
        [{ path: 'lapi.c', sha256: TEXT.sha256, mode: 0o644 }],
        ['lapi.o'],
        600_000,
      ],
    );
    assert.deepEqual(spec.input, jobBody().input);
    const row = store.getTask(build.id, 'job-1');
    assert.deepEqual(
      [row?.status, row?.agent, row?.placement, row?.cache, row?.label],
      ['running', 'with', 'remote', 'miss', 'gcc -O2 -c lapi.c -o lapi.o'],
    );

    const object = await storeBlob('ELF');
    withIt.started[0]!.finish({
      value: { exitCode: 0, stderr: '', stderrBytes: 0 },
      outputs: [{ path: 'lapi.o', ...object, mode: 0o644 }],
    });
    const end = await handle.ended;
    assert.deepEqual([end.status, end.reason, end.row.status], ['succeeded', null, 'succeeded']);
    assert.deepEqual(end.row.outputs, [{ path: 'lapi.o', ...object, mode: 0o644 }]);
    assert.deepEqual(end.result?.value, { exitCode: 0, stderr: '', stderrBytes: 0 });
    // The session stays open: its client closes it.
    assert.equal(store.getBuild(build.id)?.status, 'running');
  });

  it('answer not-started at once when no ready agent has the toolchain', async () => {
    const agent = new FakeSchedulerAgent('a', 4, [OTHER]);
    const s = scheduler([agent]);
    const build = session(s);
    const specs: string[] = [];
    const append = store.appendJobTask.bind(store);
    store.appendJobTask = (id, task) => (specs.push(task.spec), append(id, task));
    const end = await s.addJob(build.id, job()).ended;
    assert.deepEqual([end.status, end.reason], ['not-started', 'toolchain-not-on-agents']);
    // Refused at once: none of its arguments are kept, only the toolchain it asked for.
    assert.deepEqual(specs, [JSON.stringify({ toolchain: TOOLCHAIN })]);
    assert.deepEqual(
      [end.row.status, end.row.fallback, end.row.placement],
      ['skipped', 'toolchain-not-on-agents', 'remote'],
    );
    assert.equal(agent.started.length, 0);
  });

  it('take a job that found no slot within maxQueueMs out of the queue: not started', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const first = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the first job');
    const second = s.addJob(build.id, job({ maxQueueMs: 20 }));
    const end = await second.ended;
    assert.deepEqual(
      [end.status, end.reason, end.row.status],
      ['not-started', 'no-agent-slot', 'skipped'],
    );
    // A slot frees: the job that was not started does not run any more.
    agent.started[0]!.finish({ value: { exitCode: 0, stderr: '', stderrBytes: 0 } });
    await first.ended;
    s.schedule();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.started.length, 1);
    assert.equal(store.getTask(build.id, 'job-2')?.status, 'skipped');
  });

  it('log a store failure when a job’s queue wait ends, instead of crashing', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const logged: string[] = [];
    const s = scheduler([agent], logged);
    const build = session(s);
    s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the first job');
    const second = s.addJob(build.id, job({ maxQueueMs: 10 }));
    // The disk fails before its wait ends: recording "not started" throws, in a timer.
    const transaction = store.transaction.bind(store);
    store.transaction = () => {
      throw new Error('disk I/O error');
    };
    // Its client is answered all the same (it compiles the job itself), not left waiting.
    const end = await second.ended;
    assert.deepEqual([end.status, end.reason], ['not-started', 'no-agent-slot']);
    assert.equal(end.row.status, 'skipped');
    assert.match(logged[0]!, /recording a job not started failed/);
    assert.match(logged[0]!, /"task":"job-2"/);
    // The store still has it queued (the next scheduler that loads the session settles it),
    // but this one never runs it.
    assert.equal(store.getTask(build.id, 'job-2')?.status, 'queued');
    store.transaction = transaction;
    agent.busy = 0;
    s.schedule();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.started.length, 1);
  });

  it('answer a lost job at once when recording its loss fails', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const logged: string[] = [];
    const s = scheduler([agent], logged);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    store.transaction = () => {
      throw new Error('disk I/O error');
    };
    agent.connected = false;
    s.onAgentLost(agent);
    const end = await handle.ended;
    assert.deepEqual([end.status, end.reason], ['lost', 'agent-lost']);
    assert.match(logged[0]!, /recording a lost job failed/);
    assert.equal(s.runningCount, 0);
  });

  it('answer a job whose result the store could not record as failed, at once', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const logged: string[] = [];
    const s = scheduler([agent], logged);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    store.transaction = () => {
      throw new Error('disk I/O error');
    };
    agent.started[0]!.finish({
      status: 'failed',
      exitCode: 1,
      value: { exitCode: 1, stderr: 'error\n', stdoutBytes: 0, stderrBytes: 6 },
    });
    const end = await handle.ended;
    assert.deepEqual([end.status, end.reason], ['failed', null]);
    assert.match(logged[0]!, /recording finished attempts failed/);
    assert.equal(s.runningCount, 0);
    assert.equal(agent.busy, 0, 'its slot is free again');
  });

  it('share the free slots of one pass round-robin over the sessions with queued jobs', async () => {
    const agent = new FakeSchedulerAgent('a', 4, [TOOLCHAIN]);
    const s = scheduler([agent]);
    // Its slots are taken (by another coordinator's work, say) while both sessions queue jobs.
    agent.busy = 4;
    const first = session(s);
    const second = session(s);
    const handles = [
      ...Array.from({ length: 6 }, () => s.addJob(first.id, job())),
      ...Array.from({ length: 6 }, () => s.addJob(second.id, job())),
    ];
    assert.equal(agent.started.length, 0);
    // Four slots free at once: one pass hands them out two and two, not four to the older one.
    agent.busy = 0;
    s.schedule();
    await until(() => agent.started.length === 4, 'four starts');
    const perBuild = (id: number) =>
      agent.started.filter((t) => t.spec.taskId.startsWith(`b${id}:`)).length;
    assert.deepEqual([perBuild(first.id), perBuild(second.id)], [2, 2]);
    for (const h of handles) h.cancel();
  });

  it('share them with plan builds alike', async () => {
    const agent = new FakeSchedulerAgent('a', 2, [TOOLCHAIN]);
    const s = scheduler([agent]);
    agent.busy = 2;
    const build = session(s);
    const handles = Array.from({ length: 4 }, () => s.addJob(build.id, job()));
    const plan = store.createBuild(
      parsePlan('tasks:\n  t1:\n    run: x\n  t2:\n    run: x\n  t3:\n    run: x\n'),
      [],
      'ada',
    );
    s.submit(plan);
    agent.busy = 0;
    s.schedule();
    await until(() => agent.started.length === 2, 'two starts');
    assert.deepEqual(
      agent.started.map((t) => t.spec.taskId.split(':')[0]).sort(),
      [`b${build.id}`, `b${plan.id}`].sort(),
    );
    for (const h of handles) h.cancel();
  });

  it('give a freed slot to the next build with work, not back to a session keeping many queued', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const jobs = [s.addJob(build.id, job()), s.addJob(build.id, job()), s.addJob(build.id, job())];
    await until(() => agent.started.length === 1, 'the first job');
    // A plan build, younger than the session, waits behind its queued jobs.
    const plan = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'ada');
    s.submit(plan);
    agent.started[0]!.finish({ value: { exitCode: 0, stderr: '', stderrBytes: 0 } });
    await jobs[0]!.ended;
    await until(() => agent.started.length === 2, 'the next start');
    assert.match(agent.started[1]!.spec.taskId, new RegExp(`^b${plan.id}:t:1:`));
    // Its task done, the session's jobs go on.
    agent.started[1]!.finish({});
    await until(() => agent.started.length === 3, 'the session again');
    assert.match(agent.started[2]!.spec.taskId, new RegExp(`^b${build.id}:job-2:1:`));
    for (const h of jobs) h.cancel();
  });

  it('answer queue-full beyond 4 × the ready slots (at least 16) queued or running', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    assert.equal(jobQueueCap(1), 16);
    const handles = Array.from({ length: 16 }, () => s.addJob(build.id, job()));
    const full = await s.addJob(build.id, job()).ended;
    assert.deepEqual(
      [full.status, full.reason, full.row.name],
      ['not-started', 'queue-full', 'job-17'],
    );
    // Cancelled by their clients, they make room again.
    for (const h of handles.slice(1)) h.cancel();
    await until(() => store.getTask(build.id, 'job-16')?.status === 'cancelled', 'the cancels');
    const next = s.addJob(build.id, job({ maxQueueMs: 10 }));
    assert.equal(next.task, 'job-18');
    assert.equal((await next.ended).reason, 'no-agent-slot');
  });

  it('lose a job at once when its agent goes away, without retry, and cancel it there on return', async () => {
    const a = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const b = new FakeSchedulerAgent('b', 1, [TOOLCHAIN]);
    const s = scheduler([a, b]);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    await until(() => a.started.length + b.started.length === 1, 'the job to start');
    const [ran, other] = a.started.length === 1 ? [a, b] : [b, a];
    const taskId = ran.started[0]!.spec.taskId;
    ran.connected = false;
    s.onAgentLost(ran);
    const end = await handle.ended;
    assert.deepEqual([end.status, end.reason, end.row.status], ['lost', 'agent-lost', 'failed']);
    assert.equal(other.started.length, 0, 'not retried elsewhere');
    assert.deepEqual(
      store.listAttempts(build.id).map((x) => x.status),
      ['lost'],
    );
    // The agent comes back, still running it: the stale attempt is cancelled there.
    ran.connected = true;
    ran.onAgent = [{ taskId, state: 'running' }];
    s.onAgentReady(ran);
    await until(() => ran.cancelled.includes(taskId), 'the stale attempt to be cancelled');
  });

  it('map a compile that exits non-zero to a failed job with its exit code and stderr', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    const value = { exitCode: 1, stderr: 'lapi.c:1: error: x\n', stderrBytes: 19 };
    agent.started[0]!.finish({ status: 'failed', exitCode: 1, value });
    const end = await handle.ended;
    assert.deepEqual([end.status, end.row.status, end.row.exitCode], ['failed', 'failed', 1]);
    assert.deepEqual(end.result?.value, value);
    assert.equal(agent.started.length, 1, 'a compile error is not retried');
  });

  it('stop sending jobs to an agent that refused the toolchain as incompatible', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    const error = { code: 'TOOLCHAIN_INCOMPATIBLE', message: 'glibc 2.31 < 2.36' };
    agent.started[0]!.finish({ status: 'failed', error });
    const end = await handle.ended;
    assert.deepEqual([end.status, end.result?.error], ['failed', error]);
    assert.deepEqual(agent.refused, [TOOLCHAIN]);
    const next = await s.addJob(build.id, job()).ended;
    assert.equal(next.reason, 'toolchain-not-on-agents');
  });

  it('cancel a job whose client went away: queued at once, running on its agent', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const runningJob = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    const queued = s.addJob(build.id, job());
    queued.cancel();
    assert.deepEqual([(await queued.ended).status], ['cancelled']);
    runningJob.cancel();
    const taskId = agent.started[0]!.spec.taskId;
    await until(() => agent.cancelled.includes(taskId), 'the cancel to reach the agent');
    agent.started[0]!.finish({ status: 'cancelled' });
    assert.equal((await runningJob.ended).status, 'cancelled');
    assert.equal(store.getTask(build.id, 'job-1')?.status, 'cancelled');
  });

  it('cancel the running jobs of a session that closes', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const handle = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    const closed = s.close(build.id, { exitCode: 0, summary: null });
    assert.equal(closed.status, 'succeeded');
    const taskId = agent.started[0]!.spec.taskId;
    await until(() => agent.cancelled.includes(taskId), 'the cancel to reach the agent');
    agent.started[0]!.finish({ status: 'cancelled' });
    assert.equal((await handle.ended).status, 'cancelled');
    assert.throws(
      () => s.addJob(build.id, job()),
      (err: unknown) => err instanceof MusterError && err.code === 'COMPILE_SESSION_CLOSED',
    );
  });

  it('settle, not run, the jobs of an open build a new scheduler loads (restart, takeover)', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    const s = scheduler([agent]);
    const build = session(s);
    const runningJob = s.addJob(build.id, job());
    await until(() => agent.started.length === 1, 'the job to start');
    const queued = s.addJob(build.id, job());
    s.stop();
    // Their clients are answered (they compile the jobs themselves).
    assert.equal((await runningJob.ended).status, 'cancelled');
    assert.equal((await queued.ended).status, 'cancelled');

    const fresh = new FakeSchedulerAgent('a', 1, [TOOLCHAIN]);
    scheduler([fresh]);
    assert.deepEqual(
      store.listTasks(build.id).map((t) => [t.name, t.status]),
      [
        ['job-1', 'cancelled'],
        ['job-2', 'cancelled'],
      ],
    );
    assert.equal(store.getBuild(build.id)?.open, true, 'the session stays open');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(fresh.started.length, 0);
  });

  it('turn the row of a job that did not run into the record that settles it', async () => {
    const agent = new FakeSchedulerAgent('a', 1, [OTHER]);
    const s = scheduler([agent]);
    const build = session(s);
    const end = await s.addJob(build.id, job()).ended;
    assert.equal(end.row.name, 'job-1');
    const record = {
      label: 'gcc -O2 -c lapi.c -o lapi.o',
      placement: 'local' as const,
      cache: 'miss' as const,
      exitCode: 0,
      startedAt: Date.now(),
      durationMs: 5,
      fallback: 'toolchain-not-on-agents',
    };
    const [settled] = store.appendRecords(build.id, [{ ...record, job: 'job-1' }]);
    assert.deepEqual(
      [settled?.name, settled?.status, settled?.placement, settled?.fallback, settled?.agent],
      ['job-1', 'succeeded', 'local', 'toolchain-not-on-agents', 'local'],
    );
    // A job that does not exist, or one already settled, adds a row instead.
    const rows = store.appendRecords(build.id, [
      { ...record, job: 'job-1' },
      { ...record, job: 'job-99' },
    ]);
    assert.deepEqual(
      rows.map((r) => r.name),
      ['job-2', 'job-3'],
    );
    assert.equal(store.listTasks(build.id).length, 3);
  });
});

describe('compile jobs: the object path as an output pattern', () => {
  it('match exactly the path, glob characters included', () => {
    for (const path of ['lapi.o', 'out/[x]*.o', 'a{b,c}?.o', 'back\\slash.o']) {
      assert.ok(globMatch(literalPattern(path), path), path);
    }
    assert.equal(globMatch(literalPattern('out/[x]*.o'), 'out/x1.o'), false);
    assert.equal(globMatch(literalPattern('a{b,c}?.o'), 'ab1.o'), false);
  });
});
