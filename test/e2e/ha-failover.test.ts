/**
 * A primary and a selected backup, with TLS on every link (coordinators on the test certificate,
 * agents on their own pinned ones): `kill -9` of the primary mid-build makes the backup take the
 * agents over and finish the build with exactly one successful attempt per task; a new build
 * runs on the backup; restarting the primary brings the agents, and everything the backup
 * recorded, back to it, and the backup stands by again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AttemptView, BuildView, LogsView } from '../../src/api/views/builds.js';
import type { BackupView } from '../../src/api/views/backups.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { runCli } from '../helpers/cli.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  testTls,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, status, submit } from '../helpers/ha.js';

let agents: StartedAgent[];
let primary: StartedCoordinator;
let backup: StartedCoordinator;
let cliDir: string;

/** The CLI as a user has it: pointed at the primary (MUSTER_URL), trusting its certificate. */
function cli(args: string[]) {
  return runCli(args, {
    env: {
      MUSTER_URL: primary.url,
      MUSTER_TOKEN: primary.token,
      MUSTER_CONFIG_DIR: cliDir,
      NODE_EXTRA_CA_CERTS: testTls().cert,
    },
    cwd: cliDir,
    timeoutMs: 60_000,
  });
}

async function attempts(of: StartedCoordinator, id: number): Promise<AttemptView[]> {
  const response = await of.api<AttemptView[]>('GET', `/builds/${id}/attempts`);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

function assertOneSuccessEach(build: BuildView, list: AttemptView[]): void {
  for (const task of build.tasks) {
    const ok = list.filter((a) => a.task === task.name && a.status === 'succeeded');
    assert.equal(
      ok.length,
      1,
      `${task.name}: ${JSON.stringify(list.filter((a) => a.task === task.name))}`,
    );
  }
}

before(async () => {
  cliDir = await makeTempDir('muster-ha-cli-');
  agents = await Promise.all([0, 1].map(() => startAgent({ args: ['--lease-ttl', '2s'] })));
  primary = await startCoordinator({ tls: true, args: [...FAST] });
  for (const [i, agent] of agents.entries()) await primary.addAgent(`a${i}`, agent);
  backup = await startCoordinator({
    tls: true,
    login: false,
    args: [
      ...FAST,
      '--backup-of',
      primary.url,
      '--backup-name',
      'b1',
      '--primary-ca',
      testTls().cert,
      '--failover-timeout',
      '3s',
    ],
  });
});

after(async () => {
  await killCoordinators();
  await cleanup([cliDir]);
});

describe('backup coordinator', () => {
  it('registers with the primary and is selected by an admin', async () => {
    await waitFor(
      async () => (await primary.api<BackupView[]>('GET', '/backups')).body.length === 1,
      15_000,
      'the backup to register',
    );
    const [listed] = (await primary.api<BackupView[]>('GET', '/backups')).body;
    assert.equal(listed?.name, 'b1');
    assert.equal(listed?.url, backup.url);
    assert.equal(listed?.selected, false);
    assert.match(listed?.fingerprint ?? '', /^[0-9A-F:]{95}$/);
    const selected = await primary.api<BackupView[]>('PUT', '/backups/selected', { name: 'b1' });
    assert.equal(selected.status, 200, JSON.stringify(selected.body));
    assert.equal(selected.body[0]?.selected, true);
    // The same credentials work on the backup once it has the primary's state.
    await backup.loginWhenReady();
    const seen = await status(backup);
    assert.equal(seen.role, 'backup-standby');
    assert.equal(seen.instanceId, (await status(primary)).instanceId);
    assert.equal(seen.primary?.selected, true);
  });

  it('refuses builds and admin changes while standing by', async () => {
    const build = await backup.api<{ error: { code: string } }>('POST', '/builds', {
      plan: 'tasks:\n  a:\n    run: "true"\n',
      files: [],
    });
    assert.equal(build.status, 503, JSON.stringify(build.body));
    assert.equal(build.body.error.code, 'STANDBY');
    const setting = await backup.api<{ error: { code: string } }>(
      'PUT',
      '/settings/Agent.InstanceId',
      { value: 'other' },
    );
    assert.equal(setting.body.error.code, 'READ_ONLY');
  });

  let running: BuildView;
  it('takes over when the primary is killed mid-build, and finishes the build', async () => {
    const steps = Array.from(
      { length: 6 },
      (_, i) =>
        `  s${i}:\n    run: echo step ${i}; sleep 1\n${i > 1 ? `    needs: [s${i - 2}]\n` : ''}`,
    ).join('');
    running = await submit(primary, `tasks:\n${steps}`);
    await primary.waitForTask(running.id, 's2', 'running');
    // Replicated up to here: the backup has the build.
    await waitFor(
      async () => (await backup.api('GET', `/builds/${running.id}`)).status === 200,
      10_000,
      'the build to reach the backup',
    );
    // The CLI learns the selected backup from the primary's answers.
    const seen = await cli(['status', '--json']);
    assert.equal(seen.code, 0, seen.stderr);
    await primary.kill();
    await waitFor(async () => (await status(backup)).role === 'backup-active', 30_000, 'takeover');
    const done = await backup.waitForBuild(running.id, 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assertOneSuccessEach(done, await attempts(backup, running.id));
  });

  let onBackup: BuildView;
  it('runs new builds on the active backup', async () => {
    onBackup = await submit(backup, 'tasks:\n  hello:\n    run: echo hello from the backup\n');
    const done = await backup.waitForBuild(onBackup.id, 30_000);
    assert.equal(done.status, 'succeeded');
    const logs = await backup.api<LogsView>('GET', `/builds/${onBackup.id}/logs`);
    assert.match(logs.body.chunks.map((c) => c.text).join(''), /hello from the backup/);
  });

  it('lets a CLI still pointed at the primary run a build on the backup', async () => {
    await writeFile(join(cliDir, 'plan.yaml'), 'tasks:\n  via-cli:\n    run: echo via the CLI\n');
    const result = await cli(['run', 'plan.yaml', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /unreachable; using its backup/);
    const build = JSON.parse(result.stdout) as BuildView;
    assert.equal(build.status, 'succeeded');
    assert.equal(
      (await backup.api<BuildView>('GET', `/builds/${build.id}`)).body.status,
      'succeeded',
    );
  });

  it('refuses every mutating admin call while active, and says so', async () => {
    const doc = (
      await backup.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json')
    ).body;
    // What clients may still do on an active backup: log in and out, upload inputs, run builds
    // (compile sessions and the shared cache's writes too: builds go on through a failover).
    const allowed = new Set([
      'post /api/v1/login',
      'post /api/v1/logout',
      'post /api/v1/session/login',
      'post /api/v1/session/logout',
      'post /api/v1/blobs/missing',
      'put /api/v1/blobs/{sha256}',
      'post /api/v1/builds',
      'post /api/v1/builds/{id}/cancel',
      'post /api/v1/compile-sessions',
      'post /api/v1/compile-sessions/{id}/records',
      'post /api/v1/compile-sessions/{id}/jobs',
      'post /api/v1/compile-sessions/{id}/close',
      'post /api/v1/cache/lookup',
      'put /api/v1/cache/entries/{key}',
      'post /api/v1/cache/manifests/{direct}',
      'post /api/v1/cache/results',
      'put /api/v1/toolchains/{id}',
    ]);
    let checked = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        // The coordinators' own routes answer the other coordinator only (security-ha tests).
        if (method === 'get' || allowed.has(`${method} ${path}`) || path.startsWith('/api/v1/ha/'))
          continue;
        const concrete = path.replace(/\{\w+\}/g, 'a0');
        const response = await backup.api<{ error: { code: string; message: string } }>(
          method.toUpperCase(),
          concrete.replace('/api/v1', ''),
          method === 'delete' ? undefined : {},
        );
        assert.equal(response.status, 403, `${method} ${path}: ${JSON.stringify(response.body)}`);
        assert.equal(response.body.error.code, 'READ_ONLY', `${method} ${path}`);
        assert.match(response.body.error.message, /primary/);
        checked++;
      }
    }
    assert.ok(checked >= 9, `only ${checked} mutating routes`);
  });

  it('hands everything back when the primary returns', async () => {
    primary = await restartCoordinator(primary, { tls: true, args: [...FAST] });
    await waitFor(
      async () => {
        const seen = await status(backup);
        return seen.primary?.state === 'standby' && seen.primary.reachable;
      },
      30_000,
      'failback',
    );
    await waitFor(
      async () => {
        const list = (await primary.api<{ status: string }[]>('GET', '/agents')).body;
        return list.every((a) => a.status === 'connected' || a.status === 'busy');
      },
      30_000,
      'the agents to return to the primary',
    );
    const first = (await primary.api<BuildView>('GET', `/builds/${running.id}`)).body;
    assert.equal(first.status, 'succeeded', JSON.stringify(first));
    assertOneSuccessEach(first, await attempts(primary, running.id));
    const second = (await primary.api<BuildView>('GET', `/builds/${onBackup.id}`)).body;
    assert.equal(second.status, 'succeeded', JSON.stringify(second));
    const logs = await primary.api<LogsView>('GET', `/builds/${onBackup.id}/logs`);
    assert.match(logs.body.chunks.map((c) => c.text).join(''), /hello from the backup/);
    // The backup follows the primary again.
    await waitFor(
      async () => (await backup.api('GET', `/builds/${onBackup.id}`)).status === 200,
      10_000,
      'the backup to take a new copy',
    );
    // And the primary runs builds again.
    const next = await submit(primary, 'tasks:\n  again:\n    run: echo back on the primary\n');
    assert.equal((await primary.waitForBuild(next.id, 30_000)).status, 'succeeded');
    assert.ok(next.id > onBackup.id, `${next.id} after ${onBackup.id}`);
  });
});
