/**
 * `cache: true` plan tasks in the scheduler (scheduler/task-cache.ts), against a fake agent and a
 * real in-memory store and blob store: a success is stored under the task's key, the same task
 * on the same files is then served from the cache without running (its outputs handed on to
 * what needs it), a changed input runs it again, a failure is never stored.
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
import type { BuildFile } from '../../src/api/plan/types.js';
import type { SchedulerAgent, SchedulerClient } from '../../src/coordinator/scheduler/ports.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { CACHE_AGENT, TaskCache } from '../../src/coordinator/scheduler/task-cache.js';
import { taskCacheKey, type KeyedFile } from '../../src/coordinator/scheduler/task-cache-key.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { BlobStore } from '../../src/common/blob-store.js';
import type { TaskResult, TaskSpec } from '../../src/protocol/task-types.js';

interface Started {
  spec: TaskSpec;
  finish(result: Partial<TaskResult>): void;
}

/** One agent whose tasks end when the test says so. */
class FakeAgent implements SchedulerAgent {
  busy = 0;
  /** Not in the pool (disconnected). */
  away = false;
  readonly started: Started[] = [];
  readonly row = { labels: [] as string[] };
  constructor(readonly name: string) {}

  get freeSlots(): number {
    return 4 - this.busy;
  }

  noteBusy(delta: number): void {
    this.busy += delta;
  }

  get client(): SchedulerClient {
    const unused = async (): Promise<never> => {
      throw new Error('not used here');
    };
    return {
      putBlobs: async () => ({ sentBlobs: 0, sentBytes: 0 }),
      startTask: async (spec) => {
        let finish!: (r: Partial<TaskResult>) => void;
        const result = new Promise<TaskResult>((resolve) => {
          finish = (r) => resolve({ status: 'succeeded', exitCode: 0, durationMs: 1, ...r });
        });
        this.started.push({ spec, finish });
        return { taskId: spec.taskId, result };
      },
      attachTask: unused,
      listTasks: async () => [],
      cancelTask: async () => undefined,
      releaseTask: async () => undefined,
      getBlob: async () => undefined,
    };
  }
}

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

let store: Store;
let blobs: BlobStore;
let extensionFiles: KeyedFile[] | undefined;
let hostFiles: KeyedFile[] | undefined;

beforeEach(async () => {
  store = openSqliteStore(':memory:');
  const dir = await mkdtemp(join(tmpdir(), 'scheduler-task-cache-'));
  dirs.push(dir);
  blobs = new BlobStore(dir);
  await blobs.init();
  extensionFiles = [{ path: 'index.js', sha256: 'e'.repeat(64), mode: 0o644 }];
  hostFiles = [{ path: 'host/main.js', sha256: 'd'.repeat(64), mode: 0o644 }];
});

