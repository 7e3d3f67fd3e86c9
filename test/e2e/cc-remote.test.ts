/**
 * Remote compiles (`muster build --placement remote`) against a real coordinator over TLS and two
 * real agents whose PATH has no compiler at all: the client's toolchain is shipped to them by
 * hash, objects are byte-identical to plain make's (examples/c-make, Lua 5.4 and TinyXML from
 * Debian's source packages, their own checks passing), a compile error reads as it does without
 * Muster, a compile that prints a warning is redone here for its exact diagnostics, and an agent
 * killed mid-compile costs a local compile, counted, never the build.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { lua, projectTree, tinyxml, type CcProject } from '../../bench/cc-projects.js';
import type { BuildView, TaskView } from '../../src/api/views/builds.js';
import {
  cleanup,
  cliPath,
  makeTempDir,
  startAgent,
  type StartedAgent,
} from '../helpers/agent-process.js';
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
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

const run = promisify(execFile);
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

const REMOTE = ['build', '--json', '--placement', 'remote', '--no-cache', '--'];
const EXAMPLE_OBJECTS = ['main', 'shapes', 'stats', 'text', 'table', 'noisy', 'wordcount'];

async function objectsUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.o')).sort();
}

describe('muster build --placement remote', () => {
  let coordinator: StartedCoordinator;
  let online: NodeJS.ProcessEnv;
  const agents = new Map<string, StartedAgent>();

  function muster(args: string[], cwd: string): Promise<CliResult> {
    return runCli(args, { env: online, cwd, timeoutMs: 300_000 });
  }

  async function buildView(id: number): Promise<BuildView & { tasks: TaskView[] }> {
    const response = await coordinator.api<BuildView & { tasks: TaskView[] }>(
      'GET',
      `/builds/${id}`,
    );
    assert.equal(response.status, 200);
    return response.body;
  }

  before(async () => {
    coordinator = await startCoordinator({ tls: true });
    // The agents' PATH has no compiler: what they run comes from the client, by hash. (The agent
    // itself needs getent and useradd by name, which are not compilers.)
    const agentEnv = await compilerlessEnv();
    for (const name of ['remote-1', 'remote-2']) {
      const agent = await startAgent({ env: agentEnv });
      agents.set(name, agent);
      await coordinator.addAgent(name, agent);
    }
    online = {
      ...localeEnv,
      PATH: process.env.PATH,
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
      MUSTER_CONFIG_DIR: await tempDir('muster-cc-remote-config-'),
      MUSTER_URL: coordinator.url,
      MUSTER_TOKEN: coordinator.token,
      HOME: await tempDir('muster-cc-remote-home-'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
    };
  });

  it('compiles on agents that have no compiler, objects identical to plain make', async () => {
    const reference = await copyOfExample('muster-cc-remote-');
    await run('make', ['-j2'], { cwd: reference, env: { ...process.env, ...localeEnv } });
    // The first build registers gcc's toolchain; until both agents have synced it, its jobs
    // compile here (counted). Build again until every compile went remote (bounded).
    const deadline = Date.now() + 180_000;
    let summary: Summary | undefined;
    let dir = '';
    const seen: string[] = [];
    while (Date.now() < deadline) {
      dir = await copyOfExample('muster-cc-remote-');
      summary = summaryOf(await muster([...REMOTE, 'make', '-j2', 'check'], dir));
      seen.push(`${summary.remote} remote/${summary.fallbacks} fallbacks`);
      if (summary.remote === 7) break;
      await sleep(1000);
    }
    assert.ok(summary !== undefined && summary.remote === 7, `builds seen: ${seen.join(', ')}`);
    assert.equal(summary.local, 0);
    assert.equal(summary.fallbacks, 0);
    assert.equal(summary.cacheHits, 0);
    await assertSameFiles(
      dir,
      reference,
      EXAMPLE_OBJECTS.flatMap((o) => [`${o}.o`, `${o}.d`]),
    );

    const build = await buildView(summary.buildId!);
    assert.equal(build.status, 'succeeded');
    assert.equal(build.tasks.length, 7);
    for (const task of build.tasks) {
      assert.equal(task.placement, 'remote', JSON.stringify(task));
      assert.equal(task.status, 'succeeded');
      assert.ok(agents.has(task.agent ?? ''), `ran on ${task.agent}`);
    }
  });

  it('prints the same diagnostics and exit code as plain make for a compile error', async () => {
    const dir = await copyOfExample('muster-cc-remote-');
    const plainDir = await copyOfExample('muster-cc-remote-');
    const args = ['CFLAGS=-O2 -Wall -DBROKEN', 'noisy.o'];
    const plain = await run('make', args, {
      cwd: plainDir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...localeEnv },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    assert.notEqual(plain.code, 0);
    const result = await muster(['build', '--placement', 'remote', '--', 'make', ...args], dir);
    assert.equal(result.code, plain.code);
    const diagnostics = result.stderr
      .split('\n')
      .filter((line) => !line.startsWith('muster: '))
      .join('\n');
    assert.equal(diagnostics, plain.stderr);
  });

  /** Plain make in one tree, `muster build --placement remote` in another: same objects. */
  async function sameAsPlainMake(project: CcProject): Promise<Summary> {
    const plainTree = await projectTree(project, await tempDir('muster-cc-plain-'));
    const tree = await projectTree(project, await tempDir('muster-cc-remote-tree-'));
    await backdate(tree);
    await run('make', project.buildArgs(2), {
      cwd: plainTree,
      env: { ...process.env, ...localeEnv },
      maxBuffer: 64 * 1024 * 1024,
    });
    const summary = summaryOf(await muster([...REMOTE, 'make', ...project.buildArgs(2)], tree));
    await project.check(tree);
    const objects = await objectsUnder(plainTree);
    assert.deepEqual(await objectsUnder(tree), objects);
    await assertSameFiles(tree, plainTree, objects);
    assert.equal(summary.remote + summary.reruns, objects.length, JSON.stringify(summary));
    assert.equal(summary.fallbacks, 0, JSON.stringify(summary));
    return summary;
  }

  it('builds Lua 5.4 from its Debian source on the agents: identical objects, lua runs', async () => {
    const summary = await sameAsPlainMake(lua);
    assert.equal(summary.remote, 34);
  });

  it('builds TinyXML (C++) on the agents; the file that warns is compiled here for its diagnostics', async () => {
    const summary = await sameAsPlainMake(tinyxml);
    assert.ok(summary.reruns >= 1, JSON.stringify(summary));
  });

  it('compiles here, counted, when the agent running a compile is killed', async () => {
    const dir = await tempDir('muster-cc-slow-');
    // A file gcc takes seconds over: time to see it running on an agent and kill that agent.
    const functions = Array.from(
      { length: 350 },
      (_, i) =>
        `uint64_t f${i}(uint64_t x) { for (int k = 0; k < ${(i % 7) + 3}; k++) x = x * 6364136223846793005u + ${i}u ^ (x >> ${(i % 31) + 1}); return x; }`,
    );
    await writeFile(
      join(dir, 'slow.c'),
      `#include <stdint.h>\n${functions.join('\n')}\nuint64_t all(uint64_t x) { return ${functions.map((_, i) => `f${i}(x)`).join(' + ')}; }\n`,
    );
    await writeFile(join(dir, 'Makefile'), 'slow.o: slow.c\n\tgcc -O2 -c slow.c -o slow.o\n');
    await backdate(dir);
    const plain = await tempDir('muster-cc-slow-plain-');
    await cp(join(dir, 'slow.c'), join(plain, 'slow.c'));
    await run('gcc', ['-O2', '-c', 'slow.c', '-o', 'slow.o'], { cwd: plain });

    const child = spawn(process.execPath, [cliPath, ...REMOTE, 'make'], {
      cwd: dir,
      env: online,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      // Find the job running on an agent, then kill that agent.
      const deadline = Date.now() + 120_000;
      let victim: string | undefined;
      while (victim === undefined && Date.now() < deadline) {
        const list = await coordinator.api<{ id: number; kind: string; status: string }[]>(
          'GET',
          '/builds?limit=5',
        );
        for (const summary of list.body) {
          if (summary.kind !== 'compile' || summary.status !== 'running') continue;
          const running = (await buildView(summary.id)).tasks.find(
            (t) => t.status === 'running' && t.placement === 'remote',
          );
          if (running?.agent) victim = running.agent;
        }
        if (victim === undefined) await sleep(100);
      }
      assert.ok(victim !== undefined, `no remote job seen running; muster said: ${stderr}`);
      await agents.get(victim)!.kill();
      agents.delete(victim);
      assert.equal(await exited, 0, stderr);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const summary = JSON.parse(stdout) as Summary;
    assert.equal(summary.compiles, 1);
    assert.equal(summary.local, 1);
    assert.equal(summary.fallbacks, 1);
    assert.match(stderr, /1 fallback \(.*agent-lost.*\)/);
    assert.deepEqual(await readFile(join(dir, 'slow.o')), await readFile(join(plain, 'slow.o')));
    const build = await buildView(summary.buildId!);
    assert.equal(build.tasks.length, 1, 'one row for the compile, settled by the local run');
    assert.equal(build.tasks[0]!.placement, 'local');
    assert.equal(build.tasks[0]!.fallback, 'agent-lost');
  });
});
