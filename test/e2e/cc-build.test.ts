/**
 * `muster build -- make` on an unchanged Makefile (examples/c-make) against a real coordinator
 * over TLS: compiles go through the real native launcher (the masquerade directory catches the
 * Makefile's own `CC = gcc`), objects are byte-identical to plain make's, every compile is a
 * job of one build, a rebuild on a machine with an empty local cache is served by the
 * coordinator's shared cache, a header edit recompiles exactly its dependents, a compile error
 * reads as it does without Muster, and without a coordinator the build still succeeds with every
 * fallback counted.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, appendFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, makeTempDir } from '../helpers/agent-process.js';
import { backdate, copyOfExample } from '../helpers/cc-example.js';
import {
  compileServiceLog,
  compileServicePids,
  compileServiceRuntime,
  isService,
  stopCompileServices,
} from '../helpers/cc-service.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

const run = promisify(execFile);
const musterBin = fileURLToPath(new URL('../../../bin/muster', import.meta.url));
const dirs: string[] = [];
after(async () => {
  await stopCompileServices();
  await killCoordinators();
  await cleanup(dirs);
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

/** A fresh copy of the example, backdated. */
function project(): Promise<string> {
  return copyOfExample('muster-cc-build-');
}

/**
 * The CLI; `muster build` as users run it, through bin/muster: its native front end
 * (native/build-front.c) when the service runs, the Node CLI when it starts the service.
 */
