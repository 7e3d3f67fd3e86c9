/**
 * A compile session whose build a failback renumbers: real processes over TLS — a primary, its
 * selected backup, an agent — and a real `muster build --placement local -- make -j2` whose
 * compiles come in three stages held by gate files, each stage's records reaching another side:
 *
 * 1. The primary is killed (-9); the backup takes over; the build starts and opens its session
 *    there (build N); the first stage's records go to the backup.
 * 2. While the primary is down, a build it accepted that the backup never received takes id N in
 *    its database (what a primary cut off from its backup for a thousand builds would hold). It
 *    comes back and fails back: the backup's build is renumbered (M). The second stage's records
 *    go to the primary — into M, not into N, which is another build.
 * 3. A second failover: the third stage's records and the close go to the backup, into M.
 *
 * The build ends with all six jobs recorded, closed by its client with the command's exit code
 * (succeeded), and `--json` names M; after one more failback the primary has the same, and N is
 * still the build it was. Every wait is bounded; every process is killed by the helpers (or here)
 * that started it.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { BuildSummary, BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { localeEnv, summaryOf } from '../helpers/cc-remote.js';
import { compileServiceRuntime, stopCompileServices } from '../helpers/cc-service.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup, status } from '../helpers/ha.js';

const STAGES = [
  ['a1', 'a2'],
  ['b1', 'b2'],
  ['c1', 'c2'],
] as const;
const FILES = STAGES.flat();

/** Stage 2 waits for `go1`, stage 3 for `go2` (each at most 3 minutes). */
const gate = (file: string): string =>
  `\t@i=0; while [ ! -e ${file} ] && [ $$i -lt 900 ]; do sleep 0.2; i=$$((i+1)); done; [ -e ${file} ]`;
const objects = (stage: readonly string[]): string => stage.map((n) => `${n}.o`).join(' ');
const MAKEFILE = `all: ${objects(FILES)}
.PHONY: gate1 gate2
gate1: ${objects(STAGES[0])}
${gate('go1')}
gate2: ${objects(STAGES[1])}
${gate('go2')}
${objects(STAGES[1])}: gate1
${objects(STAGES[2])}: gate2
%.o: %.c
\tgcc -c $< -o $@
`;

let primary: StartedCoordinator;
let backup: StartedCoordinator;
let client: NodeJS.ProcessEnv;
let dir: string;
let building: CliRun | undefined;

function startPrimary(previous?: StartedCoordinator): Promise<StartedCoordinator> {
  const options = { tls: true, args: [...FAST] };
  return previous ? restartCoordinator(previous, options) : startCoordinator(options);
}

before(async () => {
  primary = await startPrimary();
  const agent = await startAgent({ args: ['--lease-ttl', '2s'] });
  await primary.addAgent('a0', agent);
  backup = await startBackup(primary, 'b1', ['--failover-timeout', '2s']);
  await selectBackup(primary, backup, 'b1');
  client = {
    ...localeEnv,
    PATH: process.env.PATH,
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    MUSTER_CONFIG_DIR: await makeTempDir('muster-renum-config-'),
    XDG_CACHE_HOME: await makeTempDir('muster-renum-cache-'),
    XDG_RUNTIME_DIR: await compileServiceRuntime(),
    MUSTER_URL: primary.url,
    MUSTER_TOKEN: primary.token,
    HOME: await makeTempDir('muster-renum-home-'),
  };
  dir = await makeTempDir('muster-renum-tree-');
  await writeFile(join(dir, 'Makefile'), MAKEFILE);
  for (const name of FILES)
    await writeFile(join(dir, `${name}.c`), `int ${name}(int x) { return x * 3 + 1; }\n`);
});

after(async () => {
  // A test that failed midway: the gates open, the build ends.
  if (building !== undefined) {
    await writeFile(join(dir, 'go1'), '').catch(() => undefined);
    await writeFile(join(dir, 'go2'), '').catch(() => undefined);
    building.kill('SIGKILL');
    await building;
  }
  await stopCompileServices();
  await killCoordinators();
  await cleanup();
});

async function backupState(): Promise<StatusView['primary'] | undefined> {
  try {
    return (await status(backup)).primary;
  } catch {
    return undefined;
  }
}

/** The build `id` on `on` (a backup standing by answers reads), undefined while it has none. */
async function buildOn(on: StartedCoordinator, id: number): Promise<BuildView | undefined> {
  const seen = await on.api<BuildView>('GET', `/builds/${id}`);
  if (seen.status === 401) await on.login();
  return seen.status === 200 ? seen.body : undefined;
}

/** The files a build's jobs compiled, in order. */
const labels = (view: BuildView): string[] =>
  view.tasks.map((t) => /-o (\w+)\.o/.exec(t.label ?? '')?.[1] ?? String(t.label)).sort();

