/**
 * The scheduler against fake agents (and a real in-memory store): ordering by needs, labels
 * and slots, outputs passed on, retries, agent loss, re-attach after a restart, cancel.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { EventBus } from '../../src/coordinator/events.js';
import { parsePlan } from '../../src/api/plan/parse.js';
import {
  isOfBuild,
  newAgentTaskId,
  parseAgentTaskId,
} from '../../src/coordinator/scheduler/agent-task-id.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { FakeSchedulerAgent } from '../helpers/fake-scheduler-agent.js';
import { MusterError } from '../../src/protocol/errors.js';

/** An agent whose tasks end when the test says so (plan tasks: core/run), with its labels. */
class FakeAgent extends FakeSchedulerAgent {
  constructor(name: string, slots: number, labels: string[] = []) {
    super(name, slots, [], labels);
    this.taskKind = { extension: 'core', operation: 'run' };
  }
}

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

let store: Store;
let blobs: BlobStore;

beforeEach(async () => {
  store = openSqliteStore(':memory:');
  const dir = await mkdtemp(join(tmpdir(), 'scheduler-'));
  dirs.push(dir);
  blobs = new BlobStore(dir);
  await blobs.init();
});

function scheduler(agents: FakeAgent[], graceMs = 50, logged?: string[]): Scheduler {
  return new Scheduler({
    store,
    pool: { ready: () => agents.filter((a) => a.connected) },
    blobs,
    events: new EventBus(),
    log: logged
      ? pino({ level: 'error' }, { write: (line: string) => void logged.push(line) })
      : pino({ level: 'silent' }),
    agentLossGraceMs: graceMs,
  });
}

