/**
 * Partitions, with TLS on every link. The primary↔backup link runs through TCP proxies the test
 * cuts: with the agents still reaching the primary, the backup must not take over and no task
 * may run twice. Then the primary is cut from everything (SIGSTOP: its sockets stay open and go
 * silent, as in a partition, and it resumes later believing what it believed): the backup takes
 * over, the returning primary is fenced off by the agents, takes the cluster back, and every
 * task ran exactly once.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AttemptView, BuildView } from '../../src/api/views/builds.js';
import {
  cleanup,
  makeSharedDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import {
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, status, submit } from '../helpers/ha.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

let agents: StartedAgent[];
let primary: StartedCoordinator;
let backup: StartedCoordinator;
let toPrimary: TcpProxy;
let toBackup: TcpProxy;
let markers: string;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A chain of tasks that each append one line per run to their own marker file. */
function markedPlan(prefix: string, count: number): string {
  return `tasks:\n${Array.from(
    { length: count },
    (_, i) =>
      `  ${prefix}${i}:\n    run: echo ran >> ${join(markers, `${prefix}${i}`)}; sleep 1\n${
        i > 1 ? `    needs: [${prefix}${i - 2}]\n` : ''
      }`,
  ).join('')}`;
}

/** Every task of the plan ran exactly once (one line in its marker file). */
async function assertRanOnce(prefix: string, count: number): Promise<void> {
  const names = (await readdir(markers)).filter((n) => n.startsWith(prefix));
  assert.equal(names.length, count, `markers: ${names.join(', ')}`);
  for (const name of names) {
    const lines = (await readFile(join(markers, name), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 1, `${name} ran ${lines.length} times`);
  }
}

before(async () => {
  markers = await makeSharedDir('muster-ha-markers-');
  agents = await Promise.all([0, 1].map(() => startAgent({ args: ['--lease-ttl', '2s'] })));
  primary = await startCoordinator({ tls: true, args: [...FAST] });
  for (const [i, agent] of agents.entries()) await primary.addAgent(`a${i}`, agent);
  toPrimary = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(primary.url).port) });
  const backupPort = await freePort();
  toBackup = await startTcpProxy({ host: '127.0.0.1', port: backupPort });
  backup = await startCoordinator({
    tls: true,
    login: false,
    listen: `127.0.0.1:${backupPort}`,
    args: [
      ...FAST,
      '--backup-of',
      toPrimary.url('https'),
      '--advertise-url',
      toBackup.url('https'),
      '--backup-name',
      'b1',
      '--failover-timeout',
      '3s',
    ],
  });
  await selectBackup(primary, backup, 'b1');
});

after(async () => {
  if (process.env.MUSTER_TEST_DEBUG) {
    for (const l of backup.logs) console.log('B', JSON.stringify(l).slice(0, 300));
    for (const l of primary.logs.slice(-20)) console.log('P', JSON.stringify(l).slice(0, 300));
  }
  // A stopped primary cannot be killed until it runs again.
  primary.process.kill('SIGCONT');
  await killCoordinators();
  await Promise.all([toPrimary?.close(), toBackup?.close()]);
  await cleanup([markers]);
});

describe('partitions', () => {
  it('does not take over when only the primary↔backup link is cut', async () => {
    const build = await submit(primary, markedPlan('cut', 6));
    await primary.waitForTask(build.id, 'cut1', 'running');
    toPrimary.cut();
    toBackup.cut();
    // Longer than the failover timeout and two lease lifetimes: the backup tries, and is fenced.
    const roles = new Set<string>();
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      roles.add((await status(backup)).role);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual([...roles], ['backup-standby']);
    assert.ok(
      backup.logs.some((l) => String(l.msg).includes('taking over the agents')),
      'the backup should have tried',
    );
    const done = await primary.waitForBuild(build.id, 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    await assertRanOnce('cut', 6);
    // Healed: the backup stands by and catches up.
    toPrimary.heal();
    toBackup.heal();
    await waitFor(
      async () => {
        const seen = await backup.api<BuildView>('GET', `/builds/${build.id}`);
        return seen.body.status === 'succeeded';
      },
      20_000,
      'the backup to catch up',
    );
    assert.equal((await status(backup)).role, 'backup-standby');
  });

  it('takes over when the primary is cut from everything, and nothing runs twice', async () => {
    const build = await submit(primary, markedPlan('stop', 6));
    await primary.waitForTask(build.id, 'stop1', 'running');
    await waitFor(
      async () => (await backup.api('GET', `/builds/${build.id}`)).status === 200,
      10_000,
      'the build to reach the backup',
    );
    primary.process.kill('SIGSTOP');
    await waitFor(async () => (await status(backup)).role === 'backup-active', 30_000, 'takeover');
    const onBackup = await backup.waitForBuild(build.id, 60_000);
    assert.equal(onBackup.status, 'succeeded', JSON.stringify(onBackup));
    // The primary wakes up believing it still runs the cluster; the agents fence it off.
    primary.process.kill('SIGCONT');
    await waitFor(async () => (await status(backup)).role === 'backup-standby', 30_000, 'failback');
    const onPrimary = await primary.waitForBuild(build.id, 30_000);
    assert.equal(onPrimary.status, 'succeeded', JSON.stringify(onPrimary));
    const attempts = (await primary.api<AttemptView[]>('GET', `/builds/${build.id}/attempts`)).body;
    for (const task of onPrimary.tasks) {
      assert.equal(
        attempts.filter((a) => a.task === task.name && a.status === 'succeeded').length,
        1,
        `${task.name}: ${JSON.stringify(attempts.filter((a) => a.task === task.name))}`,
      );
    }
    await assertRanOnce('stop', 6);
  });
});
