/** What the high-availability tests share: fast timings, submitting, status, selecting a backup. */
import assert from 'node:assert/strict';
import type { BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import { waitFor } from './agent-process.js';
import { startCoordinator, type StartedCoordinator } from './coordinator-process.js';

/** Heartbeats fast enough for tests: coordinators check on each other every 300 ms. */
export const FAST = ['--ha-heartbeat', '300ms', '--heartbeat-interval', '500ms'];

export async function submit(to: StartedCoordinator, plan: string): Promise<BuildView> {
  const response = await to.api<BuildView>('POST', '/builds', { plan, files: [] });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body;
}

export async function status(of: StartedCoordinator): Promise<StatusView> {
  return (await of.api<StatusView>('GET', '/status')).body;
}

/** Selects the backup once it has registered, then logs in to it once it holds the state. */
export async function selectBackup(
  primary: StartedCoordinator,
  backup: StartedCoordinator,
  name: string,
): Promise<void> {
  await waitFor(
    async () => (await primary.api('PUT', '/backups/selected', { name })).status === 200,
    15_000,
    `backup ${name} to register`,
  );
  await backup.loginWhenReady();
}

/** A backup of `primary` over TLS with the fast timings; it logs in once it holds the state. */
export function startBackup(
  primary: StartedCoordinator,
  name: string,
  args: string[] = [],
  options: { listen?: string } = {},
): Promise<StartedCoordinator> {
  return startCoordinator({
    tls: true,
    login: false,
    ...options,
    args: [...FAST, '--backup-of', primary.url, '--backup-name', name, ...args],
  });
}