/** The agent task id of a dispatch: readable, plus the build's tag and a nonce of its own. */
function idOf(buildId: number, task: string, attempt: number): RegExp {
  return new RegExp(`^b${buildId}:${task}:${attempt}:[0-9a-f]{8}\\.[0-9a-f]{8}$`);
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

describe('scheduler', () => {
  it('runs tasks in needs order within free slots and hands outputs on', async () => {
    const agent = new FakeAgent('a', 1);
    const s = scheduler([agent]);
    s.start();
    const build = store.createBuild(
      parsePlan(
        'tasks:\n  one:\n    run: x\n    outputs: [o.txt]\n  two:\n    run: y\n    needs: [one]\n',
      ),
      [],
      'test',
    );
    s.submit(build);
    await until(() => agent.started.length === 1, 'the first task');
    assert.match(agent.started[0]!.spec.taskId, idOf(build.id, 'one', 1));
    const output = await storeBlob('out');
    agent.started[0]!.finish({ outputs: [{ path: 'o.txt', ...output, mode: 0o644 }] });
    await until(() => agent.started.length === 2, 'the second task');
    assert.deepEqual(agent.started[1]!.spec.inputs, [
      { path: 'o.txt', sha256: output.sha256, mode: 0o644 },
    ]);
    agent.started[1]!.finish({});
    await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build to succeed');
    assert.deepEqual(
      agent.released.sort(),
      agent.started.map((t) => t.spec.taskId).sort(),
      'both released',
    );
    assert.equal(agent.busy, 0);
    s.stop();
  });

  it('never gives an agent more tasks than its free slots, and honours labels', async () => {
    const small = new FakeAgent('small', 1, ['linux']);
    const big = new FakeAgent('big', 2, ['linux', 'gpu']);
    const s = scheduler([small, big]);
    s.start();
    const tasks =
      Array.from({ length: 5 }, (_, i) => `  t${i}:\n    run: x\n`).join('') +
      '  g:\n    run: x\n    requires: [gpu]\n';
    const build = store.createBuild(parsePlan(`tasks:\n${tasks}`), [], 'test');
    s.submit(build);
    await until(() => small.started.length + big.started.length === 3, 'three dispatches');
    assert.equal(small.busy, 1);
    assert.equal(big.busy, 2);
    // Finish everything as it comes; the gpu task must land on big.
    for (let i = 0; i < 20 && store.getBuild(build.id)?.status !== 'succeeded'; i++) {
      for (const agent of [small, big]) for (const t of agent.started.splice(0)) t.finish({});
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(store.getBuild(build.id)?.status, 'succeeded');
    assert.equal(store.getTask(build.id, 'g')?.agent, 'big');
    s.stop();
  });

  it('retries up to `retries`, then fails the task and skips what needs it', async () => {
    const agent = new FakeAgent('a', 2);
    const s = scheduler([agent]);
    s.start();
    const build = store.createBuild(
      parsePlan(
        'tasks:\n  flaky:\n    run: x\n    retries: 1\n  after:\n    run: y\n    needs: [flaky]\n',
      ),
      [],
      'test',
    );
    s.submit(build);
    for (let attempt = 1; attempt <= 2; attempt++) {
      await until(() => agent.started.length === 1, `attempt ${attempt}`);
      assert.match(agent.started[0]!.spec.taskId, idOf(build.id, 'flaky', attempt));
      agent.started.splice(0)[0]!.finish({ status: 'failed', exitCode: 2 });
    }
    await until(() => store.getBuild(build.id)?.status === 'failed', 'the build to fail');
    assert.deepEqual(
      store.listTasks(build.id).map((t) => [t.name, t.status, t.attempts]),
      [
        ['flaky', 'failed', 2],
        ['after', 'skipped', 0],
      ],
    );
    s.stop();
  });

  it('retries an attempt whose agent is lost on another agent', async () => {
    const first = new FakeAgent('first', 1);
    const second = new FakeAgent('second', 1);
    second.connected = false;
    const s = scheduler([first, second]);
    s.start();
    const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
    s.submit(build);
    await until(() => first.started.length === 1, 'the first attempt');
    first.connected = false;
    s.onAgentLost(first);
    first.started[0]!.fail(new MusterError('CONNECTION_CLOSED'));
    second.connected = true;
    await until(() => second.started.length === 1, 'the retry on the other agent');
    assert.match(second.started[0]!.spec.taskId, idOf(build.id, 't', 2));
    second.started[0]!.finish({});
    await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
    assert.deepEqual(
      store.listAttempts(build.id).map((a) => [a.number, a.agent, a.status]),
      [
        [1, 'first', 'lost'],
        [2, 'second', 'succeeded'],
      ],
    );
    s.stop();
  });

  it('logs a store failure when its agent’s loss grace ends, instead of crashing', async () => {
    const agent = new FakeAgent('a', 1);
    const logged: string[] = [];
    const s = scheduler([agent], 10, logged);
    s.start();
    const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
    s.submit(build);
    await until(() => agent.started.length === 1, 'the attempt');
    agent.connected = false;
    s.onAgentLost(agent);
    // The disk fails before the grace ends: recording the loss throws, in a timer.
    store.transaction = () => {
      throw new Error('disk I/O error');
    };
    await until(() => logged.length > 0, 'the failure to be logged');
    assert.match(logged[0]!, /recording a lost attempt failed/);
    assert.match(logged[0]!, /disk I\/O error/);
    s.stop();
  });

  it("records nothing once stopped: late results, losses and output are the next one's", async () => {
    const agent = new FakeAgent('a', 2);
    const s = scheduler([agent], 20);
    s.start();
    const build = store.createBuild(
      parsePlan('tasks:\n  t:\n    run: x\n  u:\n    run: y\n'),
      [],
      'test',
    );
    s.submit(build);
    await until(() => agent.started.length === 2, 'both attempts');
    // A coordinator hands the cluster over: its scheduler stops while the attempts run on.
    s.stop();
    agent.started[0]!.output({ seq: 0, stream: 'stdout', data: Buffer.from('late') });
    agent.started[0]!.finish({});
    agent.connected = false;
    s.onAgentLost(agent);
    agent.started[1]!.fail(new MusterError('CONNECTION_CLOSED'));
    await new Promise((r) => setTimeout(r, 100)); // well past the 20 ms loss grace
    assert.deepEqual(
      store.listAttempts(build.id).map((a) => [a.taskName, a.status]),
      [
        ['t', 'running'],
        ['u', 'running'],
      ],
    );
    assert.deepEqual(
      store.listTasks(build.id).map((t) => t.status),
      ['running', 'running'],
    );
    assert.deepEqual(store.readLogs(build.id, {}), []);
  });

  it('re-attaches after its own restart instead of running a task again', async () => {
    const agent = new FakeAgent('a', 1);
    const before = scheduler([agent], 10_000);
    before.start();
    const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
    before.submit(build);
    await until(() => agent.started.length === 1, 'the attempt');
    const taskId = agent.started[0]!.spec.taskId;
    agent.started[0]!.output({ seq: 0, stream: 'stdout', data: Buffer.from('before\n') });
    before.stop(); // the coordinator "dies"; the agent still runs the task
    agent.started.length = 0;
    agent.busy = 0;
    agent.onAgent = [{ taskId, state: 'running' }];

    const restarted = scheduler([agent], 10_000);
    restarted.start();
    restarted.onAgentReady(agent);
    await until(() => agent.attached.length === 1, 're-attach');
    assert.deepEqual(agent.attached[0], { taskId, fromSeq: 1 });
    assert.equal(agent.started.length, 1, 'followed, not started again');
    agent.started[0]!.output({ seq: 1, stream: 'stdout', data: Buffer.from('after\n') });
    agent.started[0]!.finish({});
    await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
    assert.equal(store.listAttempts(build.id).length, 1);
    assert.deepEqual(
      store.readLogs(build.id, {}).map((c) => c.data.toString()),
      ['before\n', 'after\n'],
    );
    restarted.stop();
  });

  it('releases the finished tasks it finds after a restart only when deferRelease lets it', async () => {
    const agent = new FakeAgent('a', 1);
    const first = scheduler([agent], 10_000);
    first.start();
    const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
    first.submit(build);
    await until(() => agent.started.length === 1, 'the attempt');
    const taskId = agent.started[0]!.spec.taskId;
    agent.started[0]!.finish({});
    await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
    first.stop();
    // The release did not reach the agent (the coordinator died first): it still has the task.
    agent.released.length = 0;
    agent.onAgent = [{ taskId, state: 'done' }];
    const held: (() => void)[] = [];
    const restarted = new Scheduler({
      store,
      pool: { ready: () => [agent] },
      blobs,
      events: new EventBus(),
      log: pino({ level: 'silent' }),
      agentLossGraceMs: 10_000,
      deferRelease: (release) => held.push(release),
    });
    restarted.start();
    restarted.onAgentReady(agent);
    await until(() => held.length === 1, 'the release to be deferred');
    assert.deepEqual(agent.released, []);
    held[0]!();
    await until(() => agent.released.length === 1, 'the release');
    assert.deepEqual(agent.released, [taskId]);
    restarted.stop();
  });

  it('cancels: running attempts are told to stop, pending tasks never start', async () => {
    const agent = new FakeAgent('a', 1);
    const s = scheduler([agent]);
    s.start();
    const build = store.createBuild(
      parsePlan('tasks:\n  long:\n    run: x\n  next:\n    run: y\n    needs: [long]\n'),
      [],
      'test',
    );
    s.submit(build);
    await until(() => agent.started.length === 1, 'the attempt');
    s.cancel(build.id);
    await until(() => agent.cancelled.length === 1, 'the cancel');
    agent.started[0]!.finish({ status: 'cancelled' });
    await until(() => store.getBuild(build.id)?.status === 'cancelled', 'the build');
    assert.deepEqual(
      store.listTasks(build.id).map((t) => [t.name, t.status]),
      [
        ['long', 'cancelled'],
        ['next', 'cancelled'],
      ],
    );
    assert.equal(agent.started.length, 1);
    s.stop();
  });
  describe('task identity', () => {
    it('gives every dispatch an id of its own, also to the same attempt of the same build id', () => {
      const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
      const ids = new Set(Array.from({ length: 100 }, () => newAgentTaskId(build, 't', 1)));
      assert.equal(ids.size, 100);
      const other = { id: build.id, uid: 'f'.repeat(32) };
      const id = parseAgentTaskId(newAgentTaskId(other, 't', 1));
      assert.ok(id);
      assert.equal(isOfBuild(id, other), true);
      assert.equal(isOfBuild(id, build), false, "another build's attempt under the same build id");
      assert.deepEqual(parseAgentTaskId(`b7:c.c-1:3:${'0'.repeat(8)}.${'a'.repeat(8)}`), {
        buildId: 7,
        task: 'c.c-1',
        attempt: 3,
        buildTag: '0'.repeat(8),
      });
      // Ids of earlier versions are still read (an agent may keep them across an upgrade).
      const old = parseAgentTaskId('b12:t:3');
      assert.deepEqual(old, { buildId: 12, task: 't', attempt: 3 });
      assert.equal(isOfBuild(old, { id: 12, uid: build.uid }), true);
      for (const bad of [
        'b0:t:1',
        'b1:t:0',
        'b1::1',
        'x1:t:1',
        'b1:t:1:zz',
        'b1:t:1:0000000.0',
        'p-1',
      ]) {
        assert.equal(parseAgentTaskId(bad), undefined, bad);
      }
    });

    it('follows the attempt when the agent answers TASK_EXISTS for its id, not failing it', async () => {
      const agent = new FakeAgent('a', 1);
      agent.refuseStarts = 1;
      const s = scheduler([agent]);
      s.start();
      const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
      s.submit(build);
      await until(() => agent.attached.length === 1, 'the attempt to be followed');
      const [attempt] = store.listAttempts(build.id);
      assert.deepEqual(agent.attached[0], { taskId: attempt?.agentTaskId, fromSeq: 0 });
      agent.started[0]!.finish({});
      await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
      assert.deepEqual(
        store.listAttempts(build.id).map((a) => [a.number, a.status]),
        [[1, 'succeeded']],
      );
      s.stop();
    });

    it('retries under a new id when the id is taken and the agent no longer has that task', async () => {
      const agent = new FakeAgent('a', 1);
      agent.refuseStarts = 1;
      agent.forgetOnAttach = true;
      const s = scheduler([agent]);
      s.start();
      const build = store.createBuild(parsePlan('tasks:\n  t:\n    run: x\n'), [], 'test');
      s.submit(build);
      await until(() => agent.started.length === 1, 'the retry');
      const [first, second] = store.listAttempts(build.id);
      assert.equal(first?.status, 'lost');
      assert.notEqual(second?.agentTaskId, first?.agentTaskId);
      assert.equal(agent.started[0]!.spec.taskId, second?.agentTaskId);
      agent.started[0]!.finish({});
      await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
      s.stop();
    });

    it('adopts orphans of tasks it would start, cancels duplicates, leaves unknown builds alone', async () => {
      // The primary's store after a double failure: `a` ran here (attempt 1), `b` and `c` were
      // never started here; the dead backup ran a again (done), started b, and had builds of its
      // own, one with an id this store gave to another build since.
      const agent = new FakeAgent('a', 4);
      const first = scheduler([agent], 10_000);
      first.start();
      const build = store.createBuild(
        parsePlan(
          'tasks:\n  a:\n    run: x\n  b:\n    run: y\n    needs: [a]\n  c:\n    run: z\n    needs: [a]\n',
        ),
        [],
        'test',
      );
      first.submit(build);
      await until(() => agent.started.length === 1, 'the first attempt of a');
      const mine = agent.started[0]!.spec.taskId;
      first.stop();
      agent.started.length = 0;
      agent.busy = 0;
      const backupA = newAgentTaskId(build, 'a', 1);
      const backupB = newAgentTaskId(build, 'b', 1);
      const unknown = newAgentTaskId({ id: 1001, uid: 'a'.repeat(32) }, 't', 1);
      const reused = newAgentTaskId({ id: build.id, uid: 'b'.repeat(32) }, 'c', 1);
      const foreign = 'not-a-scheduler-id';
      agent.onAgent = [
        { taskId: backupA, state: 'done' },
        { taskId: backupB, state: 'running' },
        { taskId: unknown, state: 'running' },
        { taskId: reused, state: 'running' },
        { taskId: foreign, state: 'running' },
      ];

      const restarted = scheduler([agent], 10_000);
      restarted.start();
      restarted.onAgentReady(agent);
      // a: its own attempt is gone from the agent (lost); the backup's done attempt of a is
      // adopted and its result collected, b's running one is followed, c is started.
      await until(() => agent.attached.length === 2, 'the adoptions');
      assert.deepEqual(agent.attached.map((x) => x.taskId).sort(), [backupA, backupB].sort());
      assert.deepEqual(agent.cancelled, [], 'nothing cancelled: no duplicate');
      const byTask = (task: string) => store.listAttempts(build.id, task);
      assert.deepEqual(
        byTask('a').map((x) => [x.number, x.agentTaskId, x.status]),
        [
          [1, mine, 'lost'],
          [2, backupA, 'running'],
        ],
      );
      agent.started.find((t) => t.spec.taskId === backupA)!.finish({});
      await until(() => agent.started.length === 3, 'c to start');
      const c = agent.started[2]!.spec.taskId;
      assert.match(c, idOf(build.id, 'c', 1));
      assert.notEqual(c, reused);
      agent.started.find((t) => t.spec.taskId === backupB)!.finish({});
      agent.started[2]!.finish({});
      await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
      assert.deepEqual(
        store.listTasks(build.id).map((t) => [t.name, t.status, t.attempts]),
        [
          ['a', 'succeeded', 2],
          ['b', 'succeeded', 1],
          ['c', 'succeeded', 1],
        ],
      );
      // The other builds' attempts were neither adopted nor cancelled: their history may come back.
      assert.deepEqual(agent.cancelled, []);

      // Connecting again now finds b's adopted attempt finished and a duplicate of it running.
      const duplicate = newAgentTaskId(build, 'b', 1);
      agent.onAgent = [{ taskId: duplicate, state: 'running' }];
      restarted.onAgentReady(agent);
      await until(() => agent.cancelled.length === 1, 'the duplicate to be cancelled');
      assert.deepEqual(agent.cancelled, [duplicate]);
      restarted.stop();
    });
  });

  describe('an agent that lies about its outputs', () => {
    const PLAN =
      'tasks:\n  one:\n    run: x\n    retries: 1\n    outputs: [out/*.txt, .GIT/config]\n' +
      '  two:\n    run: y\n    needs: [one]\n';
    const lies: [string, string, RegExp][] = [
      [
        '../../.git/hooks/x',
        'INVALID_PATH',
        /output path "\.\.\/\.\.\/\.git\/hooks\/x" has a "\.\." segment/,
      ],
      ['/etc/passwd', 'INVALID_PATH', /is absolute/],
      ['out/../../x', 'INVALID_PATH', /has a "\.\." segment/],
      ['.git/hooks/post-checkout', 'OUTPUT_IN_GIT', /is inside \.git\//],
      ['.GIT/config', 'OUTPUT_IN_GIT', /is inside \.git\//],
      [
        'notes.txt',
        'OUTPUT_UNDECLARED',
        /"notes\.txt" is not one of the task's declared outputs \(outputs: out\/\*\.txt, \.GIT\/config\)/,
      ],
      ['out/sub/deep.txt', 'OUTPUT_UNDECLARED', /not one of the task's declared outputs/],
    ];
    for (const [path, code, message] of lies) {
      it(`refuses ${JSON.stringify(path)} (${code}): the attempt fails, nothing is fetched or kept`, async () => {
        const agent = new FakeAgent('liar', 1);
        const s = scheduler([agent]);
        s.start();
        const build = store.createBuild(parsePlan(PLAN), [], 'test');
        s.submit(build);
        await until(() => agent.started.length === 1, 'the first attempt');
        const good = await storeBlob('good');
        const evil = { sha256: createHash('sha256').update('evil').digest('hex'), size: 4 };
        agent.started.splice(0)[0]!.finish({
          outputs: [
            { path: 'out/a.txt', ...good, mode: 0o644 },
            { path, ...evil, mode: 0o755 },
          ],
        });
        // The retry (retries: 1) on an honest report succeeds.
        await until(() => agent.started.length === 1, 'the retry');
        const [failed] = store.listAttempts(build.id, 'one');
        assert.equal(failed?.status, 'failed');
        assert.match(failed?.error ?? '', message);
        assert.match(failed?.error ?? '', new RegExp(`none of its outputs is kept \\[${code}\\]$`));
        assert.deepEqual(agent.fetched, [], 'no blob of a refused result is fetched');
        assert.deepEqual(store.getTask(build.id, 'one')?.outputs, []);
        agent.started
          .splice(0)[0]!
          .finish({ outputs: [{ path: 'out/a.txt', ...good, mode: 0o644 }] });
        await until(() => agent.started.length === 1, 'the task that needs it');
        assert.deepEqual(agent.started[0]!.spec.inputs, [
          { path: 'out/a.txt', sha256: good.sha256, mode: 0o644 },
        ]);
        agent.started.splice(0)[0]!.finish({});
        await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
        s.stop();
      });
    }

    it('fails the task when every attempt lies, and skips what needs it', async () => {
      const agent = new FakeAgent('liar', 1);
      const s = scheduler([agent]);
      s.start();
      const build = store.createBuild(parsePlan(PLAN), [], 'test');
      s.submit(build);
      const blob = await storeBlob('x');
      for (let attempt = 1; attempt <= 2; attempt++) {
        await until(() => agent.started.length === 1, `attempt ${attempt}`);
        agent.started
          .splice(0)[0]!
          .finish({ outputs: [{ path: 'undeclared.bin', ...blob, mode: 0o644 }] });
      }
      await until(() => store.getBuild(build.id)?.status === 'failed', 'the build to fail');
      const one = store.getTask(build.id, 'one');
      assert.equal(one?.status, 'failed');
      assert.match(one?.error ?? '', /\[OUTPUT_UNDECLARED\]$/);
      assert.equal(store.getTask(build.id, 'two')?.status, 'skipped');
      s.stop();
    });
  });
});
