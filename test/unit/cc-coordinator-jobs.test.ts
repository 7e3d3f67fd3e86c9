/**
 * The compile service's remote-job port to the coordinator (src/cli/cc/coordinator-jobs.ts) and
 * what goes with it: a toolchain registered once per service (only its missing blobs uploaded),
 * answers checked, a blob read that stops at the declared size (over real HTTP), the outcome of
 * each kind of answer, placement, and the build summary's words for them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CompileJobView } from '../../src/api/views/compile.js';
import { ApiClient } from '../../src/cli/api-client.js';
import { formatPoolHint, formatSummary, poolHint } from '../../src/cli/cc/build-summary.js';
import { CoordinatorCache } from '../../src/cli/cc/coordinator-cache.js';
import { CoordinatorGuard } from '../../src/cli/cc/coordinator-guard.js';
import { CoordinatorJobs } from '../../src/cli/cc/coordinator-jobs.js';
import { chooseRemote, localCoresBusy, otherMachineSlots } from '../../src/cli/cc/placement.js';
import { answerOutcome } from '../../src/cli/cc/remote-compile.js';
import type { Toolchain } from '../../src/cli/cc/toolchain.js';
import { MusterError } from '../../src/protocol/errors.js';
import { sha256 } from '../helpers/cc-fakes.js';
import { FakeCoordinator } from '../helpers/cli-fake-coordinator.js';

type JobsApi = ConstructorParameters<typeof CoordinatorJobs>[0];

function unused(): never {
  throw new Error('not asked in this test');
}

const view: CompileJobView = {
  task: 'job-3',
  status: 'succeeded',
  agent: 'a1',
  exitCode: 0,
  stderr: '',
  stderrBytes: 0,
  object: { sha256: sha256('o'), size: 1 },
  cacheKey: sha256('k'),
  reason: null,
  error: null,
};

describe('toolchain registration', () => {
  let dir: string;
  let toolchain: Toolchain;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-cc-jobs-'));
    const files = [
      ['bin/gcc', 'driver bytes', 0o755],
      ['lib/gcc/x/12/cc1', 'cc1 bytes', 0o755],
      ['lib/shared/libz.so.1', 'libz bytes', 0o755],
    ] as const;
    for (const [path, data] of files) await writeFile(join(dir, path.replaceAll('/', '_')), data);
    toolchain = {
      id: sha256('toolchain'),
      driver: 'bin/gcc',
      triple: 'x86_64-linux-gnu',
      version: '12.2.0',
      glibc: '2.36',
      files: files.map(([path, data, mode]) => ({
        path,
        source: join(dir, path.replaceAll('/', '_')),
        sha256: sha256(data),
        size: data.length,
        mode,
      })),
    };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function api(calls: string[], found: () => boolean): JobsApi {
    return {
      getToolchain: async (id) => {
        calls.push(`get ${id === toolchain.id}`);
        if (!found()) throw new MusterError('NOT_FOUND', 'no toolchain');
        return { id, info: {}, createdAt: '', agents: [] };
      },
      missingBlobs: async (hashes) => {
        calls.push(`missing ${hashes.length}`);
        return hashes.filter((h) => h !== sha256('libz bytes'));
      },
      putBlob: async (hash, data) => {
        assert.equal(sha256(Buffer.from(data)), hash);
        calls.push(`blob ${Buffer.from(data).toString()}`);
      },
      putToolchain: async (id, body) => {
        calls.push(`put ${id === toolchain.id} ${body.files.length}`);
        assert.deepEqual(body.info, {
          driver: 'bin/gcc',
          triple: 'x86_64-linux-gnu',
          version: '12.2.0',
          glibc: '2.36',
        });
        assert.deepEqual(Object.keys(body.files[0] ?? {}).sort(), [
          'mode',
          'path',
          'sha256',
          'size',
        ]);
        return { id, info: {}, createdAt: '', agents: [] };
      },
      submitCompileJob: unused,
      getBlob: unused,
    };
  }

  it('asks once, uploads only what the coordinator lacks, registers once for every compile', async () => {
    const calls: string[] = [];
    const jobs = new CoordinatorJobs(
      api(calls, () => false),
      async () => null,
    );
    await Promise.all([1, 2, 3].map(() => jobs.ensureToolchain(toolchain)));
    await jobs.ensureToolchain(toolchain);
    assert.deepEqual(calls, [
      'get true',
      'missing 3',
      'blob driver bytes',
      'blob cc1 bytes',
      'put true 3',
    ]);
  });

  it('a toolchain the coordinator has is only asked for', async () => {
    const calls: string[] = [];
    const jobs = new CoordinatorJobs(
      api(calls, () => true),
      async () => null,
    );
    await jobs.ensureToolchain(toolchain);
    await jobs.ensureToolchain(toolchain);
    assert.deepEqual(calls, ['get true']);
  });

  it('a failed registration is not tried again at once, but after a while', async () => {
    const calls: string[] = [];
    let fail = true;
    const base = api(calls, () => false);
    const jobs = new CoordinatorJobs(
      {
        ...base,
        putToolchain: async (id, body) => {
          if (fail) throw new MusterError('VALIDATION_FAILED', 'refused');
          return base.putToolchain(id, body);
        },
      },
      async () => null,
      new CoordinatorGuard(),
      50,
    );
    await assert.rejects(jobs.ensureToolchain(toolchain), /refused/);
    fail = false;
    await assert.rejects(jobs.ensureToolchain(toolchain), /refused/);
    assert.equal(calls.filter((c) => c.startsWith('get')).length, 1, 'not asked again at once');
    let ok = false;
    for (let i = 0; i < 500 && !ok; i++) {
      await new Promise((r) => setTimeout(r, 10));
      ok = await jobs.ensureToolchain(toolchain).then(
        () => true,
        () => false,
      );
    }
    assert.ok(ok, 'registered once the wait was over');
    assert.equal(calls.filter((c) => c.startsWith('get')).length, 2);
  });

  it('compiles are not held back by a registration: registering until an agent has it', async () => {
    const calls: string[] = [];
    let release = (): void => undefined;
    const uploading = new Promise<void>((r) => (release = r));
    let agents: string[] = [];
    let registered = false;
    const base = api(calls, () => registered);
    const jobs = new CoordinatorJobs(
      {
        ...base,
        getToolchain: async (id) => {
          await base.getToolchain(id);
          return { id, info: {}, createdAt: '', agents };
        },
        putBlob: async (hash, data) => {
          await uploading;
          await base.putBlob(hash, data);
        },
        putToolchain: async (id, body) => {
          registered = true;
          return base.putToolchain(id, body);
        },
      },
      async () => null,
      new CoordinatorGuard(),
      60_000,
      { pollMs: 0, syncGraceMs: 3_600_000 },
    );
    // The upload is stuck: every compile hears `registering` at once, one registration runs.
    assert.equal(await jobs.toolchainState(toolchain), 'registering');
    assert.equal(await jobs.toolchainState(toolchain), 'registering');
    release();
    await jobs.ensureToolchain(toolchain);
    assert.equal(calls.filter((c) => c.startsWith('put')).length, 1);
    // Registered, but no agent has synced it: still compiled here, the coordinator asked again.
    assert.equal(await jobs.toolchainState(toolchain), 'registering');
    agents = ['agent-1'];
    let state = await jobs.toolchainState(toolchain);
    for (let i = 0; i < 500 && state !== 'ready'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      state = await jobs.toolchainState(toolchain);
    }
    assert.equal(state, 'ready');
  });

  it('a registration that got no answer is asked again once the guard lets requests through', async () => {
    const calls: string[] = [];
    let away = true;
    const base = api(calls, () => true);
    let probed = 0;
    let resume: () => void = () => undefined;
    const guard = new CoordinatorGuard({
      probe: async () => {
        probed++;
        return true;
      },
      // The probe runs when the test says (no real waits).
      timers: { now: () => 0, after: (_ms, fn) => ((resume = fn), { cancel: () => undefined }) },
    });
    const jobs = new CoordinatorJobs(
      {
        ...base,
        getToolchain: async (id) => {
          if (away) {
            calls.push('no answer');
            throw new MusterError('UNREACHABLE', 'connection refused');
          }
          return { ...(await base.getToolchain(id)), agents: ['a1'] };
        },
      },
      async () => null,
      guard,
      3_600_000,
    );
    assert.equal(await jobs.toolchainState(toolchain), 'no-coordinator');
    // Paused: not asked again (a minute's retry is not what ends it).
    assert.equal(await jobs.toolchainState(toolchain), 'no-coordinator');
    assert.deepEqual(calls, ['no answer']);
    away = false;
    resume();
    await new Promise((r) => setImmediate(r));
    assert.equal(probed, 1);
    assert.equal(guard.paused, false);
    assert.equal(await jobs.toolchainState(toolchain), 'ready');
    assert.deepEqual(calls, ['no answer', 'get true']);
  });

  it('a failed registration is a fallback reason for the compiles that meanwhile ask', async () => {
    const calls: string[] = [];
    const jobs = new CoordinatorJobs(
      {
        ...api(calls, () => false),
        putToolchain: async () => {
          throw new MusterError('FORBIDDEN', 'refused');
        },
      },
      async () => null,
    );
    assert.equal(await jobs.toolchainState(toolchain), 'registering');
    await assert.rejects(jobs.ensureToolchain(toolchain), /refused/);
    assert.equal(await jobs.toolchainState(toolchain), 'remote-error');
  });

  it('a toolchain an agent already has is ready at the first compile (a new build)', async () => {
    const calls: string[] = [];
    const base = api(calls, () => true);
    const jobs = new CoordinatorJobs(
      {
        ...base,
        getToolchain: async (id) => ({ ...(await base.getToolchain(id)), agents: ['a1'] }),
      },
      async () => null,
    );
    assert.equal(await jobs.toolchainState(toolchain), 'ready');
    assert.equal(await jobs.toolchainState(toolchain), 'ready');
    assert.deepEqual(calls, ['get true']);
  });

  it('refuses to upload a file that changed since the toolchain was made of it', async () => {
    const calls: string[] = [];
    const changed = { ...toolchain, files: toolchain.files.map((f) => ({ ...f })) };
    changed.files[0]!.sha256 = sha256('other driver');
    const jobs = new CoordinatorJobs(
      { ...api(calls, () => false), missingBlobs: async (hashes) => hashes },
      async () => null,
    );
    await assert.rejects(jobs.ensureToolchain(changed), (err: unknown) => {
      assert.ok(err instanceof MusterError);
      assert.equal(err.code, 'BLOB_HASH_MISMATCH');
      return true;
    });
    assert.ok(!calls.some((c) => c.startsWith('put')));
  });
});

describe('the coordinator’s answers are checked', () => {
  it('a job answer: taken when well formed, refused otherwise; the wait covers the job', async () => {
    let waited = 0;
    let answer: unknown = view;
    const jobs = new CoordinatorJobs(
      {
        getToolchain: unused,
        missingBlobs: unused,
        putBlob: unused,
        putToolchain: unused,
        getBlob: unused,
        submitCompileJob: async (_id, _body, timeoutMs) => {
          waited = timeoutMs;
          return answer as CompileJobView;
        },
      },
      async () => null,
    );
    const body = {
      label: 'gcc -c x.c',
      input: {
        toolchain: sha256('t'),
        driver: 'bin/gcc',
        args: ['-c', 'x.c', '-o', 'x.o'],
        cwd: '',
        debugPrefixMaps: [],
        env: {},
        outputs: [{ name: 'object', path: 'x.o' }] as [{ name: 'object'; path: string }],
      },
      source: { path: 'x.c', sha256: sha256('x'), size: 1 },
      maxQueueMs: 5000,
      timeoutMs: 60_000,
    };
    assert.deepEqual(await jobs.submit('7', body), view);
    assert.ok(waited >= 65_000, `waited ${waited} ms`);
    for (const bad of [
      { ...view, status: 'done' },
      { ...view, object: { sha256: 'x', size: 1 } },
      { ...view, task: 'job-x' },
      { ...view, exitCode: undefined },
    ]) {
      answer = bad;
      await assert.rejects(jobs.submit('7', body), (err: unknown) => {
        assert.ok(err instanceof MusterError);
        assert.equal(err.code, 'INTERNAL');
        return true;
      });
    }
  });

  it('a cache lookup answer that is not one is a failure, not a hit', async () => {
    const cache = new CoordinatorCache({
      cacheLookup: async () =>
        ({
          manifest: [{ includes: [['a.h', 'not-a-hash']], entry: sha256('e') }],
          entries: [],
        }) as never,
      getBlob: unused,
      missingBlobs: unused,
      putBlob: unused,
      putCacheEntry: unused,
      putCacheResults: unused,
      putManifestLine: unused,
    });
    await assert.rejects(cache.lookup({ direct: sha256('d') }), /not what this client understands/);
  });

  it('one guard for both ports: a coordinator that did not answer is left alone by both', async () => {
    const guard = new CoordinatorGuard();
    const cache = new CoordinatorCache(
      {
        cacheLookup: () => Promise.reject(new MusterError('UNREACHABLE', 'refused')),
        getBlob: unused,
        missingBlobs: unused,
        putBlob: unused,
        putCacheEntry: unused,
        putCacheResults: unused,
        putManifestLine: unused,
      },
      undefined,
      guard,
    );
    let submitted = 0;
    const jobs = new CoordinatorJobs(
      {
        getToolchain: unused,
        missingBlobs: unused,
        putBlob: async () => {
          submitted++;
        },
        putToolchain: unused,
        getBlob: unused,
        submitCompileJob: unused,
      },
      async () => null,
      guard,
    );
    await assert.rejects(cache.lookup({ direct: sha256('d') }), /refused/);
    await assert.rejects(
      jobs.putText(sha256('t'), Buffer.from('t')),
      /did not answer a moment ago/,
    );
    assert.equal(submitted, 0);
  });
});

describe('a blob read stops at the declared size', () => {
  let fake: FakeCoordinator;
  let endless = 0;
  const data = Buffer.from('exactly these bytes');
  before(async () => {
    fake = await FakeCoordinator.start();
    fake.on('GET', '/blobs/:sha', (request, response) => {
      if (request.params['sha'] === sha256(data)) return { raw: data };
      if (request.params['sha'] === sha256('liar')) {
        response.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': '1000000',
        });
        response.end(Buffer.alloc(1_000_000));
        return undefined;
      }
      // No length, and no end: a client that read the whole body first would never return.
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => response.write(Buffer.alloc(64 * 1024)), 5);
      endless++;
      response.on('close', () => {
        clearInterval(timer);
        endless--;
      });
      return undefined;
    });
  });
  after(async () => {
    await fake.close();
  });

  it('takes a body of exactly the declared size', async () => {
    const client = new ApiClient({ url: fake.url, token: 't' });
    assert.deepEqual(await client.getBlob(sha256(data), data.length), data);
  });

  it('refuses a longer body without reading it all', async () => {
    const client = new ApiClient({ url: fake.url, token: 't' });
    for (const hash of [sha256('endless'), sha256('liar'), sha256(data)]) {
      await assert.rejects(client.getBlob(hash, 10), (err: unknown) => {
        assert.ok(err instanceof MusterError, String(err));
        assert.equal(err.code, 'BLOB_HASH_MISMATCH');
        return true;
      });
    }
    for (let i = 0; i < 500 && endless > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(endless, 0, 'the endless answer was cut off');
  });

  it('refuses a shorter body', async () => {
    const client = new ApiClient({ url: fake.url, token: 't' });
    await assert.rejects(client.getBlob(sha256(data), data.length + 5), /not the 24 bytes/);
  });
});

describe('what an answer means for the compile', () => {
  it('maps each kind of answer to a re-run or a fallback reason, naming the job', () => {
    const cases: [Partial<CompileJobView>, ReturnType<typeof answerOutcome>][] = [
      [
        { exitCode: 1, status: 'failed', stderr: 'x.c:1: error', stderrBytes: 12 },
        { kind: 'here', job: 'job-3', rerun: true },
      ],
      [
        { stderr: 'warning', stderrBytes: 7 },
        { kind: 'here', job: 'job-3', rerun: true },
      ],
      [
        // The compiler printed on stdout: its output is the user's, compiled here (a re-run).
        { object: null, reason: 'remote-stdout' },
        { kind: 'here', job: 'job-3', rerun: true },
      ],
      [
        {
          status: 'failed',
          exitCode: null,
          object: null,
          reason: 'remote-result-unreadable',
          error: { code: 'OPERATION_FAILED', message: '' },
        },
        { kind: 'here', job: 'job-3', fallback: 'remote-result-unreadable' },
      ],
      [
        { status: 'not-started', exitCode: null, object: null, reason: 'queue-full' },
        { kind: 'here', job: 'job-3', fallback: 'queue-full' },
      ],
      [
        { status: 'not-started', exitCode: null, object: null },
        { kind: 'here', job: 'job-3', fallback: 'not-started' },
      ],
      [
        { status: 'lost', exitCode: null, object: null },
        { kind: 'here', job: 'job-3', fallback: 'agent-lost' },
      ],
      [
        { status: 'cancelled', exitCode: null, object: null },
        { kind: 'here', job: 'job-3', fallback: 'remote-cancelled' },
      ],
      [
        {
          status: 'failed',
          exitCode: null,
          object: null,
          error: { code: 'TOOLCHAIN_NOT_FOUND', message: '' },
        },
        { kind: 'here', job: 'job-3', fallback: 'toolchain-not-found' },
      ],
      [
        { status: 'failed', exitCode: null, object: null, reason: 'Not A Reason!' },
        { kind: 'here', job: 'job-3', fallback: 'other' },
      ],
      [{ object: null }, { kind: 'here', job: 'job-3', fallback: 'remote-error' }],
    ];
    for (const [change, expected] of cases) {
      assert.deepEqual(answerOutcome({ ...view, ...change }), expected, JSON.stringify(change));
    }
  });
});

describe('placement and the summary', () => {
  const elsewhere = { agents: [{ name: 'b', slots: 4, sameMachine: null }] };
  const here = { agents: [{ name: 'a', slots: 2, sameMachine: true }] };

  it('sends work away only to other machines in auto, anywhere in remote', () => {
    assert.equal(otherMachineSlots({ agents: [...here.agents, ...elsewhere.agents] }), 4);
    assert.deepEqual(chooseRemote('auto', elsewhere), { remote: true });
    assert.deepEqual(chooseRemote('auto', here), { remote: false, reason: 'no-agents-elsewhere' });
    assert.deepEqual(chooseRemote('remote', here), { remote: true });
    assert.deepEqual(chooseRemote('remote', null), { remote: false, reason: 'no-session' });
    assert.equal(localCoresBusy(1, 2), false);
    assert.equal(localCoresBusy(2, 2), true);
    assert.equal(localCoresBusy(1, 0), true);
  });

  it('says when every agent shares this machine, and counts re-runs and fallback reasons', () => {
    assert.match(
      formatPoolHint(poolHint(here, 2), 5),
      /2 agent slots on this machine \(sharing its cores\).*every agent shares this machine's cores/,
    );
    assert.doesNotMatch(formatPoolHint(poolHint(elsewhere, 2), 5), /every agent shares/);
    const counts = {
      jobs: 10,
      compiles: 9,
      remote: 5,
      local: 4,
      cacheHits: 0,
      cacheMisses: 9,
      fallbacks: 3,
      errors: 0,
      reruns: 1,
      fallbackReasons: { 'no-agent-slot': 1, 'agent-lost': 2 },
    };
    assert.equal(
      formatSummary(counts, 1500, 12),
      'muster: 10 jobs (9 compiles): 5 remote, 4 local, 0 from cache, 3 fallbacks (agent-lost 2, no-agent-slot 1), 1 re-run here; 1.5 s — build 12\n',
    );
    assert.match(
      formatSummary({ ...counts, reruns: 0 }, 1500, undefined, 'no coordinator'),
      /3 fallbacks \(no coordinator\); 1\.5 s\n$/,
    );
  });
});
