/**
 * POST /api/v1/compile-sessions/{id}/jobs with inject(): the real session service and a real
 * scheduler over the route test's store, a real blob store, and a fake agent that has the job's
 * toolchain. What the compile service sees: the answer for a compile that succeeded (and the
 * shared-cache entry the coordinator keeps under the key it computes), one that failed, one
 * that did not start and the record that settles it, and the refusals.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { compileJobKey } from '../../src/api/compile-job-key.js';
import { compileJobBody } from '../../src/api/requests.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { CompileJobView, CompileSessionView } from '../../src/api/views/compile.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { newToken } from '../../src/coordinator/auth/passwords.js';
import { CompileSessions } from '../../src/coordinator/compile/sessions.js';
import { EventBus } from '../../src/coordinator/events.js';
import { Scheduler } from '../../src/coordinator/scheduler/scheduler.js';
import { CACHE_ACCEPT_CLIENT_RESULTS_SETTING } from '../../src/coordinator/store/cache.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { FakeSchedulerAgent } from '../helpers/fake-scheduler-agent.js';
import { noQuota, testApi, type TestApi } from '../helpers/api-context.js';

interface ErrorBody {
  error: { code: string; message: string };
}

const TOOLCHAIN = 'a'.repeat(64);
const silent = pino({ level: 'silent' });

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

interface Harness {
  api: TestApi;
  agent: FakeSchedulerAgent;
  blobs: BlobStore;
  scheduler: Scheduler;
  session: string;
}

let harness: Harness | undefined;

/** The API with a real scheduler whose only agent has TOOLCHAIN, and an open session. */
async function start(): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'routes-jobs-'));
  dirs.push(dir);
  const blobs = new BlobStore(dir);
  await blobs.init();
  const agent = new FakeSchedulerAgent('a1', 1, [TOOLCHAIN]);
  let scheduler!: Scheduler;
  const api = await testApi((defaults) => {
    const store = defaults.store as Store;
    scheduler = new Scheduler({
      store,
      pool: { ready: () => (agent.connected ? [agent] : []) },
      blobs,
      events: new EventBus(),
      log: silent,
      agentLossGraceMs: 60_000,
    });
    return {
      compile: new CompileSessions({
        store,
        builds: {
          submit: (row) => scheduler.submit(row),
          close: (id, end) => scheduler.close(id, end),
          addJob: (id, job) => scheduler.addJob(id, job),
        },
        blobs,
        uploads: noQuota,
        events: defaults.events as EventBus,
        agents: () => [],
        writes: () => true,
        log: silent,
        idleTimeoutMs: 120_000,
      }),
    };
  });
  scheduler.start();
  const opened = await api.call('POST', '/api/v1/compile-sessions', {
    token: api.admin,
    body: { command: 'make -j4', cwd: '/home/ada/lua', host: 'laptop' },
  });
  assert.equal(opened.status, 201, JSON.stringify(opened.body));
  const session = String((opened.body as CompileSessionView).buildId);
  harness = { api, agent, blobs, scheduler, session };
  return harness;
}

afterEach(async () => {
  harness?.scheduler.stop();
  await harness?.api.close();
  harness = undefined;
});

async function putBlob(blobs: BlobStore, text: string): Promise<{ sha256: string; size: number }> {
  const data = Buffer.from(text);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const writer = await blobs.createWriter(sha256, data.length);
  await writer.write(0, data);
  await writer.finish();
  return { sha256, size: data.length };
}

