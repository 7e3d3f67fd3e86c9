/**
 * The scheduler's promises with real processes: `requires` labels pick the agent, `retries`
 * re-runs a failing task, `timeout` kills a task that runs too long, cancelling a build kills
 * its remote processes, and an agent added later picks up queued work.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AttemptView, BuildView, LogsView } from '../../src/api/views/builds.js';
import { cleanup, startAgent, waitFor, type StartedAgent } from '../helpers/agent-process.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

let coordinator: StartedCoordinator;
let plain: StartedAgent;
let special: StartedAgent;
const markers: string[] = [];

before(async () => {
  [plain, special] = await Promise.all([startAgent(), startAgent()]);
  coordinator = await startCoordinator();
  await coordinator.addAgent('plain', plain, ['linux']);
  await coordinator.addAgent('special', special, ['linux', 'gpu']);
});

after(async () => {
  await killCoordinators();
  await cleanup(markers);
});

async function submit(plan: string): Promise<BuildView> {
  const response = await coordinator.api<BuildView>('POST', '/builds', { plan, files: [] });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body;
}

describe('scheduling', () => {
  it('runs tasks only on agents with every required label', async () => {
    const tasks = Array.from(
      { length: 6 },
      (_, i) => `  gpu-${i}:\n    run: "true"\n    requires: [gpu]\n`,
    ).join('');
    const build = await submit(`tasks:\n${tasks}`);
    const done = await coordinator.waitForBuild(build.id);
    assert.equal(done.status, 'succeeded');
    assert.ok(
      done.tasks.every((t) => t.agent === 'special'),
      JSON.stringify(done.tasks.map((t) => t.agent)),
    );
  });

  it('queues a task no agent can take until one that can is added', async () => {
    const build = await submit('tasks:\n  arm:\n    run: echo on arm\n    requires: [arm64]\n');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(
      (await coordinator.api<BuildView>('GET', `/builds/${build.id}`)).body.tasks[0]!.status,
      'queued',
    );
    // /metrics shows the waiting task and its build.
    const metrics = await (await fetch(`${coordinator.url}/metrics`)).text();
    assert.match(metrics, /^muster_tasks_queued 1$/m);
    assert.match(metrics, /^muster_builds_active 1$/m);
    assert.match(metrics, /^muster_cache_entries \d+$/m);
    const arm = await startAgent();
    await coordinator.addAgent('arm', arm, ['arm64']);
    const done = await coordinator.waitForBuild(build.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.tasks[0]!.agent, 'arm');
  });

  it('retries a failing task up to `retries` times', async () => {
    const marker = join(tmpdir(), `muster-retry-${randomBytes(6).toString('hex')}`);
    markers.push(marker);
    // Fails on the first run, succeeds on the second (the marker survives between attempts).
    const build = await submit(
      `tasks:\n  flaky:\n    run: if [ -e ${marker} ]; then echo second; else touch ${marker}; echo first; exit 3; fi\n    retries: 1\n  never:\n    run: exit 4\n    retries: 2\n`,
    );
    const done = await coordinator.waitForBuild(build.id);
    assert.equal(done.status, 'failed');
    const flaky = done.tasks.find((t) => t.name === 'flaky')!;
    assert.deepEqual([flaky.status, flaky.attempts, flaky.exitCode], ['succeeded', 2, 0]);
    const never = done.tasks.find((t) => t.name === 'never')!;
    assert.deepEqual([never.status, never.attempts, never.exitCode], ['failed', 3, 4]);
    const attempts = (await coordinator.api<AttemptView[]>('GET', `/builds/${build.id}/attempts`))
      .body;
    assert.deepEqual(
      attempts.filter((a) => a.task === 'flaky').map((a) => [a.number, a.status, a.exitCode]),
      [
        [1, 'failed', 3],
        [2, 'succeeded', 0],
      ],
    );
    const logs = (await coordinator.api<LogsView>('GET', `/builds/${build.id}/logs?task=flaky`))
      .body;
    assert.deepEqual(
      logs.chunks.map((c) => [c.attempt, c.text]),
      [
        [1, 'first\n'],
        [2, 'second\n'],
      ],
    );
  });

  it('kills a task that runs past its timeout', async () => {
    const build = await submit('tasks:\n  slow:\n    run: sleep 30\n    timeout: 1s\n');
    const done = await coordinator.waitForBuild(build.id, 30_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.tasks[0]!.status, 'failed');
    const attempts = (await coordinator.api<AttemptView[]>('GET', `/builds/${build.id}/attempts`))
      .body;
    assert.equal(attempts[0]!.status, 'timed-out');
  });

  it('cancels a build: running processes are killed, queued tasks never start', async () => {
    const pidFile = join(tmpdir(), `muster-cancel-${randomBytes(6).toString('hex')}`);
    markers.push(pidFile);
    const build = await submit(
      `tasks:\n  long:\n    run: echo $$ > ${pidFile}; sleep 60\n  after:\n    run: echo never\n    needs: [long]\n`,
    );
    await waitFor(() => existsSync(pidFile), 20_000, 'the task to start');
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    const cancel = await coordinator.api<BuildView>('POST', `/builds/${build.id}/cancel`);
    assert.equal(cancel.status, 200);
    const done = await coordinator.waitForBuild(build.id, 30_000);
    assert.equal(done.status, 'cancelled');
    assert.deepEqual(
      done.tasks.map((t) => [t.name, t.status]),
      [
        ['long', 'cancelled'],
        ['after', 'cancelled'],
      ],
    );
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      10_000,
      'the remote process to be gone',
    );
  });
});