function scheduler(agent: FakeAgent): Scheduler {
  const log = pino({ level: 'silent' });
  return new Scheduler({
    store,
    pool: { ready: () => (agent.away ? [] : [agent]) },
    blobs,
    events: new EventBus(),
    log,
    agentLossGraceMs: 50,
    taskCache: new TaskCache({
      store,
      blobs,
      log,
      extensionFiles: () => extensionFiles,
      hostFiles: () => hostFiles,
    }),
  });
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

const plan = parsePlan(
  'tasks:\n  compile:\n    run: cc -c a.c\n    inputs: [a.c]\n    outputs: [a.o]\n    cache: true\n' +
    '  link:\n    run: cc a.o\n    needs: [compile]\n    outputs: [app]\n',
);

async function source(text: string): Promise<BuildFile[]> {
  return [{ path: 'a.c', ...(await storeBlob(text)), mode: 0o644 }];
}

/** Runs the plan's build to its end; `compile` (if it runs) makes `object`, `link` makes app. */
async function runBuild(
  s: Scheduler,
  agent: FakeAgent,
  files: BuildFile[],
  object: string,
): Promise<number> {
  const build = store.createBuild(plan, files, 'alice');
  s.submit(build);
  for (
    let i = 0;
    i < 200 && !['succeeded', 'failed'].includes(store.getBuild(build.id)!.status);
    i++
  ) {
    for (const t of agent.started.splice(0)) {
      const made = t.spec.input && (t.spec.input as { command: string }).command === 'cc a.o';
      const blob = await storeBlob(made ? 'app' : object);
      t.finish({ outputs: [{ path: made ? 'app' : 'a.o', ...blob, mode: 0o644 }] });
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return build.id;
}

describe('scheduler: cache: true tasks', () => {
  it('stores a success, then serves the same task on the same files without running it', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const ran: string[] = [];
    const record = agent.started.push.bind(agent.started);
    agent.started.push = (...items: Started[]) => {
      ran.push(
        ...items.map(
          (i) => i.spec.operation + ':' + String((i.spec.input as { command: string }).command),
        ),
      );
      return record(...items);
    };

    const first = await runBuild(s, agent, await source('int a;'), 'object-1');
    assert.equal(store.getBuild(first)?.status, 'succeeded');
    const compiled = store.getTask(first, 'compile')!;
    assert.equal(compiled.cache, 'miss');
    assert.equal(compiled.agent, 'a');
    assert.equal(store.getTask(first, 'link')?.cache, null, 'a task without cache: true');
    assert.deepEqual(ran, ['run:cc -c a.c', 'run:cc a.o']);
    assert.equal(store.cache.totals().entries, 1, 'only the cache: true task is stored');

    ran.length = 0;
    const second = await runBuild(s, agent, await source('int a;'), 'object-2');
    assert.equal(store.getBuild(second)?.status, 'succeeded');
    assert.deepEqual(ran, ['run:cc a.o'], 'compile was not run again');
    const served = store.getTask(second, 'compile')!;
    assert.equal(served.status, 'succeeded');
    assert.equal(served.agent, CACHE_AGENT);
    assert.equal(served.cache, 'hit');
    assert.equal(served.placement, 'cache');
    assert.equal(served.attempts, 1);
    assert.deepEqual(served.outputs, compiled.outputs, 'the first run’s outputs, not object-2');
    const attempts = store.listAttempts(second, 'compile');
    assert.deepEqual(
      attempts.map((a) => [a.agent, a.status, a.exitCode]),
      [[CACHE_AGENT, 'succeeded', 0]],
    );
    const log = store.readLogs(second, { taskName: 'compile' });
    assert.equal(log.length, 1);
    assert.equal(log[0]?.stream, 'log');
    assert.match(
      log[0].data.toString(),
      /not run: its outputs came from the shared cache \(stored \d{4}-/,
    );
    // The dependent got the cached object as its input.
    const linked = store.listAttempts(second, 'link');
    assert.equal(linked.length, 1);
    const entry = store.cache.getEntry(
      /key ([0-9a-f]{64})/.exec(log[0].data.toString())?.[1] ?? '',
    );
    assert.equal(entry?.kind, 'task');
    assert.equal(entry?.source, 'agent');
    assert.equal(entry?.createdBy, 'alice');
    assert.equal(entry?.buildUid, store.getBuild(first)?.uid);
    assert.ok(store.cache.usage(entry.key), 'the hit counts as a use');

    ran.length = 0;
    const third = await runBuild(s, agent, await source('int a = 1;'), 'object-3');
    assert.equal(store.getBuild(third)?.status, 'succeeded');
    assert.deepEqual(ran, ['run:cc -c a.c', 'run:cc a.o'], 'a changed input runs it again');
    assert.equal(store.getTask(third, 'compile')?.cache, 'miss');
    assert.equal(store.cache.totals().entries, 2);
    s.stop();
  });

  it('hands a served task’s outputs to the tasks that need it', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int b;');
    await runBuild(s, agent, files, 'object');
    const build = store.createBuild(plan, files, 'bob');
    s.submit(build);
    await until(() => agent.started.length === 1, 'link to start');
    const link = agent.started[0]!;
    assert.equal((link.spec.input as { command: string }).command, 'cc a.o');
    const object = await storeBlob('object');
    assert.deepEqual(link.spec.inputs, [{ path: 'a.o', sha256: object.sha256, mode: 0o644 }]);
    link.finish({});
    await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
    s.stop();
  });

  it('never stores a failure, and runs every time while the extension is unknown', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int c;');
    const failing = store.createBuild(plan, files, 'alice');
    s.submit(failing);
    await until(() => agent.started.length === 1, 'compile to start');
    agent.started.splice(0)[0]!.finish({ status: 'failed', exitCode: 1 });
    await until(() => store.getBuild(failing.id)?.status === 'failed', 'the build to fail');
    assert.equal(store.cache.totals().entries, 0);

    extensionFiles = undefined;
    await runBuild(s, agent, files, 'object');
    assert.equal(store.cache.totals().entries, 0, 'no key: nothing stored');
    const again = await runBuild(s, agent, files, 'object');
    assert.equal(store.getTask(again, 'compile')?.agent, 'a', 'ran on the agent');
    assert.equal(store.getTask(again, 'compile')?.cache, null);
    s.stop();
  });

  it('runs a task again under a new host runtime, and serves it again under the same one', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int h;');
    const first = await runBuild(s, agent, files, 'object-h1');
    assert.equal(store.getTask(first, 'compile')?.cache, 'miss');

    const oldHost = hostFiles;
    hostFiles = [{ path: 'host/main.js', sha256: 'c'.repeat(64), mode: 0o644 }];
    const newer = await runBuild(s, agent, files, 'object-h2');
    assert.equal(store.getTask(newer, 'compile')?.cache, 'miss', 'a new host: not served');
    assert.equal(store.getTask(newer, 'compile')?.agent, 'a', 'ran on the agent');
    assert.equal(store.cache.totals().entries, 2, 'one entry per host runtime');

    hostFiles = oldHost?.map((f) => ({ ...f }));
    const same = await runBuild(s, agent, files, 'object-h3');
    assert.equal(store.getTask(same, 'compile')?.cache, 'hit', 'the same host: served');
    assert.deepEqual(
      store.getTask(same, 'compile')?.outputs,
      store.getTask(first, 'compile')?.outputs,
    );

    hostFiles = undefined;
    const unknown = await runBuild(s, agent, files, 'object-h4');
    assert.equal(store.getTask(unknown, 'compile')?.cache, null, 'no host known: not cached');
    s.stop();
  });

  it('serves a cached task while no agent is free, and its dependents wait for one', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int e;');
    await runBuild(s, agent, files, 'object-e');
    agent.away = true;
    const build = store.createBuild(plan, files, 'alice');
    s.submit(build);
    await until(
      () => store.getTask(build.id, 'compile')?.status === 'succeeded',
      'compile served from the cache',
    );
    assert.equal(store.getTask(build.id, 'compile')?.agent, CACHE_AGENT);
    assert.equal(store.getTask(build.id, 'link')?.status, 'queued');
    assert.equal(agent.started.length, 0);
    agent.away = false;
    s.schedule();
    await until(() => agent.started.length === 1, 'link to start once the agent is back');
    agent.started[0]!.finish({});
    await until(() => store.getBuild(build.id)?.status === 'succeeded', 'the build');
    s.stop();
  });

  it('looks a waiting task up again once its extension’s files are known (the bundle computed)', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int f;');
    await runBuild(s, agent, files, 'object-f');
    // The bundle is being computed again: no key for now; no agent is free either.
    agent.away = true;
    const known = extensionFiles;
    extensionFiles = undefined;
    const build = store.createBuild(plan, files, 'alice');
    s.submit(build);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(store.getTask(build.id, 'compile')?.status, 'queued');
    extensionFiles = known;
    s.schedule();
    await until(
      () => store.getTask(build.id, 'compile')?.status === 'succeeded',
      'compile served from the cache',
    );
    assert.equal(store.getTask(build.id, 'compile')?.agent, CACHE_AGENT);
    s.stop();
  });

  it('never serves a client’s entry under a task’s key', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int f;');
    const key = taskCacheKey({
      hostFiles: hostFiles!,
      extension: 'core',
      extensionFiles: extensionFiles!,
      operation: 'run',
      input: { command: 'cc -c a.c' },
      env: {},
      inputs: files,
      outputs: ['a.o'],
      requires: [],
    });
    const planted = await storeBlob('planted');
    store.cache.putEntry(
      {
        key,
        kind: 'compile',
        outputs: [{ name: 'a.o', ...planted, mode: 0o644 }],
        stderr: null,
        exitCode: 0,
        toolchain: 'f'.repeat(64),
        source: 'client',
        buildUid: null,
        createdBy: 'mallory',
      },
      () => planted.size,
    );
    const id = await runBuild(s, agent, files, 'object-f');
    assert.equal(store.getTask(id, 'compile')?.agent, 'a', 'it ran');
    assert.equal(store.getTask(id, 'compile')?.cache, 'miss');
    assert.equal(store.cache.getEntry(key)?.source, 'client', 'the first row stays (immutable)');
    s.stop();
  });

  it('runs the task again when a cached output blob is gone', async () => {
    const agent = new FakeAgent('a');
    const s = scheduler(agent);
    s.start();
    const files = await source('int d;');
    await runBuild(s, agent, files, 'object-d');
    await rm(blobs.pathOf((await storeBlob('object-d')).sha256));
    const again = await runBuild(s, agent, files, 'object-d');
    assert.equal(store.getTask(again, 'compile')?.cache, 'miss');
    assert.equal(store.getTask(again, 'compile')?.agent, 'a');
    s.stop();
  });
});
