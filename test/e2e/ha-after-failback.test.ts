/**
 * Issue 11: after a failback in which someone logged in to the active backup, the backup failed
 * every snapshot (`UNIQUE constraint failed: api_tokens.token_hash`) and the next failover ran on
 * a stale copy. Real processes over TLS: a primary, its backup and an agent. `kill -9` of the
 * primary; the backup takes over, someone logs in to it and runs a build there; the primary comes
 * back and fails back (the backup's audit row of its takeover comes back with it); a new user and
 * a build made on the primary then reach the backup, whose replication reports no failure; a
 * second `kill -9`, and the backup serves both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditView } from '../../src/api/views/audit.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import type { UserView } from '../../src/api/views/users.js';
import { cleanup, startAgent, waitFor, type StartedAgent } from '../helpers/agent-process.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup, status, submit } from '../helpers/ha.js';

const PLAN = 'tasks:\n  hello:\n    run: echo hello\n';
const CAROL = { name: 'carol', password: 'carol-password-1', role: 'viewer' };

let agent: StartedAgent;
let primary: StartedCoordinator;
let backup: StartedCoordinator;

/** POST /login as `user` on `to`: what `muster login` does. */
async function logIn(
  to: StartedCoordinator,
  user: string,
  password: string,
): Promise<{ status: number; token?: string }> {
  const response = await fetch(`${to.url}/api/v1/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, password }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await response.json()) as { token?: string };
  return { status: response.status, token: body.token };
}

async function backupState(): Promise<StatusView['primary'] | undefined> {
  try {
    return (await status(backup)).primary;
  } catch {
    return undefined;
  }
}

/** Replication failures the backup logged since its log had `from` entries. */
function replicationFailures(from: number): string[] {
  return backup.logs
    .slice(from)
    .map((entry) => String(entry.msg))
    .filter((msg) => msg.startsWith('replication:'));
}

function startPrimary(previous?: StartedCoordinator): Promise<StartedCoordinator> {
  const options = { tls: true, args: [...FAST] };
  return previous ? restartCoordinator(previous, options) : startCoordinator(options);
}

before(async () => {
  agent = await startAgent({ args: ['--lease-ttl', '2s'] });
  primary = await startPrimary();
  await primary.addAgent('a0', agent);
  backup = await startBackup(primary, 'b1', ['--failover-timeout', '2s']);
  await selectBackup(primary, backup, 'b1');
});

after(async () => {
  await killCoordinators();
  await cleanup();
});

describe('a failback after a login on the active backup', () => {
  it(
    'leaves the backup replicating, and the next failover serves what the primary did since',
    { timeout: 240_000 },
    async () => {
      // 1. The primary dies; the backup takes over; someone logs in there and runs a build.
      await primary.kill();
      await waitFor(
        async () => (await backupState())?.state === 'active',
        30_000,
        'the backup to take over',
      );
      const madeOnBackup = await logIn(backup, 'admin', ADMIN_PASSWORD);
      assert.equal(madeOnBackup.status, 200);
      await backup.login();
      const onBackup = await submit(backup, PLAN);
      assert.equal((await backup.waitForBuild(onBackup.id)).status, 'succeeded');

      // 2. The primary comes back and takes the cluster back (the logins made on the backup too).
      // (The backup may apply its new snapshot before the failback is seen complete here.)
      const beforeFailback = backup.logs.length;
      primary = await startPrimary(primary);
      await waitFor(
        async () => {
          const seen = await backupState();
          return seen?.state === 'standby' && seen.reachable;
        },
        60_000,
        'the failback to complete',
      );
      const sinceFailback = backup.logs.length;
      assert.equal(
        (await primary.api<BuildView>('GET', `/builds/${onBackup.id}`)).body.status,
        'succeeded',
        'the failback carried the backup’s build back',
      );

      // 3. What the primary does now reaches the backup: a new user and a build.
      const created = await primary.api('POST', '/users', CAROL);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const onPrimary = await submit(primary, PLAN);
      assert.equal((await primary.waitForBuild(onPrimary.id)).status, 'succeeded');
      await waitFor(
        async () => {
          const users = await backup.api<UserView[]>('GET', '/users');
          const build = await backup.api<BuildView>('GET', `/builds/${onPrimary.id}`);
          return (
            users.status === 200 &&
            users.body.some((u) => u.name === CAROL.name) &&
            build.body.status === 'succeeded'
          );
        },
        30_000,
        `the new user and build to reach the backup (replication failures: ${JSON.stringify(replicationFailures(sinceFailback))})`,
      );
      assert.deepEqual(replicationFailures(sinceFailback), []);
      // The audit log: the agent and the selection by the admin, the backup's takeover (written on the backup,
      // handed back at failback, once) and the failback; and the primary's new row reaches the
      // backup like the rest.
      const audit = (await primary.api<AuditView[]>('GET', '/audit')).body;
      const seen = audit.map((r) => [r.actorKind, r.actor, r.action, r.target]).reverse();
      assert.deepEqual(
        seen.filter(([, , action]) => action !== 'user.create'),
        [
          ['user', 'admin', 'agent.add', 'a0'],
          ['user', 'admin', 'backup.select', 'b1'],
          ['backup', 'b1', 'ha.takeover', 'b1'],
          ['system', 'system', 'ha.failback', 'b1'],
        ],
      );
      assert.deepEqual(audit.find((r) => r.action === 'ha.failback')?.details.auditRows, 1);
      await waitFor(
        async () => {
          const copy = await backup.api<AuditView[]>('GET', '/audit');
          return copy.status === 200 && JSON.stringify(copy.body) === JSON.stringify(audit);
        },
        30_000,
        "the primary's audit log to reach the backup",
      );
      assert.ok(
        backup.logs.slice(beforeFailback).some((e) => /applied a snapshot/.test(String(e.msg))),
        'the backup took a new snapshot after the failback',
      );
      // The login made on the active backup still works there: it now goes through the
      // primary's copy of it (the backup's own row yielded to it).
      const token = madeOnBackup.token!;
      const withOldLogin = await fetch(`${backup.url}/api/v1/status`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(30_000),
      });
      assert.equal(withOldLogin.status, 200);
      assert.equal((await logIn(backup, CAROL.name, CAROL.password)).status, 200);

      // 4. The primary dies again: the backup serves from a copy that has all of it.
      await primary.kill();
      await waitFor(
        async () => (await backupState())?.state === 'active',
        30_000,
        'the backup to take over again',
      );
      assert.equal((await logIn(backup, CAROL.name, CAROL.password)).status, 200);
      const listed = (await backup.api<BuildView[]>('GET', '/builds')).body.map((b) => b.id);
      assert.ok(listed.includes(onPrimary.id), `build ${onPrimary.id} in ${listed.join(', ')}`);
      assert.ok(listed.includes(onBackup.id), `build ${onBackup.id} in ${listed.join(', ')}`);
      const again = await submit(backup, PLAN);
      assert.equal((await backup.waitForBuild(again.id)).status, 'succeeded');
    },
  );
});
