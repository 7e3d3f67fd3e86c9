/**
 * `CC="muster cc gcc" make` outside `muster build`, as a user runs it: the native launcher starts
 * the per-user compile service on demand, the objects are plain make's, the compiles join a
 * working-session build on the coordinator the user is logged in to, the stats count them, and
 * the service ends its session when it stops.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { BuildSummary, BuildView } from '../../src/api/views/builds.js';
import { cleanup, makeTempDir, waitFor } from '../helpers/agent-process.js';
import { copyOfExample } from '../helpers/cc-example.js';
import { runCli } from '../helpers/cli.js';
import { killCoordinators, startCoordinator } from '../helpers/coordinator-process.js';

const run = promisify(execFile);
const musterBin = fileURLToPath(new URL('../../../bin/muster', import.meta.url));
const dirs: string[] = [];
const daemons: number[] = [];
const runtimes: string[] = [];
after(async () => {
  // A service the launcher started is ended by its pid (from its log), even after a failure.
  for (const runtime of runtimes) daemons.push(await servicePid(runtime).catch(() => 0));
  for (const pid of daemons.filter((p) => p > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  await killCoordinators();
  await cleanup(dirs);
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

function project(): Promise<string> {
  return copyOfExample('muster-cc-launcher-');
}

/** The pid of the service the launcher started, from its log next to the socket. */
async function servicePid(runtime: string): Promise<number> {
  const text = await readFile(join(runtime, 'muster', 'cc-serve.log'), 'utf8');
  const line = text.split('\n').find((l) => l.includes('compile service listening'));
  assert.ok(line !== undefined, text);
  return (JSON.parse(line) as { pid: number }).pid;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('CC="muster cc gcc" make', () => {
  it('starts the service on demand; compiles join a working session on the coordinator', async () => {
    const coordinator = await startCoordinator({ tls: true });
    const runtime = await tempDir('muster-cc-runtime-');
    await mkdir(runtime, { recursive: true, mode: 0o700 });
    runtimes.push(runtime);
    const env = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
      HOME: await tempDir('muster-cc-home-'),
      XDG_RUNTIME_DIR: runtime,
      MUSTER_CONFIG_DIR: await tempDir('muster-cc-config-'),
      MUSTER_URL: coordinator.url,
      MUSTER_TOKEN: coordinator.token,
    };
    const dir = await project();
    const reference = await project();
    await run('make', ['-j2'], { cwd: reference, env: { PATH: process.env.PATH } });

    const vars = [`CC=${musterBin} cc gcc`, `CXX=${musterBin} cc g++`];
    await run('make', ['-j2', ...vars, 'check'], { cwd: dir, env, timeout: 240_000 });
    const pid = await servicePid(runtime);
    daemons.push(pid);
    for (const name of ['main', 'shapes', 'stats', 'text', 'table', 'noisy', 'wordcount'])
      for (const suffix of ['.o', '.d'])
        assert.deepEqual(
          await readFile(join(dir, name + suffix)),
          await readFile(join(reference, name + suffix)),
          `${name}${suffix}`,
        );

    // The working session shows the seven compiles while it is open.
    let session: BuildSummary | undefined;
    await waitFor(
      async () => {
        const listed = await coordinator.api<BuildSummary[]>('GET', '/builds');
        session = listed.body.find((b) => (b as { kind?: string }).kind === 'compile');
        if (session === undefined) return false;
        const build = await coordinator.api<BuildView>('GET', `/builds/${session.id}`);
        return build.body.tasks.length === 7;
      },
      30_000,
      'the working session to list 7 compiles',
    );
    const stats = await runCli(['cc', '--show-stats', '--json'], { env });
    const counted = JSON.parse(stats.stdout) as { compiles: number; local: number };
    assert.equal(counted.compiles, 7);
    assert.equal(counted.local, 7);

    // A stopped service ends its session: the build finishes (succeeded: no compile failed).
    process.kill(pid, 'SIGTERM');
    await waitFor(async () => !isRunning(pid), 30_000, 'the service to exit');
    const ended = await coordinator.api<BuildView>('GET', `/builds/${session!.id}`);
    assert.equal(ended.body.status, 'succeeded');
    assert.equal((ended.body as { summary?: { jobs: number } }).summary?.jobs, 7);
  });
});