function muster(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<CliResult> {
  return runCli(args, {
    env,
    cwd,
    timeoutMs: 240_000,
    ...(args[0] === 'build' ? { command: musterBin } : {}),
  });
}

interface Summary {
  buildId: number | null;
  exitCode: number;
  jobs: number;
  compiles: number;
  remote: number;
  local: number;
  cacheHits: number;
  cacheMisses: number;
  fallbacks: number;
  errors: number;
  fallbackReasons: Record<string, number>;
}

function summaryOf(result: CliResult): Summary {
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Summary;
}

/** The same locale for plain make and muster build: gcc's quotes in diagnostics follow it. */
const localeEnv = { LANG: 'C.UTF-8' };

const OBJECTS = ['main', 'shapes', 'stats', 'text', 'table', 'noisy', 'wordcount'];

async function assertSameOutputs(a: string, b: string): Promise<void> {
  for (const name of OBJECTS)
    for (const suffix of ['.o', '.d'])
      assert.deepEqual(
        await readFile(join(a, name + suffix)),
        await readFile(join(b, name + suffix)),
        `${name}${suffix} differs from plain make's`,
      );
}

describe('muster build -- make', () => {
  let coordinator: StartedCoordinator;
  let online: NodeJS.ProcessEnv;
  let reference: string;

  before(async () => {
    coordinator = await startCoordinator({ tls: true });
    online = {
      ...localeEnv,
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
      MUSTER_CONFIG_DIR: await tempDir('muster-cc-config-'),
      MUSTER_URL: coordinator.url,
      MUSTER_TOKEN: coordinator.token,
      HOME: await tempDir('muster-cc-home-'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
    };
    reference = await project();
    await run('make', ['-j2'], { cwd: reference });
  });

  it('builds an unchanged Makefile, every compile a job of one build, objects as plain make', async () => {
    const dir = await project();
    const result = await muster(['build', '--json', '--', 'make', '-j2', 'check'], online, dir);
    const summary = summaryOf(result);
    assert.match(
      result.stderr,
      /muster: 9 jobs \(7 compiles\): 0 remote, 7 local, 0 from cache, 0 fallbacks; .* — build \d+/,
    );
    assert.equal(summary.compiles, 7);
    assert.equal(summary.cacheMisses, 7);
    assert.equal(summary.exitCode, 0);
    await assertSameOutputs(dir, reference);
    // The per-user service hosted it (started by this build), and lives on for the next one.
    assert.doesNotMatch(result.stderr, /does not host this build/);
    const runtime = online['XDG_RUNTIME_DIR'] ?? '';
    assert.equal((await compileServiceLog(runtime, 'hosting a build')).length, 1);
    assert.equal((await compileServicePids(runtime)).length, 1);

    const show = await muster(['builds', 'show', String(summary.buildId), '--json'], online, dir);
    assert.equal(show.code, 0, show.stderr);
    const build = JSON.parse(show.stdout) as BuildView & {
      kind: string;
      tasks: {
        label: string | null;
        placement: string | null;
        cache: string | null;
        status: string;
      }[];
    };
    assert.equal(build.kind, 'compile');
    assert.equal(build.status, 'succeeded');
    assert.equal(build.tasks.length, 7);
    for (const task of build.tasks) {
      assert.equal(task.placement, 'local');
      assert.equal(task.cache, 'miss');
      assert.equal(task.status, 'succeeded');
      assert.match(task.label ?? '', /^g(cc|\+\+) .* -c src\//);
    }
  });

  it("serves a rebuild on a machine with an empty local cache from the coordinator's", async () => {
    const dir = await project();
    const elsewhere = {
      ...online,
      HOME: await tempDir('muster-cc-home2-'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
    };
    const summary = summaryOf(
      await muster(['build', '--json', '--', 'make', '-j2'], elsewhere, dir),
    );
    assert.equal(summary.compiles, 7);
    assert.equal(summary.cacheHits, 7, JSON.stringify(summary));
    assert.equal(summary.local, 0);
    await assertSameOutputs(dir, reference);
    await run('make', ['check'], { cwd: dir });
  });

  it('asks the coordinator nothing for compiles its list of keys does not have, and serves them after', async () => {
    const lookups = async (): Promise<number> => {
      const text = await (await fetch(`${coordinator.url}/metrics`)).text();
      return [...text.matchAll(/^muster_cache_lookups_total\{[^}]*\} (\d+)$/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };
    // The service heard the coordinator's keys when it opened its last build (a build opening
    // asks again for what came since): new flags make keys nobody has.
    assert.equal((await muster(['build', '--', 'true'], online, await project())).code, 0);
    const flags = ['CFLAGS=-O1 -Wall -DLIST_TEST', 'CXXFLAGS=-O1 -Wall -DLIST_TEST'];
    const before = await lookups();
    const first = summaryOf(
      await muster(['build', '--json', '--', 'make', '-j2', ...flags], online, await project()),
    );
    assert.equal(first.compiles, 7);
    assert.equal(first.cacheMisses, 7, JSON.stringify(first));
    assert.equal(await lookups(), before, 'no lookup reached the coordinator');
    // Another machine's service hears the keys those compiles stored, and is served.
    const elsewhere = {
      ...online,
      HOME: await tempDir('muster-cc-home3-'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
    };
    const again = summaryOf(
      await muster(['build', '--json', '--', 'make', '-j2', ...flags], elsewhere, await project()),
    );
    assert.equal(again.cacheHits, 7, JSON.stringify(again));
    assert.equal(await lookups(), before + 7);
  });

  it('recompiles exactly the files that include an edited header', async () => {
    const dir = await project();
    assert.equal(
      summaryOf(await muster(['build', '--json', '--', 'make', '-j2'], online, dir)).cacheHits,
      7,
    );
    await appendFile(join(dir, 'include/stats.h'), '/* edited */\n');
    await backdate(dir);
    // make's own dependency list (the .d files) picks the dependents; each is a cache miss.
    await utimes(join(dir, 'include/stats.h'), new Date(), new Date(Date.now() - 10_000));
    // The edit set the header's ctime to now, which no utimes can set back: a compile that reads
    // a file changed in the last 2 s is not cached (ccache's too-new rule), so let 2 s pass.
    await sleep(2100);
    const summary = summaryOf(await muster(['build', '--json', '--', 'make', '-j2'], online, dir));
    const dependents = (
      await run('grep', ['-l', 'stats.h', ...OBJECTS.map((o) => `${o}.d`)], { cwd: dir })
    ).stdout
      .trim()
      .split('\n');
    assert.equal(dependents.length, 5);
    assert.equal(summary.compiles, dependents.length);
    assert.equal(summary.cacheMisses, dependents.length);
    // After make clean the others come from the cache: only the dependents were ever recompiled.
    await run('make', ['clean'], { cwd: dir });
    const again = summaryOf(await muster(['build', '--json', '--', 'make', '-j2'], online, dir));
    assert.equal(again.cacheHits, 7);
  });

  it('prints the same diagnostics and exit code as plain make for a compile error', async () => {
    const dir = await project();
    const plainDir = await project();
    const args = ['CFLAGS=-O2 -Wall -DBROKEN', 'noisy.o'];
    const plain = await run('make', args, {
      cwd: plainDir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...localeEnv },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    assert.notEqual(plain.code, 0);
    const result = await muster(['build', '--', 'make', ...args], online, dir);
    assert.equal(result.code, plain.code);
    const diagnostics = result.stderr
      .split('\n')
      .filter((line) => !line.startsWith('muster: '))
      .join('\n');
    assert.equal(diagnostics, plain.stderr);
    assert.match(result.stderr, /1 compile\): 0 remote, 1 local/);
  });

  it('ends as the command ended: its exit code, its signal, 127 when not found', async () => {
    const dir = await project();
    assert.equal((await muster(['build', '--', 'sh', '-c', 'exit 7'], online, dir)).code, 7);
    const killed = await muster(['build', '--', 'sh', '-c', 'kill -TERM $$'], online, dir);
    assert.equal(killed.signal, 'SIGTERM', killed.stderr);
    assert.match(killed.stderr, /muster: 0 jobs/, 'the summary comes first');
    const missing = await muster(['build', '--', 'no-such-command-here'], online, dir);
    assert.equal(missing.code, 127, missing.stderr);
    assert.match(missing.stderr, /muster: no-such-command-here: command not found/);
  });

  it('hosts a build here when the per-user service must not: another cache, or in-process asked', async () => {
    const runtime = online['XDG_RUNTIME_DIR'] ?? '';
    const hosted = (await compileServiceLog(runtime, 'hosting a build')).length;
    const dir = await project();
    const otherCache = { ...online, XDG_CACHE_HOME: await tempDir('muster-cc-xdg-') };
    const result = await muster(['build', '--json', '--', 'make', '-j2'], otherCache, dir);
    assert.match(
      result.stderr,
      /muster: the per-user compile service does not host this build \(the service's cache is .*\): hosting it here/,
    );
    // Still a build of the coordinator, served from its shared cache.
    const summary = summaryOf(result);
    assert.equal(summary.cacheHits, 7, JSON.stringify(summary));
    assert.notEqual(summary.buildId, null);
    await run('make', ['clean'], { cwd: dir });
    const inProcess = await muster(
      ['build', '--json', '--', 'make', '-j2'],
      { ...online, MUSTER_BUILD_SERVICE: 'in-process' },
      dir,
    );
    assert.equal(summaryOf(inProcess).cacheHits, 7);
    assert.doesNotMatch(inProcess.stderr, /does not host/);
    // Neither went to the service; no second service was started.
    assert.equal((await compileServiceLog(runtime, 'hosting a build')).length, hosted);
    assert.equal((await compileServicePids(runtime)).length, 1);
  });

  it('a service stopped during a build closes it first; the rest compile here, counted', async () => {
    const dir = await project();
    const script = `"${musterBin}" cc --stop && make -j2`;
    const result = await muster(['build', '--json', '--', 'sh', '-c', script], online, dir);
    const summary = summaryOf(result);
    assert.match(
      result.stderr,
      /muster: the compile service is stopping: the rest of this build compiles here/,
    );
    assert.match(result.stderr, /the compile service stopped during the build/);
    // Every compiler run after the stop (7 compiles, 2 links) ran in its launcher.
    assert.equal(summary.fallbacks, 9, JSON.stringify(summary));
    assert.deepEqual(summary.fallbackReasons, { 'no-service': 9 });
    assert.equal(summary.jobs, 9);
    await assertSameOutputs(dir, reference);
  });

  it('muster cc --stop ends the per-user service that hosted the builds', async () => {
    const runtime = online['XDG_RUNTIME_DIR'] ?? '';
    // A service of its own: a build starts it.
    assert.equal((await muster(['build', '--', 'true'], online, runtime)).code, 0);
    const pid = (await compileServicePids(runtime)).at(-1);
    assert.ok(pid !== undefined);
    const stopped = await muster(['cc', '--stop'], online, runtime);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout, `muster cc: stopped the compile service (pid ${pid})\n`);
    assert.equal(await isService(pid), false, 'the service exited');
    const again = await muster(['cc', '--stop'], online, runtime);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /no compile service runs on .*cc\.sock/);
    // A pid file left behind that names another process: that process is left alone.
    await writeFile(join(runtime, 'muster', 'cc.sock.pid'), `${process.pid}\n`);
    const stale = await muster(['cc', '--stop'], online, runtime);
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stdout, /no compile service runs on/);
  });

  it('still builds without a coordinator, every compile local and counted as a fallback', async () => {
    const dir = await project();
    const offline = {
      ...online,
      MUSTER_URL: 'https://127.0.0.1:9',
      HOME: await tempDir('muster-cc-home3-'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
    };
    const result = await muster(['build', '--json', '--', 'make', '-j2', 'check'], offline, dir);
    const summary = summaryOf(result);
    assert.equal(summary.buildId, null);
    assert.equal(summary.local, 7);
    assert.equal(summary.fallbacks, 7);
    assert.match(
      result.stderr,
      /muster: no coordinator \(.*\): every compile runs on this machine/,
    );
    assert.match(result.stderr, /7 fallbacks \(no coordinator\)/);
    await assertSameOutputs(dir, reference);
  });
});