function body(source: { sha256: string; size: number }, overrides: Record<string, unknown> = {}) {
  return {
    label: 'gcc -O2 -c lapi.c -o lapi.o',
    input: {
      toolchain: TOOLCHAIN,
      driver: 'bin/gcc',
      args: ['-O2', '-c', { workPath: 'lapi.c' }, '-o', 'lapi.o'],
      cwd: '',
      debugPrefixMaps: [{ dir: '', to: '/home/ada/lua' }],
      env: {},
      outputs: [{ name: 'object', path: 'lapi.o' }],
    },
    source: { path: 'lapi.c', ...source },
    ...overrides,
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

describe('routes: remote compile jobs', () => {
  it('run a job on the agent, answer its object, and keep it in the shared cache', async () => {
    const { api, agent, blobs, session } = await start();
    // Clients' results refused: the coordinator still keeps what it obtained from its agent.
    api.store.setSetting(CACHE_ACCEPT_CLIENT_RESULTS_SETTING, false);
    const text = await putBlob(blobs, 'int lua_x(void) { return 1; }\n');
    const job = body(text);
    const answer = api.call('POST', `/api/v1/compile-sessions/${session}/jobs`, {
      token: api.admin,
      body: job,
    });
    await until(() => agent.started.length === 1, 'the job to reach the agent');
    const object = await putBlob(blobs, '\x7fELF object');
    agent.started[0]!.finish({
      value: { exitCode: 0, stdout: '', stderr: '', stdoutBytes: 0, stderrBytes: 0, outputs: [] },
      outputs: [{ path: 'lapi.o', ...object, mode: 0o644 }],
    });
    const { status, body: view } = await answer;
    assert.equal(status, 200, JSON.stringify(view));
    const key = compileJobKey(compileJobBody.parse(job));
    const expected: CompileJobView = {
      task: 'job-1',
      status: 'succeeded',
      agent: 'a1',
      exitCode: 0,
      stderr: '',
      stderrBytes: 0,
      object,
      cacheKey: key,
      reason: null,
      error: null,
    };
    assert.deepEqual(view, expected);
    const entry = api.store.cache.getEntry(key);
    assert.deepEqual(
      [entry?.kind, entry?.source, entry?.toolchain, entry?.exitCode, entry?.createdBy],
      ['compile', 'agent', TOOLCHAIN, 0, 'admin'],
    );
    assert.deepEqual(entry?.outputs, [{ name: 'object', ...object, mode: 0o644 }]);
    assert.equal(entry?.stderr, null);

    const shown = await api.call('GET', `/api/v1/builds/${session}`, { token: api.viewer });
    const task = (shown.body as BuildView).tasks[0];
    assert.deepEqual(
      [task?.name, task?.status, task?.agent, task?.placement, task?.cache, task?.label],
      ['job-1', 'succeeded', 'a1', 'remote', 'miss', job.label],
    );
  });

  it('keep nothing of a job whose client said keep: false (muster build --no-cache)', async () => {
    const { api, agent, blobs, session } = await start();
    const text = await putBlob(blobs, 'int lua_y(void) { return 2; }\n');
    const answer = api.call('POST', `/api/v1/compile-sessions/${session}/jobs`, {
      token: api.admin,
      body: body(text, { keep: false }),
    });
    await until(() => agent.started.length === 1, 'the job to reach the agent');
    const object = await putBlob(blobs, '\x7fELF other object');
    agent.started[0]!.finish({
      value: { exitCode: 0, stdout: '', stderr: '', stdoutBytes: 0, stderrBytes: 0, outputs: [] },
      outputs: [{ path: 'lapi.o', ...object, mode: 0o644 }],
    });
    const view = (await answer).body as CompileJobView;
    assert.deepEqual([view.status, view.object], ['succeeded', object]);
    assert.equal(api.store.cache.getEntry(view.cacheKey), undefined);
    assert.equal(api.store.cache.totals().entries, 0);
    // Not a boolean: refused before anything runs.
    const refused = await api.call('POST', `/api/v1/compile-sessions/${session}/jobs`, {
      token: api.admin,
      body: body(text, { keep: 'no' }),
    });
    assert.equal(refused.status, 400);
    assert.equal(agent.started.length, 1);
  });

  it('answer a compile error as failed with its exit code and stderr, and cache nothing', async () => {
    const { api, agent, blobs, session } = await start();
    const text = await putBlob(blobs, 'int x = ;\n');
    const answer = api.call('POST', `/api/v1/compile-sessions/${session}/jobs`, {
      token: api.admin,
      body: body(text),
    });
    await until(() => agent.started.length === 1, 'the job to reach the agent');
    const stderr = "lapi.c:1:9: error: expected expression before ';' token\n";
    agent.started[0]!.finish({
      status: 'failed',
      exitCode: 1,
      value: { exitCode: 1, stderr, stdoutBytes: 0, stderrBytes: stderr.length },
    });
    const view = (await answer).body as CompileJobView;
    assert.deepEqual(
      [view.status, view.exitCode, view.stderr, view.stderrBytes, view.object, view.error],
      ['failed', 1, stderr, stderr.length, null, null],
    );
    assert.equal(api.store.cache.getEntry(view.cacheKey), undefined);
  });

  it('answer not-started without an agent, and let a record settle the job', async () => {
    const { api, agent, blobs, session } = await start();
    agent.connected = false;
    const text = await putBlob(blobs, 'int y;\n');
    const answer = await api.call('POST', `/api/v1/compile-sessions/${session}/jobs`, {
      token: api.admin,
      body: body(text),
    });
    const view = answer.body as CompileJobView;
    assert.deepEqual(
      [answer.status, view.task, view.status, view.reason, view.agent],
      [200, 'job-1', 'not-started', 'toolchain-not-on-agents', null],
    );
    const records = await api.call('POST', `/api/v1/compile-sessions/${session}/records`, {
      token: api.admin,
      body: {
        records: [
          {
            label: 'gcc -O2 -c lapi.c -o lapi.o',
            placement: 'local',
            cache: 'miss',
            exitCode: 0,
            startedAt: Date.now(),
            durationMs: 40,
            fallback: 'toolchain-not-on-agents',
            job: 'job-1',
          },
        ],
      },
    });
    assert.equal(records.status, 204, JSON.stringify(records.body));
    const shown = (await api.call('GET', `/api/v1/builds/${session}`, { token: api.viewer }))
      .body as BuildView;
    assert.deepEqual(
      shown.tasks.map((t) => [t.name, t.status, t.placement, t.fallback]),
      [['job-1', 'succeeded', 'local', 'toolchain-not-on-agents']],
    );
  });

  it('let a record settle a job that succeeded with warnings: one row per compile', async () => {
    const { api, agent, blobs, session } = await start();
    const text = await putBlob(blobs, 'int w(void) { int u; return u; }\n');
    const answer = api.call('POST', `/api/v1/compile-sessions/${session}/jobs`, {
      token: api.admin,
      body: body(text),
    });
    await until(() => agent.started.length === 1, 'the job to reach the agent');
    const object = await putBlob(blobs, '\x7fELF warned');
    const stderr = "lapi.c:1:30: warning: 'u' is used uninitialized\n";
    agent.started[0]!.finish({
      value: { exitCode: 0, stderr, stdoutBytes: 0, stderrBytes: stderr.length },
      outputs: [{ path: 'lapi.o', ...object, mode: 0o644 }],
    });
    const view = (await answer).body as CompileJobView;
    assert.deepEqual([view.status, view.stderrBytes], ['succeeded', stderr.length]);
    // The client compiles it here for its messages, and says so naming the job.
    const records = await api.call('POST', `/api/v1/compile-sessions/${session}/records`, {
      token: api.admin,
      body: {
        records: [
          {
            label: 'gcc -O2 -c lapi.c -o lapi.o',
            placement: 'local',
            cache: 'miss',
            exitCode: 0,
            startedAt: Date.now(),
            durationMs: 40,
            job: view.task,
          },
        ],
      },
    });
    assert.equal(records.status, 204, JSON.stringify(records.body));
    const shown = (await api.call('GET', `/api/v1/builds/${session}`, { token: api.viewer }))
      .body as BuildView;
    assert.deepEqual(
      shown.tasks.map((t) => [t.name, t.status, t.placement]),
      [['job-1', 'succeeded', 'local']],
    );
  });

  it('answer a result it cannot read as failed, and one that printed on stdout without its object', async () => {
    const { api, agent, blobs, session } = await start();
    const url = `/api/v1/compile-sessions/${session}/jobs`;
    const object = await putBlob(blobs, '\x7fELF object');
    const outputs = [{ path: 'lapi.o', ...object, mode: 0o644 }];

    const unreadable = api.call('POST', url, {
      token: api.admin,
      body: body(await putBlob(blobs, 'int a;\n')),
    });
    await until(() => agent.started.length === 1, 'the first job to reach the agent');
    agent.started[0]!.finish({ value: { exitCode: 0, stderr: 42 }, outputs });
    const first = (await unreadable).body as CompileJobView;
    assert.deepEqual(
      [first.status, first.exitCode, first.object, first.reason, first.error?.code],
      ['failed', 0, null, 'remote-result-unreadable', 'OPERATION_FAILED'],
    );
    assert.equal(api.store.cache.getEntry(first.cacheKey), undefined);

    const printed = api.call('POST', url, {
      token: api.admin,
      body: body(await putBlob(blobs, 'int b;\n')),
    });
    await until(() => agent.started.length === 2, 'the second job to reach the agent');
    agent.started[1]!.finish({
      value: { exitCode: 0, stdout: '[]', stderr: '', stdoutBytes: 2, stderrBytes: 0 },
      outputs,
    });
    const second = (await printed).body as CompileJobView;
    assert.deepEqual(
      [second.status, second.stderrBytes, second.object, second.reason, second.error],
      ['succeeded', 0, null, 'remote-stdout', null],
    );
    assert.equal(api.store.cache.getEntry(second.cacheKey), undefined);
  });

  it('refuse arguments over 64 KiB, and a body over 256 KiB, before storing anything', async () => {
    const { api, blobs, session } = await start();
    const text = await putBlob(blobs, 'int c;\n');
    const url = `/api/v1/compile-sessions/${session}/jobs`;
    const args = (n: number) => [
      '-c',
      { workPath: 'lapi.c' },
      ...Array.from({ length: n }, () => '-D' + 'X'.repeat(998)),
    ];
    const input = (n: number) => ({ ...body(text).input, args: args(n) });
    // 70 args of 1000 bytes (each and its separator): over 64 KiB in a body under 256 KiB.
    const long = await api.call('POST', url, {
      token: api.admin,
      body: body(text, { input: input(70) }),
    });
    assert.equal(long.status, 400, JSON.stringify(long.body));
    assert.match((long.body as ErrorBody).error.message, /at most 65536 bytes of arguments/);
    const huge = await api.call('POST', url, {
      token: api.admin,
      body: body(text, { label: 'x'.repeat(300 * 1024) }),
    });
    assert.equal(huge.status, 413, JSON.stringify(huge.body));
    assert.equal((huge.body as ErrorBody).error.code, 'PAYLOAD_TOO_LARGE');
    assert.deepEqual(api.store.listTasks(Number(session)), []);
  });

  it('refuse a job whose text is not uploaded, on a session of another user, from a viewer', async () => {
    const { api, blobs, session } = await start();
    const text = await putBlob(blobs, 'int z;\n');
    const url = `/api/v1/compile-sessions/${session}/jobs`;
    const missing = await api.call('POST', url, {
      token: api.admin,
      body: body({ sha256: 'd'.repeat(64), size: 3 }),
    });
    assert.equal((missing.body as ErrorBody).error.code, 'BLOB_NOT_FOUND');
    const wrongSize = await api.call('POST', url, {
      token: api.admin,
      body: body({ ...text, size: text.size + 1 }),
    });
    assert.equal((wrongSize.body as ErrorBody).error.code, 'BLOB_SIZE_MISMATCH');
    const viewer = await api.call('POST', url, { token: api.viewer, body: body(text) });
    assert.equal(viewer.status, 403);
    const bob = api.store.createUser('bob', 'admin', 'not-a-hash');
    const bobs = newToken();
    api.store.createToken(bob.id, bobs.hash, new Date(Date.now() + 3_600_000).toISOString());
    const other = await api.call('POST', url, { token: bobs.token, body: body(text) });
    assert.equal((other.body as ErrorBody).error.code, 'FORBIDDEN');
    const invalid = await api.call('POST', url, {
      token: api.admin,
      body: body(text, { maxQueueMs: -1 }),
    });
    assert.equal(invalid.status, 400);
    const closed = await api.call('POST', `/api/v1/compile-sessions/${session}/close`, {
      token: api.admin,
      body: { exitCode: 0, summary: { jobs: 0, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 } },
    });
    assert.equal(closed.status, 200);
    const late = await api.call('POST', url, { token: api.admin, body: body(text) });
    assert.equal((late.body as ErrorBody).error.code, 'COMPILE_SESSION_CLOSED');
    // No row was added by any refusal.
    assert.deepEqual(api.store.listTasks(Number(session)), []);
  });
});
