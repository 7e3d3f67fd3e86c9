/**
 * What a user does, through the `muster` command: log in, add three agent processes, build the
 * example C program across them, get the binary back, inspect the build; and `muster up`
 * (what `npm start` runs) serving the same example.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, cliPath, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import { writeProbeExtension } from '../helpers/extensions.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
} from '../helpers/coordinator-process.js';

const example = fileURLToPath(new URL('../../../examples/c-hello/', import.meta.url));
const dirs: string[] = [];
const children: ReturnType<typeof spawn>[] = [];
after(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await killCoordinators();
  await cleanup(dirs);
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

/** `muster ARGS` with `env` on top of PATH and HOME; bounded. */
function muster(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { cwd?: string; input?: string } = {},
): Promise<CliResult> {
  return runCli(args, { env, timeoutMs: 120_000, ...options });
}

describe('muster run across three agents', () => {
  it('builds the example C program, downloads the binary and reports the build', async () => {
    const agents = await Promise.all([startAgent(), startAgent(), startAgent()]);
    const coordinator = await startCoordinator();
    const env = {
      MUSTER_CONFIG_DIR: await tempDir('muster-cli-'),
      MUSTER_URL: '',
      MUSTER_TOKEN: '',
    };
    const login = await muster(
      ['login', coordinator.url, '--user', 'admin', '--password-stdin'],
      env,
      {
        input: `${ADMIN_PASSWORD}\n`,
      },
    );
    assert.equal(login.code, 0, login.stderr);
    for (const [i, agent] of agents.entries()) {
      const added = await muster(
        [
          'agents',
          'add',
          `build-${i + 1}`,
          `127.0.0.1:${agent.port}`,
          '--access-key',
          agent.accessKey,
          '--fingerprint',
          agent.fingerprint!,
          '--labels',
          'linux,cc',
        ],
        env,
      );
      assert.equal(added.code, 0, added.stderr);
    }
    await waitFor(
      async () => {
        const list = await muster(['agents', 'list', '--json'], env);
        const rows = JSON.parse(list.stdout) as {
          name: string;
          address: string;
          status: string;
          slots: number;
          labels: string[];
        }[];
        return (
          rows.length === 3 &&
          rows.every((r) => r.status === 'connected' && r.slots > 0 && r.labels.includes('cc'))
        );
      },
      30_000,
      'three connected agents',
    );

    const work = await tempDir('muster-work-');
    await cp(example, work, { recursive: true });
    const run = await muster(['run', 'muster.yml', '--json'], env, { cwd: work });
    assert.equal(run.code, 0, run.stderr);
    const build = JSON.parse(run.stdout) as BuildView;
    assert.equal(build.status, 'succeeded');
    assert.deepEqual(build.tasks.map((t) => t.name).sort(), [
      'compile-greet',
      'compile-main',
      'compile-math',
      'compile-util',
      'link',
      'test',
    ]);
    for (const task of build.tasks) {
      assert.equal(task.status, 'succeeded');
      assert.equal(task.exitCode, 0);
      assert.equal(task.attempts, 1);
      assert.match(task.agent ?? '', /^build-[123]$/);
    }

    // The binary came back, runs, and says what the test task checked.
    const binary = join(work, 'hello');
    assert.ok(((await stat(binary)).mode & 0o100) !== 0, 'the binary is executable');
    const { stdout } = await promisify(execFile)(binary);
    assert.equal(stdout, await readFile(join(work, 'expected.txt'), 'utf8'));
    assert.ok((await stat(join(work, 'main.o'))).size > 0);

    const show = await muster(['builds', 'show', String(build.id), '--json'], env);
    assert.equal(show.code, 0, show.stderr);
    const shown = JSON.parse(show.stdout) as BuildView;
    assert.equal(shown.id, build.id);
    assert.equal(shown.status, 'succeeded');
    assert.deepEqual(
      shown.tasks.map((t) => [t.name, t.status, t.exitCode, t.agent, t.attempts]),
      build.tasks.map((t) => [t.name, t.status, t.exitCode, t.agent, t.attempts]),
    );

    const logs = await muster(['builds', 'logs', String(build.id), 'test'], env);
    assert.equal(logs.code, 0, logs.stderr);
    const list = await muster(['builds', 'list', '--json'], env);
    assert.equal((JSON.parse(list.stdout) as { id: number }[])[0]?.id, build.id);

    // A broken source fails the build: exit 1, and the failing task says why.
    await writeFile(join(work, 'math.c'), 'this is not C\n');
    const failed = await muster(['run', 'muster.yml', '--json'], env, { cwd: work });
    assert.equal(failed.code, 1, failed.stderr);
    const failedBuild = JSON.parse(failed.stdout) as BuildView;
    assert.equal(failedBuild.status, 'failed');
    assert.equal(failedBuild.tasks.find((t) => t.name === 'compile-math')?.status, 'failed');
    assert.equal(failedBuild.tasks.find((t) => t.name === 'link')?.status, 'skipped');

    // A user extension: added through the CLI, shipped to the agents, used by a plan.
    const probe = await writeProbeExtension(await tempDir('muster-ext-'), 'v7');
    const addExt = await muster(['extensions', 'add', probe], env);
    assert.equal(addExt.code, 0, addExt.stderr);
    const extensions = JSON.parse((await muster(['extensions', 'list', '--json'], env)).stdout) as {
      name: string;
      version: string;
    }[];
    assert.deepEqual(extensions.map((e) => [e.name, e.version]).sort(), [
      ['cc', '0.1.0'],
      ['core', '0.1.0'],
      ['probe', 'v7'],
    ]);
    const extWork = await tempDir('muster-work-');
    await writeFile(join(extWork, 'muster.yml'), 'tasks:\n  who:\n    uses: probe/whoami\n');
    const extRun = await muster(['run', '--json'], env, { cwd: extWork });
    assert.equal(extRun.code, 0, extRun.stderr);
    const extBuild = JSON.parse(extRun.stdout) as BuildView;
    const extLogs = await muster(['builds', 'logs', String(extBuild.id), 'who'], env);
    assert.match(extLogs.stdout, /v7/);
  });
});

