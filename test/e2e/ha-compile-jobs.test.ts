/**
 * Remote compile jobs across failovers (issue 13): `muster build --placement remote -- make -j4`
 * of a generated C project against a primary with a selected backup and two agents with no
 * compiler on PATH, all real processes over TLS.
 *
 * 1. The primary is killed (-9) while jobs run on the agents: the build still exits 0 with
 *    objects byte-identical to plain make's, and every compile is accounted for — remote (before
 *    the kill) or compiled here as a counted fallback with its reason, never silently. The
 *    compiles held until the backup has taken over go to its agents: the build's compile service
 *    hears the backup within seconds (its guard's probe), not 30 s after the kill.
 * 2. The next build goes to the backup (the client learnt it from the primary's answers), with
 *    a fresh local cache: what the primary had replicated is a hit there, the rest compiled. It
 *    is held mid-way while the primary comes back and takes the cluster back (failback): its
 *    last compiles, records and close go to the primary again.
 * 3. A build on the primary with a fresh local cache is all hits — entries made on the primary
 *    and on the active backup.
 * 4. A second failover: the backup serves those hits again and compiles the one file changed.
 *
 * The project's contents come from a seed, printed (MUSTER_TEST_SEED=<seed> repeats a run);
 * MUSTER_TEST_DEBUG=1 prints when each step is reached.
 * Every wait is bounded; every process is killed by the helpers that started it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { BuildSummary, BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { backdate, copyOfExample } from '../helpers/cc-example.js';
import {
  assertSameFiles,
  compilerlessEnv,
  localeEnv,
  summaryOf,
  type Summary,
} from '../helpers/cc-remote.js';
import { compileServiceRuntime, stopCompileServices } from '../helpers/cc-service.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup, status } from '../helpers/ha.js';

const run = promisify(execFile);
const started = Date.now();
/** MUSTER_TEST_DEBUG=1: when each step was reached. */
function step(what: string): void {
  if (process.env.MUSTER_TEST_DEBUG)
    process.stderr.write(
      `ha-compile-jobs: ${((Date.now() - started) / 1000).toFixed(1)} s ${what}\n`,
    );
}

const seed = Number(process.env.MUSTER_TEST_SEED ?? Date.now() % 1_000_000);
process.stderr.write(`ha-compile-jobs: seed ${seed} (MUSTER_TEST_SEED=${seed} repeats it)\n`);