/** Waits until build `id` on `on` has `jobs` tasks; returns it. */
async function jobsOn(
  on: StartedCoordinator,
  id: number,
  jobs: number,
  what: string,
): Promise<BuildView> {
  let last: BuildView | undefined;
  try {
    await waitFor(async () => (last = await buildOn(on, id))?.tasks.length === jobs, 60_000, what);
  } catch (err) {
    const seen = last === undefined ? 'no such build' : JSON.stringify(labels(last));
    throw new Error(`${(err as Error).message}; build ${id} there has ${seen}`, { cause: err });
  }
  return last!;
}

/** A build in `dbFile` with id `id` that the other side never received (the primary is down). */
function takeIdOnDeadPrimary(dbFile: string, id: number): void {
  const db = new Database(dbFile);
  try {
    const now = new Date().toISOString();
    db.prepare(
      `INSERT INTO builds (id, status, plan, files, created_by, created_at, started_at,
         finished_at, uid, kind)
       VALUES (?, 'succeeded', ?, '[]', 'admin', ?, ?, ?, lower(hex(randomblob(16))), 'plan')`,
    ).run(id, JSON.stringify({ name: 'accepted while cut off', tasks: [] }), now, now, now);
  } finally {
    db.close();
  }
}

describe('a compile session renumbered by a failback', () => {
  it(
    'records and the close reach the build through failover, a renumbering failback and a second failover',
    { timeout: 420_000 },
    async () => {
      // The client learns the backup from the primary's answers.
      const learnt = await runCli(['status'], { env: client });
      assert.equal(learnt.code, 0, learnt.stderr);

      // 1. The primary dies; the session opens on the backup, stage 1 is recorded there.
      await primary.kill();
      await waitFor(async () => (await backupState())?.state === 'active', 30_000, 'a takeover');
      await backup.login();
      building = runCli(
        ['build', '--json', '--no-cache', '--placement', 'local', '--', 'make', '-j2'],
        { env: client, cwd: dir, timeoutMs: 400_000 },
      );
      let opened: number | undefined;
      await waitFor(
        async () => {
          const list = await backup.api<BuildSummary[]>('GET', '/builds?limit=5');
          opened = list.body.find((b) => b.kind === 'compile' && b.status === 'running')?.id;
          return opened !== undefined;
        },
        60_000,
        'the session to open on the backup',
      );
      const n = opened!;
      await jobsOn(backup, n, 2, 'stage 1 recorded on the backup');

      // 2. The primary's database has a build N of its own; it comes back and fails back.
      takeIdOnDeadPrimary(join(primary.dataDir, 'muster.db'), n);
      primary = await startPrimary(primary);
      await waitFor(
        async () => {
          const seen = await backupState();
          return seen?.state === 'standby' && seen.reachable;
        },
        60_000,
        'the failback to complete',
      );
      const compiles = (await primary.api<BuildSummary[]>('GET', '/builds?limit=20')).body.filter(
        (b) => b.kind === 'compile',
      );
      assert.equal(compiles.length, 1, JSON.stringify(compiles));
      const m = compiles[0]!.id;
      assert.notEqual(m, n, 'renumbered: N is taken on the primary');
      assert.equal((await buildOn(primary, n))?.name, 'accepted while cut off');
      await writeFile(join(dir, 'go1'), '');
      const staged = await jobsOn(primary, m, 4, 'stage 2 recorded on the primary');
      assert.deepEqual(labels(staged), ['a1', 'a2', 'b1', 'b2']);
      assert.equal((await buildOn(primary, n))?.tasks.length, 0, 'nothing went to build N');

      // 3. The backup's new copy has M as it is; a second failover; stage 3 and the close there.
      await jobsOn(backup, m, 4, "stage 2 in the backup's copy");
      await primary.kill();
      await waitFor(
        async () => (await backupState())?.state === 'active',
        30_000,
        'a second takeover',
      );
      await writeFile(join(dir, 'go2'), '');
      const result = await building;
      building = undefined;
      assert.doesNotMatch(result.stderr, /could not (record|close)/);
      const summary = summaryOf(result);
      assert.deepEqual(
        [summary.buildId, summary.exitCode, summary.compiles, summary.local],
        [m, 0, FILES.length, FILES.length],
        result.stderr,
      );
      const closed = (await buildOn(backup, m))!;
      assert.deepEqual([closed.status, closed.error], ['succeeded', null], JSON.stringify(closed));
      assert.deepEqual(labels(closed), [...FILES].sort());
      assert.equal(new Set(closed.tasks.map((t) => t.name)).size, FILES.length);

      // One more failback: the primary has the build as the backup closed it, and N untouched.
      primary = await startPrimary(primary);
      await waitFor(
        async () => (await buildOn(primary, m))?.status === 'succeeded',
        60_000,
        `build ${m} closed on the primary after the failback`,
      );
      assert.deepEqual(labels((await buildOn(primary, m))!), [...FILES].sort());
      const other = await buildOn(primary, n);
      assert.deepEqual(
        [other?.name, other?.kind, other?.tasks.length],
        ['accepted while cut off', 'plan', 0],
      );
    },
  );
});
