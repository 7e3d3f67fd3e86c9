/**
 * Clearing `Agent.InstanceId` takes a coordinator back to being keyed by its source address:
 * `muster settings set Agent.InstanceId ''` (or `unset`) stores it cleared, the agents reconnect
 * without an id (the agent's instance list shows the address-keyed instance connected), builds
 * still run under the cluster lease, a restart does not make a new id, and setting an id again
 * works.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, startAgent, waitFor, type StartedAgent } from '../helpers/agent-process.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { submit } from '../helpers/ha.js';

let coordinator: StartedCoordinator;
let agent: StartedAgent;
const dirs: string[] = [];

function muster(args: string[]): Promise<CliResult> {
  return runCli(args, {
    env: { MUSTER_URL: coordinator.url, MUSTER_TOKEN: coordinator.token },
    timeoutMs: 60_000,
  });
}

/** The instances the agent has a live connection of, by key. */
async function connectedInstances(): Promise<string[]> {
  const result = await runCli(['agent', 'instances', '--data', agent.dataDir, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const rows = JSON.parse(result.stdout) as { key: string; connections: number | null }[];
  return rows.filter((r) => (r.connections ?? 0) > 0).map((r) => r.key);
}

async function buildRuns(): Promise<void> {
  const build = await submit(coordinator, 'tasks:\n  hello:\n    run: echo hello\n');
  assert.equal((await coordinator.waitForBuild(build.id, 60_000)).status, 'succeeded');
}

before(async () => {
  agent = await startAgent();
  dirs.push(agent.dataDir);
  coordinator = await startCoordinator();
  await coordinator.addAgent('a1', agent);
});

after(async () => {
  await killCoordinators();
  await cleanup(dirs);
});

describe('clearing Agent.InstanceId', () => {
  it('goes back to keying by source address, and to an id again', async () => {
    const id = (await coordinator.api<StatusView>('GET', '/status')).body.instanceId;
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    await waitFor(
      async () => (await connectedInstances()).includes(`muster@id:${id}`),
      30_000,
      'the coordinator to connect with its id',
    );

    const cleared = await muster(['settings', 'set', 'Agent.InstanceId', '']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal(cleared.stdout, 'Agent.InstanceId = \n');
    const got = await muster(['settings', 'get', 'Agent.InstanceId', '--json']);
    assert.equal((JSON.parse(got.stdout) as { value: unknown }).value, '');
    await waitFor(
      async () => {
        const keys = await connectedInstances();
        return keys.includes('muster@ip:127.0.0.1') && !keys.includes(`muster@id:${id}`);
      },
      30_000,
      'the agent to reconnect keyed by address',
    );
    await buildRuns();
    const text = await muster(['status']);
    assert.match(
      text.stdout,
      /^Instance id +none \(cleared: agents key this coordinator by its source address\)$/m,
    );

    // A restart keeps it cleared (no new id is made).
    await coordinator.stop();
    coordinator = await restartCoordinator(coordinator);
    assert.equal((await coordinator.api<StatusView>('GET', '/status')).body.instanceId, '');
    await waitFor(
      async () => (await connectedInstances()).includes('muster@ip:127.0.0.1'),
      30_000,
      'the restarted coordinator to connect keyed by address',
    );

    const set = await muster(['settings', 'set', 'Agent.InstanceId', 'ci-coordinator']);
    assert.equal(set.code, 0, set.stderr);
    await waitFor(
      async () => (await connectedInstances()).includes('muster@id:ci-coordinator'),
      30_000,
      'the agent to reconnect keyed by the new id',
    );
    await buildRuns();

    const unset = await muster(['settings', 'unset', 'Agent.InstanceId']);
    assert.equal(unset.code, 0, unset.stderr);
    assert.equal(unset.stdout, 'Agent.InstanceId cleared\n');
    assert.equal(
      (await coordinator.api<{ value: unknown }>('GET', '/settings/Agent.InstanceId')).body.value,
      '',
    );
    // Ids that are not empty are still checked.
    const bad = await coordinator.api<{ error: { code: string } }>(
      'PUT',
      '/settings/Agent.InstanceId',
      { value: 'not valid' },
    );
    assert.equal(bad.body.error.code, 'VALIDATION_FAILED');
  });
});