/** mulberry32: a small seeded PRNG. */
function random(start: number): () => number {
  let s = start >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const next = random(seed);
const pick = (n: number): number => Math.floor(next() * n);

/** Enough files, each taking gcc a fraction of a second, for the build to be mid-way. */
const FILES = 8;
const names = Array.from({ length: FILES }, (_, i) => `u${String(i).padStart(2, '0')}`);

/** One file's source: seeded functions (a salt changes it). */
function source(name: string, salt = 0): string {
  const functions = Array.from({ length: 40 }, (_, i) => {
    const [a, b, c] = [pick(1 << 30), pick(29) + 1, pick(5) + 3];
    return `uint64_t ${name}_f${i}(uint64_t x) { for (int k = 0; k < ${c}; k++) x = x * 6364136223846793005u + ${a}u ^ (x >> ${b}); return x; }`;
  });
  return [
    '#include <stdint.h>',
    `/* salt ${salt} */`,
    ...functions,
    `uint64_t ${name}_all(uint64_t x) { return ${functions.map((_, i) => `${name}_f${i}(x)`).join(' + ')}; }`,
    '',
  ].join('\n');
}

/** The last two files wait for a file `go` (at most 2 minutes): a build held across a failback. */
const LATE = names.slice(-2).map((n) => `${n}.o`);
const MAKEFILE = `OBJS = ${names.map((n) => `${n}.o`).join(' ')}
all: $(OBJS)
.PHONY: gate
${LATE.join(' ')}: gate
gate:
\t@i=0; while [ ! -e go ] && [ $$i -lt 600 ]; do sleep 0.2; i=$$((i+1)); done; [ -e go ]
%.o: %.c
\tgcc -O2 -c $< -o $@
`;

async function writeProject(dir: string, sources: Map<string, string>): Promise<void> {
  await writeFile(join(dir, 'Makefile'), MAKEFILE);
  await writeFile(join(dir, 'go'), '');
  for (const [name, text] of sources) await writeFile(join(dir, `${name}.c`), text);
}

async function removeObjects(dir: string): Promise<void> {
  for (const f of await readdir(dir)) if (f.endsWith('.o')) await rm(join(dir, f));
}

const objects = names.map((n) => `${n}.o`);

let primary: StartedCoordinator;
let backup: StartedCoordinator;
/** The client's environment: the primary's URL and token, its config dir (backups.json). */
let client: NodeJS.ProcessEnv;

function startPrimary(previous?: StartedCoordinator): Promise<StartedCoordinator> {
  const options = { tls: true, args: [...FAST] };
  return previous ? restartCoordinator(previous, options) : startCoordinator(options);
}

before(async () => {
  primary = await startPrimary();
  const agentEnv = await compilerlessEnv();
  for (const name of ['fo-1', 'fo-2']) {
    const agent = await startAgent({ env: agentEnv, args: ['--lease-ttl', '2s'] });
    await primary.addAgent(name, agent);
  }
  backup = await startBackup(primary, 'b1', ['--failover-timeout', '2s']);
  await selectBackup(primary, backup, 'b1');
  client = {
    ...localeEnv,
    PATH: process.env.PATH,
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    MUSTER_CONFIG_DIR: await makeTempDir('muster-fo-config-'),
    MUSTER_URL: primary.url,
    MUSTER_TOKEN: primary.token,
    HOME: await makeTempDir('muster-fo-home-'),
    XDG_RUNTIME_DIR: await compileServiceRuntime(),
  };
});

after(async () => {
  await stopCompileServices();
  await killCoordinators();
  await cleanup();
});

/** `muster build --json --placement remote -- make -j4` in `dir`, with a fresh local cache. */
async function build(dir: string): Promise<CliResult> {
  return runCli(['build', '--json', '--placement', 'remote', '--', 'make', '-j4'], {
    env: {
      ...client,
      XDG_CACHE_HOME: await makeTempDir('muster-fo-cache-'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
      // Debugging: the compile service's log, with when its guard paused and resumed.
      ...(process.env.MUSTER_TEST_DEBUG ? { MUSTER_CC_LOG: 'info' } : {}),
    },
    cwd: dir,
    timeoutMs: 300_000,
  });
}

async function backupState(): Promise<StatusView['primary'] | undefined> {
  try {
    return (await status(backup)).primary;
  } catch {
    return undefined;
  }
}

async function takenOver(what: string): Promise<void> {
  await waitFor(async () => (await backupState())?.state === 'active', 30_000, what);
}

/** Every compile counted once, and every one compiled here a counted fallback (placement remote). */
function assertAccounted(summary: Summary): void {
  const text = JSON.stringify(summary);
  assert.equal(summary.compiles, FILES, text);
  assert.equal(summary.remote + summary.local + summary.cacheHits, FILES, text);
  assert.equal(summary.reruns, 0, text);
  assert.equal(summary.local, summary.fallbacks, `no compile here without a reason: ${text}`);
  assert.equal(
    Object.values(summary.fallbackReasons).reduce((a, b) => a + b, 0),
    summary.fallbacks,
    text,
  );
}

/**
 * Mid-build: an object already written from an agent's result (before the kill every compile
 * goes remote: no object here came from anywhere else) and a remote job running on `on`; bounded.
 */
async function midBuild(on: StartedCoordinator, dir: string, ended: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  const seen: string[] = [];
  while (Date.now() < deadline && !ended()) {
    const written = (await readdir(dir)).filter((f) => f.endsWith('.o')).length;
    const list = await on.api<BuildSummary[]>('GET', '/builds?limit=5');
    for (const b of list.body) {
      if (b.kind !== 'compile' || b.status !== 'running') continue;
      const view = (await on.api<BuildView>('GET', `/builds/${b.id}`)).body;
      const running = view.tasks.filter((t) => t.placement === 'remote' && t.status === 'running');
      seen.push(`${written} written, ${running.length} running`);
      if (written > 0 && running.length > 0) return;
    }
    await sleep(50);
  }
  assert.fail(
    `no moment seen with objects written and jobs running: ${seen.slice(-5).join(' | ')}`,
  );
}

describe('remote compile jobs across failovers', () => {
  it(
    'a build survives the primary dying mid-build; the backup, then the primary after failback, then the backup again serve what either side made',
    { timeout: 540_000 },
    async () => {
      // The project, and plain make's objects (made while the toolchain goes up).
      const sources = new Map(names.map((n) => [n, source(n)]));
      const plain = await makeTempDir('muster-fo-plain-');
      await writeProject(plain, sources);
      const plainMade = run('make', ['-j2'], { cwd: plain, env: { ...process.env, ...localeEnv } });
      plainMade.catch(() => undefined); // awaited below; a failure fails the test there

      // The toolchain registered and on both agents, and the client told of the backup: build
      // examples/c-make until all its compiles went remote (bounded).
      const deadline = Date.now() + 180_000;
      const warmups: string[] = [];
      for (;;) {
        const dir = await copyOfExample('muster-fo-warm-');
        const s = summaryOf(
          await runCli(
            ['build', '--json', '--placement', 'remote', '--no-cache', '--', 'make', '-j2'],
            { env: client, cwd: dir, timeoutMs: 300_000 },
          ),
        );
        warmups.push(`${s.remote} remote/${s.local} local`);
        if (s.remote === s.compiles) break;
        assert.ok(Date.now() < deadline, `warm-up builds: ${warmups.join(', ')}`);
        await sleep(1000);
      }

      step('warm');
      await plainMade;
      const dir = await makeTempDir('muster-fo-tree-');
      await writeProject(dir, sources);
      await backdate(dir);

      // 1. The primary dies while jobs run on the agents; the build is held (its last two files
      // wait for `go`) until the backup has taken over, so it goes on past the takeover.
      await rm(join(dir, 'go'));
      const first = build(dir);
      let ended = false;
      void first.then(() => (ended = true));
      await midBuild(primary, dir, () => ended);
      step('mid-build: killing the primary');
      await primary.kill();
      await takenOver('the backup to take over');
      step('taken over');
      // The agents on the backup (a job no agent can take yet would be a fallback of its own),
      // then a moment — far less than the 30 s the service's guard used to stay paused.
      await waitFor(
        async () => (await status(backup)).agents.connected === 2,
        30_000,
        'the agents to be connected to the backup',
      );
      await sleep(3_000);
      step('taken over; gate opened');
      await writeFile(join(dir, 'go'), '');
      const cut = await first;
      const during = summaryOf(cut);
      step(`first build ended: ${JSON.stringify(during)}`);
      for (const line of cut.stderr.split('\n'))
        if (/^muster: the coordinator (did not answer|answers again)/.test(line))
          step(`(the build said: ${line})`);
      assert.match(
        cut.stderr,
        /^muster: the coordinator did not answer: compiles run here until it does$/m,
        'the pause is said once',
      );
      // Its records and its close went to the backup once it had taken over.
      assert.match(cut.stderr, /is unreachable; using its backup/);
      assertAccounted(during);
      assert.ok(during.remote >= 1, JSON.stringify(during));
      assert.ok(during.fallbacks >= 1, `the jobs cut by the kill: ${JSON.stringify(during)}`);
      assert.equal(during.cacheHits, 0, JSON.stringify(during));
      await assertSameFiles(dir, plain, objects);
      // The session went on with the backup: its build closed there, succeeded.
      await backup.login();
      await waitFor(
        async () => {
          const seen = await backup.api<BuildView>('GET', `/builds/${during.buildId}`);
          return seen.status === 200 && seen.body.status === 'succeeded';
        },
        30_000,
        `build ${during.buildId} to be closed on the backup`,
      );
      // The compiles held at the gate ran on the backup's agents.
      const closed = (await backup.api<BuildView>('GET', `/builds/${during.buildId}`)).body;
      const late = closed.tasks.filter((t) => LATE.some((o) => t.label?.endsWith(`-o ${o}`)));
      assert.deepEqual(
        late.map((t) => t.placement),
        ['remote', 'remote'],
        JSON.stringify(late.map((t) => [t.label, t.placement, t.fallback])),
      );

      // 2. The next build uses the backup — hits for what reached it, the rest compiled there —
      // and is held (its last two files wait for `go`) across the failback: the primary is
      // back and has taken the cluster back before they compile, on the primary.
      await removeObjects(dir);
      await rm(join(dir, 'go'));
      step('held build starts');
      let lastCount = -1;
      const held = build(dir);
      let heldEnded = false;
      void held.then(() => (heldEnded = true));
      await waitFor(
        async () => {
          if (heldEnded)
            assert.fail(`the build ended before its gate opened: ${(await held).stderr}`);
          const written = (await readdir(dir)).filter((f) => f.endsWith('.o'));
          if (written.length !== lastCount) step(`${(lastCount = written.length)} objects`);
          return written.length === FILES - LATE.length;
        },
        120_000,
        'the files before the gate to be compiled',
      );
      step('gate reached; restarting the primary');
      primary = await startPrimary(primary);
      await waitFor(
        async () => {
          const seen = await backupState();
          return seen?.state === 'standby' && seen.reachable;
        },
        60_000,
        'the failback to complete',
      );
      step('failback complete; gate opened');
      await writeFile(join(dir, 'go'), '');
      const across = await held;
      step('held build ended');
      assert.match(across.stderr, /is unreachable; using its backup/);
      assert.match(across.stderr, /stands by again; using/);
      assert.doesNotMatch(across.stderr, /could not (record|close)/);
      const second = summaryOf(across);
      assertAccounted(second);
      assert.equal(second.fallbacks, 0, JSON.stringify(second));
      assert.ok(second.remote >= 1, JSON.stringify(second));
      await assertSameFiles(dir, plain, objects);
      await waitFor(
        async () => {
          const seen = await primary.api<BuildView>('GET', `/builds/${second.buildId}`);
          return seen.status === 200 && seen.body.status === 'succeeded';
        },
        30_000,
        `build ${second.buildId} to be closed on the primary`,
      );

      // 3. The primary serves every compile from the cache, whichever side made it.
      await removeObjects(dir);
      const back = await build(dir);
      assert.doesNotMatch(back.stderr, /using its backup/);
      const third = summaryOf(back);
      assertAccounted(third);
      assert.equal(third.cacheHits, FILES, JSON.stringify(third));
      await assertSameFiles(dir, plain, objects);

      // 4. A second failover: the backup serves them again, and compiles the file changed.
      await primary.kill();
      await takenOver('the backup to take over again');
      const changed = names[pick(FILES)]!;
      const text = source(changed, 1);
      await writeFile(join(plain, `${changed}.c`), text);
      await run('make', ['-j2'], { cwd: plain, env: { ...process.env, ...localeEnv } });
      await writeFile(join(dir, `${changed}.c`), text);
      await backdate(dir);
      await removeObjects(dir);
      const again = await build(dir);
      assert.match(again.stderr, /is unreachable; using its backup/);
      const fourth = summaryOf(again);
      assertAccounted(fourth);
      assert.equal(fourth.cacheHits, FILES - 1, JSON.stringify(fourth));
      assert.equal(fourth.remote, 1, JSON.stringify(fourth));
      await assertSameFiles(dir, plain, objects);
    },
  );
});
