/**
 * Several backups, TLS on every link: any number register, one is selected and only it gets
 * the state; a backup that is not selected (even one that was, earlier) stays idle when the
 * selected one and the primary are both dead, across its own restart; and a primary deselects
 * a selected backup it has not reached for the (shortened) deselection period, saying so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BackupView } from '../../src/api/views/backups.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, startAgent, waitFor, type StartedAgent } from '../helpers/agent-process.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST } from '../helpers/ha.js';

let agent: StartedAgent;
let primary: StartedCoordinator;
const backups: Record<string, StartedCoordinator> = {};

function startBackup(name: string, dataDir?: string): Promise<StartedCoordinator> {
  return startCoordinator({
    tls: true,
    login: false,
    ...(dataDir ? { dataDir } : {}),
    args: [...FAST, '--backup-of', primary.url, '--backup-name', name, '--failover-timeout', '2s'],
  });
}

async function list(): Promise<BackupView[]> {
  const response = await primary.api<BackupView[]>('GET', '/backups');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

async function readyz(of: StartedCoordinator): Promise<{ status: number; role: string }> {
  const response = await fetch(`${of.url}/readyz`, { signal: AbortSignal.timeout(5000) });
  const body = (await response.json()) as { role: string };
  return { status: response.status, role: body.role };
}

before(async () => {
  agent = await startAgent({ args: ['--lease-ttl', '2s'] });
  primary = await startCoordinator({ tls: true, args: [...FAST, '--deselect-after', '4s'] });
  await primary.addAgent('a0', agent);
  backups.b1 = await startBackup('b1');
  backups.b2 = await startBackup('b2');
});

after(async () => {
  await killCoordinators();
  await cleanup();
});

describe('several backups', () => {
  it('lists every registered backup; only the selected one gets the state', async () => {
    await waitFor(async () => (await list()).length === 2, 15_000, 'both backups to register');
    assert.deepEqual(
      (await list()).map((b) => [b.name, b.selected, b.health]),
      [
        ['b1', false, 'healthy'],
        ['b2', false, 'healthy'],
      ],
    );
    // b2 first: it gets a copy, then the admin switches to b1.
    await primary.api('PUT', '/backups/selected', { name: 'b2' });
    await backups.b2!.loginWhenReady();
    const build = await primary.api<BuildView>('POST', '/builds', {
      plan: 'tasks:\n  one:\n    run: echo one\n',
      files: [],
    });
    await primary.waitForBuild(build.body.id);
    const switched = await primary.api<BackupView[]>('PUT', '/backups/selected', { name: 'b1' });
    assert.deepEqual(
      switched.body.map((b) => [b.name, b.selected]),
      [
        ['b1', true],
        ['b2', false],
      ],
    );
    await backups.b1!.loginWhenReady();
    const seen = await backups.b1!.api<BuildView>('GET', `/builds/${build.body.id}`);
    assert.equal(seen.body.status, 'succeeded');
    await waitFor(
      async () =>
        (await backups.b2!.api<StatusView>('GET', '/status')).body.primary?.selected === false,
      10_000,
      'b2 to learn it is not selected',
    );
    // A second build reaches b1, not b2 (its stream stopped).
    const second = await primary.api<BuildView>('POST', '/builds', {
      plan: 'tasks:\n  two:\n    run: echo two\n',
      files: [],
    });
    await primary.waitForBuild(second.body.id);
    await waitFor(
      async () => (await backups.b1!.api('GET', `/builds/${second.body.id}`)).status === 200,
      10_000,
      'the build to reach b1',
    );
    assert.equal((await backups.b2!.api('GET', `/builds/${second.body.id}`)).status, 404);
  });

  it('does not engage a backup that is not selected when the selected one is dead too', async () => {
    const b2Dir = backups.b2!.dataDir;
    await backups.b1!.kill();
    await primary.kill();
    // b2 restarts with the primary gone: it must remember it is not selected.
    await backups.b2!.kill();
    backups.b2 = await startBackup('b2', b2Dir);
    const until = Date.now() + 7000;
    while (Date.now() < until) {
      assert.equal((await readyz(backups.b2)).role, 'backup-standby');
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(
      !backups.b2.logs.some((l) => String(l.msg).includes('taking over')),
      'b2 tried to take over',
    );
  });

  it('deselects a selected backup out of touch for the deselection period', async () => {
    primary = await restartCoordinator(primary, {
      tls: true,
      // Long enough that a loaded machine still sees the selection survive the restart.
      args: [...FAST, '--deselect-after', '10s'],
    });
    assert.equal((await list()).find((b) => b.name === 'b1')?.selected, true);
    await waitFor(
      async () => (await list()).every((b) => !b.selected),
      30_000,
      'the primary to deselect b1',
    );
    const status = (await primary.api<StatusView>('GET', '/status')).body;
    assert.equal(status.backup, null);
    // Status says which backup went, and why.
    assert.equal(status.lastDeselected?.name, 'b1');
    assert.equal(status.lastDeselected?.reason, 'not reached for 10 s');
    // The log line reaches this process through a pipe: it may arrive after the API shows it.
    await waitFor(
      () =>
        primary.logs.some((l) => /backup b1 deselected: not reached for 10 s/.test(String(l.msg))),
      10_000,
      'the deselection to be logged',
    );
    // Recorded in the HA state (not a user setting): /status shows it, /settings does not.
    const settings = await primary.api<Record<string, unknown>>('GET', '/settings');
    for (const key of Object.keys(settings.body))
      assert.doesNotMatch(key, /^(Backup|HA|Cluster)\./, `${key} is not a user setting`);
  });
});