describe('muster up', () => {
  it('runs a coordinator with local agents that build the example', async () => {
    const data = await tempDir('muster-up-');
    const up = spawn(
      process.execPath,
      [cliPath, 'up', '--data', data, '--port', '0', '--agents', '2'],
      {
        env: { ...process.env, MUSTER_ADMIN_PASSWORD: 'up-password' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(up);
    let stderr = '';
    up.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    up.stdout.resume();
    await waitFor(() => /Muster is up: (http\S+)/.test(stderr), 60_000, 'muster up');
    const url = /Muster is up: (http\S+)/.exec(stderr)![1]!;
    assert.match(stderr, /password {2}up-password/);
    const env = {
      MUSTER_CONFIG_DIR: await tempDir('muster-cli-'),
      MUSTER_URL: '',
      MUSTER_TOKEN: '',
    };
    assert.equal(
      (await muster(['login', url, '--password-stdin'], env, { input: 'up-password\n' })).code,
      0,
    );
    await waitFor(
      async () => {
        const status = JSON.parse((await muster(['status', '--json'], env)).stdout) as {
          role: string;
          agents: { connected: number };
        };
        return status.role === 'primary' && status.agents.connected === 2;
      },
      30_000,
      'two local agents',
    );
    const work = await tempDir('muster-work-');
    await cp(example, work, { recursive: true });
    const run = await muster(['run'], env, { cwd: work });
    assert.equal(run.code, 0, run.stderr);
    assert.ok((await stat(join(work, 'hello'))).size > 0);
    const exited = new Promise((resolve) => up.once('exit', resolve));
    up.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
