/**
 * The compile service's remote path (src/cli/cc/remote-compile.ts, placement.ts) against real
 * gcc, driven by the fake shim: the jobs go to fake remote jobs that run them through the cc
 * extension's compile operation with this machine's gcc as a shipped toolchain (the agent's
 * half), or answer what a test says. Objects and depfiles must be plain gcc's, byte for byte;
 * every way a job does not come back whole ends in a compile here with the record naming it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { CompileService, type CompileServiceOptions } from '../../src/cli/cc/service.js';
import {
  FakeRecorder,
  FakeRemoteJobs,
  hourAhead,
  InMemorySharedCache,
  until,
} from '../helpers/cc-fakes.js';
import { fakeShim } from '../helpers/fake-shim.js';
import { requireGcc } from '../helpers/gcc.js';

const log = pino({ level: 'silent' });
describe('remote compiles through the service (real gcc, fake coordinator)', () => {
  const gcc = requireGcc();
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-remote-'));
  const src = join(root, 'src');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
  const shared = new InMemorySharedCache();
  const remote = new FakeRemoteJobs(join(root, 'agent'), shared);
  const recorder = new FakeRecorder();
  const services: CompileService[] = [];
  let main: CompileService;
  let socket: string;

  async function startService(
    name: string,
    options: Partial<CompileServiceOptions> = {},
  ): Promise<[CompileService, string]> {
    const service = new CompileService({
      cacheDir: join(root, `cache-${name}`),
      log,
      recorder,
      sharedCache: shared,
      remote,
      placement: 'remote',
      fileHashes: hourAhead,
      statsFlushDelayMs: 10,
      ...options,
    });
    const path = join(root, 'run', `${name}.sock`);
    await service.start(path);
    services.push(service);
    return [service, path];
  }

  const cc = (args: string[], at = socket) =>
    fakeShim({ socket: at, argv: ['gcc', ...args], cwd: src, env });
  const types = (out: { messages: { type: string }[] }): string[] =>
    out.messages.map((m) => m.type);
  /** Plain gcc: its object (and depfile) bytes, its stderr and exit code, outputs removed. */
  function plain(
    args: string[],
    outputs: string[],
  ): { files: Buffer[]; stderr: string; code: number } {
    const run = spawnSync(gcc, args, { cwd: src, env, encoding: 'utf8' });
    const files = outputs
      .filter((f) => existsSync(join(src, f)))
      .map((f) => readFileSync(join(src, f)));
    for (const f of outputs) rmSync(join(src, f), { force: true });
    return { files, stderr: run.stderr, code: run.status ?? -1 };
  }

  before(async () => {
    mkdirSync(join(src, 'inc'), { recursive: true });
    mkdirSync(join(root, 'run'), { mode: 0o700 });
    const files: Record<string, string> = {
      'inc/a.h': '#define A 3\nstatic inline int twice(int x) { return 2 * x; }\n',
      'hello.c':
        '#include <stdio.h>\n#include "a.h"\nint main(void) { printf("%s %d\\n", __FILE__, twice(A)); return 0; }\n',
      'plain.c': 'int plain(int x) { return x * 7; }\n',
      'warn.c': 'int w(void) { int unused; return 1; }\n',
      'missing.c': '#include "nope.h"\nint m;\n',
      'stamp.c': 'const char *stamp = __TIMESTAMP__;\n',
      'inc/stamp.h': 'static const char *hstamp = __TIMESTAMP__;\n',
      'hstamp.c': '#include "stamp.h"\nconst char *get(void) { return hstamp; }\n',
    };
    for (const [path, text] of Object.entries(files)) writeFileSync(join(src, path), text);
    [main, socket] = await startService('main');
  });
  after(async () => {
    for (const s of services) await s.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("runs a miss on an agent: object and depfile are plain gcc's, then a direct hit here", async () => {
    const args = ['-O2', '-g', '-Iinc', '-MMD', '-c', 'hello.c', '-o', 'hello.o'];
    const ref = plain(args, ['hello.o', 'hello.d']);
    assert.equal(ref.code, 0);
    const out = await cc(args);
    assert.deepEqual(types(out), ['cpp', 'exit']);
    assert.equal(out.code, 0);
    assert.equal(out.stderr.length, 0);
    assert.deepEqual(readFileSync(join(src, 'hello.o')), ref.files[0]);
    assert.deepEqual(readFileSync(join(src, 'hello.d')), ref.files[1]);
    // The cpp pass: the user's arguments, the driver's depfile options, directives only.
    const cpp = out.messages[0]?.argv ?? [];
    assert.ok(cpp.includes('-fdirectives-only') && cpp.includes('-E'), cpp.join(' '));
    assert.deepEqual(cpp.slice(cpp.indexOf('-MMD'), cpp.indexOf('-MMD') + 5), [
      '-MMD',
      '-MF',
      'hello.d',
      '-MQ',
      'hello.o',
    ]);
    assert.equal(remote.jobs.length, 1);
    const job = remote.jobs[0]!;
    assert.equal(job.maxQueueMs, 5000, 'placement remote waits seconds for a slot');
    assert.ok(
      job.maxQueueMs + (job.timeoutMs ?? 0) < 300_000,
      'an answer comes before Node’s fetch stops waiting for headers (5 min)',
    );
    assert.equal(job.source.path, 'hello.c');
    assert.match(job.label, /^gcc -O2 -g -Iinc -MMD -c hello.c -o hello.o$/);
    assert.ok(!job.input.args.includes('-Iinc'), 'include options stay here');
    assert.equal(recorder.remote, 1, 'a remote job is its own task: no record');
    assert.equal(recorder.records.length, 0);
    const totals = main.stats.totals;
    assert.equal(totals.remote, 1);
    assert.equal(totals.local, 0);
    assert.equal(totals.cacheMisses, 1);

    // Kept under the direct key (headers from the text's line markers): a hit, nothing runs.
    rmSync(join(src, 'hello.o'));
    rmSync(join(src, 'hello.d'));
    const again = await cc(args);
    assert.deepEqual(types(again), ['exit']);
    assert.deepEqual(readFileSync(join(src, 'hello.o')), ref.files[0]);
    assert.deepEqual(readFileSync(join(src, 'hello.d')), ref.files[1]);
    assert.equal(remote.jobs.length, 1);
    assert.equal(remote.registered.size, 1);
  });

  it('serves the same job from the shared cache by its preprocessor key (another machine)', async () => {
    await until(() => shared.stores >= 1, 'the direct entry to reach the shared cache');
    // Another machine: an empty local tier, and no direct-mode manifest in the shared cache.
    shared.manifests.clear();
    const [other, otherSocket] = await startService('other');
    const args = ['-O2', '-g', '-Iinc', '-MMD', '-c', 'hello.c', '-o', 'hello.o'];
    const before = readFileSync(join(src, 'hello.o'));
    rmSync(join(src, 'hello.o'));
    rmSync(join(src, 'hello.d'));
    const out = await cc(args, otherSocket);
    assert.deepEqual(types(out), ['cpp', 'exit']);
    assert.equal(out.code, 0);
    assert.deepEqual(readFileSync(join(src, 'hello.o')), before);
    assert.ok(existsSync(join(src, 'hello.d')), 'the cpp pass wrote the depfile');
    assert.equal(remote.jobs.length, 1, 'no job: the result was in the cache');
    assert.ok(shared.lookups.some((l) => l.keys?.length === 1));
    assert.equal(other.stats.totals.cacheHits, 1);
    assert.equal(other.stats.totals.remote, 0);
    assert.equal(other.stats.totals.cacheMisses, 0);
    assert.deepEqual(recorder.records.at(-1)?.placement, 'cache');
  });

  for (const [status, reason, expected] of [
    ['not-started', 'no-agent-slot', 'no-agent-slot'],
    ['lost', null, 'agent-lost'],
    ['failed', null, 'toolchain-incompatible'],
  ] as const) {
    it(`a job ${status} compiles here, recorded with the job and the fallback ${expected}`, async () => {
      const level = { 'not-started': '-O1', lost: '-O3', failed: '-Os' }[status];
      const args = [level, '-c', 'plain.c', '-o', `plain-${status}.o`];
      const ref = plain(args, [`plain-${status}.o`]);
      remote.answer = () => ({
        status,
        agent: status === 'not-started' ? null : 'agent-1',
        exitCode: null,
        stderr: '',
        stderrBytes: 0,
        object: null,
        reason,
        error:
          status === 'failed'
            ? { code: 'TOOLCHAIN_INCOMPATIBLE', message: 'glibc 2.36 needed' }
            : null,
      });
      const fallbacks = main.stats.totals.fallbackReasons[expected] ?? 0;
      try {
        const out = await cc(args);
        assert.deepEqual(types(out), ['cpp', 'run', 'exit']);
        assert.equal(out.code, 0);
        assert.deepEqual(readFileSync(join(src, `plain-${status}.o`)), ref.files[0]);
      } finally {
        remote.answer = undefined;
      }
      const record = recorder.records.at(-1);
      assert.equal(record?.job, `job-${remote.jobs.length}`);
      assert.equal(record?.fallback, expected);
      assert.equal(record?.placement, 'local');
      assert.equal(main.stats.totals.fallbackReasons[expected], fallbacks + 1);
    });
  }

  it('re-runs here a remote compile that printed a warning: the local diagnostics, exactly', async () => {
    const args = ['-Wall', '-c', 'warn.c', '-o', 'warn.o'];
    const ref = plain(args, ['warn.o']);
    assert.match(ref.stderr, /unused variable/);
    const jobs = remote.jobs.length;
    const fallbacks = main.stats.totals.fallbacks;
    const out = await cc(args);
    assert.deepEqual(types(out), ['cpp', 'run', 'exit']);
    assert.equal(remote.jobs.length, jobs + 1, 'it did run remotely first');
    assert.equal(out.stderr.toString(), ref.stderr);
    assert.deepEqual(readFileSync(join(src, 'warn.o')), ref.files[0]);
    assert.equal(main.stats.totals.reruns, 1);
    assert.equal(main.stats.totals.fallbacks, fallbacks, 'a re-run is not a fallback');
    const record = recorder.records.at(-1);
    assert.equal(record?.job, `job-${jobs + 1}`);
    assert.equal(record?.fallback, undefined);
  });

  it('compiles here when the preprocessing pass fails, with its exact diagnostics', async () => {
    const ref = plain(['-c', 'missing.c', '-o', 'missing.o'], ['missing.o']);
    assert.notEqual(ref.code, 0);
    const jobs = remote.jobs.length;
    const out = await cc(['-c', 'missing.c', '-o', 'missing.o']);
    assert.deepEqual(types(out), ['cpp', 'run', 'exit']);
    assert.equal(out.code, ref.code);
    // The shim shows only the run's stderr (the cpp pass's is captured, never shown).
    assert.equal(out.stderr.toString(), ref.stderr);
    assert.equal(remote.jobs.length, jobs, 'no job for a text that could not be made');
    assert.equal(recorder.records.at(-1)?.job, undefined);
  });

  it('--no-cache: every compile runs (remotely), nothing is looked up or kept', async () => {
    const [nocache, nocacheSocket] = await startService('nocache', { noCache: true });
    const args = ['-O1', '-Iinc', '-c', 'hello.c', '-o', 'nc.o'];
    const ref = plain(args, ['nc.o']);
    const lookups = shared.lookups.length;
    const stores = shared.stores;
    const jobs = remote.jobs.length;
    for (let i = 0; i < 2; i++) {
      const out = await cc(args, nocacheSocket);
      assert.deepEqual(types(out), ['cpp', 'exit']);
      assert.deepEqual(readFileSync(join(src, 'nc.o')), ref.files[0]);
    }
    assert.equal(remote.jobs.length, jobs + 2);
    // …and the coordinator is told to keep nothing of them either.
    assert.deepEqual(
      remote.jobs.slice(jobs).map((j) => j.keep),
      [false, false],
    );
    assert.ok(remote.jobs.slice(0, jobs).every((j) => j.keep === undefined));
    assert.equal(shared.lookups.length, lookups);
    await nocache.stop();
    assert.equal(shared.stores, stores);
    assert.equal(nocache.stats.totals.cacheHits + nocache.stats.totals.cacheMisses, 0);
    assert.equal(nocache.stats.totals.uncacheable, 0);
    assert.equal(nocache.stats.totals.remote, 2);
  });

  it('auto placement compiles here while this machine has a free core (no session asked)', async () => {
    const [, autoSocket] = await startService('auto', { placement: 'auto', localCores: 8 });
    const asked = remote.sessionsAsked;
    const jobs = remote.jobs.length;
    const out = await cc(['-O2', '-c', 'plain.c', '-o', 'auto.o'], autoSocket);
    assert.deepEqual(types(out), ['run', 'exit']);
    assert.equal(remote.sessionsAsked, asked);
    assert.equal(remote.jobs.length, jobs);
    execFileSync(gcc, ['-O2', '-c', 'plain.c', '-o', 'auto-ref.o'], { cwd: src, env });
    assert.deepEqual(readFileSync(join(src, 'auto.o')), readFileSync(join(src, 'auto-ref.o')));
  });

  it('keeps here, with placement remote, a compile whose options an agent refuses (agent-refuses)', async () => {
    const [refusing, refusingSocket] = await startService('refusing');
    const jobs = remote.jobs.length;
    const args = ['-O2', '-Wl,--as-needed', '-c', 'plain.c', '-o', 'refused.o'];
    const ref = plain(args, ['refused.o']);
    const out = await cc(args, refusingSocket);
    assert.deepEqual(types(out), ['run', 'exit'], 'the compiler ran here');
    assert.equal(out.code, 0);
    assert.equal(remote.jobs.length, jobs, 'no job was sent');
    assert.deepEqual(readFileSync(join(src, 'refused.o')), ref.files[0]);
    await until(
      () => refusing.stats.totals.localReasons['agent-refuses'] === 1,
      'the reason in the stats',
    );
    assert.equal(refusing.stats.totals.fallbacks, 0, 'not a fallback');
  });

  it("a compile environment's MUSTER_CC_PLACEMENT=local keeps it here (per-user service)", async () => {
    const [, envSocket] = await startService('env', { placementFromEnv: true });
    const jobs = remote.jobs.length;
    const out = await fakeShim({
      socket: envSocket,
      argv: ['gcc', '-O3', '-c', 'warn.c', '-o', 'env.o'],
      cwd: src,
      env: { ...env, MUSTER_CC_PLACEMENT: 'local' },
    });
    assert.deepEqual(types(out), ['run', 'exit']);
    assert.equal(remote.jobs.length, jobs);
  });

  it('auto placement sends a compile to an agent of another machine once the cores are busy', async () => {
    // A compiler named cc that holds its compile until the test lets it go: one busy core.
    const hold = join(root, 'hold');
    mkdirSync(join(hold, 'bin'), { recursive: true });
    writeFileSync(
      join(hold, 'bin', 'cc'),
      `#!/bin/sh\ncase " $* " in *" -c "*)\n  : > "${hold}/started"\n  while [ ! -e "${hold}/release" ]; do sleep 0.05; done;;\nesac\nexec ${gcc} "$@"\n`,
      { mode: 0o755 },
    );
    const [busy, busySocket] = await startService('busy', { placement: 'auto', localCores: 1 });
    const holdEnv = { ...env, PATH: `${join(hold, 'bin')}:${env.PATH}` };
    const held = fakeShim({
      socket: busySocket,
      argv: ['cc', '-O1', '-c', 'plain.c', '-o', 'held.o'],
      cwd: src,
      env: holdEnv,
    });
    await until(() => existsSync(join(hold, 'started')), 'the held compile to start');
    const jobs = remote.jobs.length;
    const ref = plain(['-O2', '-c', 'warn.c', '-o', 'busy.o'], ['busy.o']);
    const away = await cc(['-O2', '-c', 'warn.c', '-o', 'busy.o'], busySocket);
    assert.deepEqual(types(away), ['cpp', 'exit']);
    assert.equal(remote.jobs.length, jobs + 1);
    assert.equal(remote.jobs.at(-1)?.maxQueueMs, 100, 'auto: a job does not queue');
    assert.deepEqual(readFileSync(join(src, 'busy.o')), ref.files[0]);

    // With only agents that share this machine's cores, it stays here.
    remote.capacity = { agents: [{ name: 'same', slots: 4, sameMachine: true }] };
    try {
      const here = await cc(['-Og', '-c', 'warn.c', '-o', 'busy-here.o'], busySocket);
      assert.deepEqual(types(here), ['run', 'exit']);
      assert.equal(remote.jobs.length, jobs + 1);
      assert.equal(busy.stats.totals.localReasons['no-agents-elsewhere'], 1);
    } finally {
      remote.capacity = { agents: [{ name: 'agent-1', slots: 2, sameMachine: false }] };
      writeFileSync(join(hold, 'release'), '');
    }
    const first = await held;
    assert.deepEqual(types(first), ['run', 'exit']);
    assert.equal(first.code, 0);
  });

  for (const file of ['stamp.c', 'hstamp.c']) {
    it(`${file}: __TIMESTAMP__ (the file's mtime) is compiled here and never cached, whatever SOURCE_DATE_EPOCH says`, async () => {
      const jobs = remote.jobs.length;
      const runs: string[][] = [];
      for (let i = 0; i < 2; i++) {
        const out = await fakeShim({
          socket,
          argv: ['gcc', '-Iinc', '-c', file, '-o', 'stamp.o'],
          cwd: src,
          env: { ...env, SOURCE_DATE_EPOCH: '0' },
        });
        assert.equal(out.code, 0);
        runs.push(types(out));
      }
      // Never a job (an agent's copy has its own mtime), never a hit: each compile runs here.
      for (const run of runs) assert.deepEqual(run.slice(-2), ['run', 'exit']);
      assert.equal(remote.jobs.length, jobs);
      assert.equal(recorder.records.at(-1)?.placement, 'local');
    });
  }

  it('compiles here at once while the toolchain is being registered (not a fallback)', async () => {
    const [held, heldSocket] = await startService('registering');
    remote.holdRegistration = true;
    const jobs = remote.jobs.length;
    const ensured = remote.ensureCalls;
    try {
      const args = ['-O1', '-c', 'warn.c', '-o', 'reg.o'];
      const ref = plain(args, ['reg.o']);
      const out = await cc(args, heldSocket);
      assert.deepEqual(types(out), ['cpp', 'run', 'exit']);
      assert.deepEqual(readFileSync(join(src, 'reg.o')), ref.files[0]);
    } finally {
      remote.holdRegistration = false;
    }
    assert.equal(remote.jobs.length, jobs);
    assert.equal(remote.ensureCalls, ensured + 1, 'the registration is work the stop waits for');
    assert.equal(held.stats.totals.localReasons['toolchain-registering'], 1);
    assert.equal(held.stats.totals.fallbacks, 0);
    assert.equal(recorder.records.at(-1)?.fallback, undefined);
  });

  it('placement remote with no session to be had: a no-coordinator fallback', async () => {
    const [lone, loneSocket] = await startService('nosession');
    remote.noSession = true;
    try {
      const out = await cc(['-O2', '-DLONE', '-c', 'plain.c', '-o', 'lone.o'], loneSocket);
      assert.deepEqual(types(out), ['run', 'exit']);
      assert.equal(out.code, 0);
    } finally {
      remote.noSession = false;
    }
    assert.equal(lone.stats.totals.fallbackReasons['no-coordinator'], 1);
    assert.equal(lone.stats.totals.localReasons['no-session'], undefined);
    assert.equal(recorder.records.at(-1)?.fallback, 'no-coordinator');
  });
});
