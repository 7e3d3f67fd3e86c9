/**
 * Task identity across coordinators and failovers, with real processes and TLS on every link:
 *
 * - Two independent coordinators given one `Agent.InstanceId`: the second is refused by the
 *   shared agent (`INSTANCE_BOUND`), says so in its agent list and its log, and its build waits
 *   for another agent instead of failing; the first one's builds are untouched.
 * - A double failure: the primary is killed mid-build, the backup takes over and starts attempts
 *   of its own, the backup is killed -9, the primary returns without the backup's history. Every
 *   task ends succeeded (re-attached, adopted or retried), none fails for an id it already used
 *   (`TASK_EXISTS`), and no task's runs overlap (a marker file per task records each run's start
 *   and end). When the backup comes back, the build it created is handed back and finishes too.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentView } from '../../src/api/views/agents.js';
import type { AttemptView, BuildView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import {
  cleanup,
  makeSharedDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup, status, submit } from '../helpers/ha.js';

let markers: string;
const agents: StartedAgent[] = [];

before(async () => {
  markers = await makeSharedDir('muster-task-identity-');
});

after(async () => {
  await killCoordinators();
  await Promise.all(agents.map((a) => a.stop()));
  await cleanup([markers]);
});

/** A task that records its start and end in its marker file, so overlapping runs show. */
function marked(name: string, seconds: number, needs: string[] = []): string {
  const file = join(markers, name);
  return (
    `  ${name}:\n    run: echo start >> ${file}; sleep ${seconds}; echo end >> ${file}\n` +
    (needs.length > 0 ? `    needs: [${needs.join(', ')}]\n` : '')
  );
}

/** How many times the task ran; fails when two runs overlapped or one did not end. */
async function runsOf(name: string): Promise<number> {
  const lines = (await readFile(join(markers, name), 'utf8')).trim().split('\n');
  const expected = lines.map((_, i) => (i % 2 === 0 ? 'start' : 'end'));
  assert.deepEqual(lines, expected, `${name}: runs overlapped or did not end`);
  return lines.length / 2;
}

async function attempts(of: StartedCoordinator, id: number): Promise<AttemptView[]> {
  const response = await of.api<AttemptView[]>('GET', `/builds/${id}/attempts`);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

/** Every task succeeded, no attempt failed, and nothing mentions a task id already in use. */
async function assertClean(of: StartedCoordinator, build: BuildView): Promise<AttemptView[]> {
  const list = await attempts(of, build.id);
  const seen = JSON.stringify({ build, list });
  assert.equal(build.status, 'succeeded', seen);
  assert.ok(
    build.tasks.every((t) => t.status === 'succeeded'),
    seen,
  );
  assert.deepEqual(
    list.filter((a) => a.status === 'failed'),
    [],
    seen,
  );
  assert.doesNotMatch(seen, /TASK_EXISTS|already exists/);
  return list;
}

describe('two coordinators configured with one Agent.InstanceId', () => {
  it(
    "refuses the second one clearly; neither one's builds fail",
    { timeout: 120_000 },
    async () => {
      const shared = await startAgent();
      const own = await startAgent();
      agents.push(shared, own);
      const first = await startCoordinator({ tls: true });
      const second = await startCoordinator({ tls: true });
      await first.addAgent('shared', shared);
      const early = await submit(first, `tasks:\n${marked('first-1', 0.2)}`);
      assert.equal((await first.waitForBuild(early.id)).status, 'succeeded');

      // The mistake: the second coordinator is given the first one's instance id.
      const instanceId = (await status(first)).instanceId;
      assert.ok(instanceId);
      const set = await second.api('PUT', '/settings/Agent.InstanceId', { value: instanceId });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      await second.addAgent('shared', shared);
      const waiting = await submit(second, `tasks:\n${marked('second-1', 0.2)}`);
      let refused: AgentView | undefined;
      await waitFor(
        async () => {
          const list = (await second.api<AgentView[]>('GET', '/agents')).body;
          refused = list.find((a) => a.name === 'shared' && a.status === 'refused');
          return refused !== undefined;
        },
        30_000,
        'the shared agent to refuse the second coordinator',
      );
      // Named in words, in the agent list, the coordinator's log and the agent's log.
      assert.match(refused?.lastError ?? '', /belongs to another coordinator/);
      assert.match(refused?.lastError ?? '', /Agent\.InstanceId/);
      // The log line travels over the process's stdout: it may land just after the agent list.
      await waitFor(
        async () =>
          second.logs.some(
            (l) =>
              l.level === 40 && l.code === 'INSTANCE_BOUND' && /agent refused/.test(String(l.msg)),
          ),
        10_000,
        'a warning in the second coordinator log',
      );
      assert.ok(
        shared.logs.some((l) => /instance claim refused/.test(String(l.msg))),
        'a warning in the agent log',
      );
      // Meanwhile the first coordinator goes on using the agent.
      const during = await submit(first, `tasks:\n${marked('first-2', 0.2)}`);
      assert.equal((await first.waitForBuild(during.id)).status, 'succeeded');
      // The second one's build waits (no agent it may use), then runs on an agent of its own.
      const still = (await second.api<BuildView>('GET', `/builds/${waiting.id}`)).body;
      assert.ok(['queued', 'running'].includes(still.status), JSON.stringify(still));
      assert.equal(still.tasks[0]?.status, 'queued', JSON.stringify(still));
      await second.addAgent('own', own);
      const done = await second.waitForBuild(waiting.id);
      await assertClean(second, done);
      assert.equal(done.tasks[0]?.agent, 'own');
      for (const name of ['first-1', 'first-2', 'second-1']) assert.equal(await runsOf(name), 1);
    },
  );
});

describe('a double failure: the active backup dies, the primary returns', () => {
  it(
    'ends every task succeeded, none failed for a task id in use, no task run twice at once',
    { timeout: 240_000 },
    async () => {
      const agent = await startAgent({ args: ['--lease-ttl', '2s'] });
      agents.push(agent);
      let primary = await startCoordinator({ tls: true, args: [...FAST] });
      // Four slots whatever the machine's cores: b, c and the backup's own build run at once.
      const added = await primary.api('POST', '/agents', {
        name: 'a0',
        address: `127.0.0.1:${agent.port}`,
        accessKey: agent.accessKey,
        fingerprint: agent.fingerprint,
        slots: 4,
      });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      const backupArgs = ['--failover-timeout', '2s'];
      let backup = await startBackup(primary, 'b1', backupArgs);
      await selectBackup(primary, backup, 'b1');

      // a runs under the primary; b and c are started by the backup once a is done; d after b.
      const plan =
        `tasks:\n${marked('a', 3)}${marked('b', 8, ['a'])}${marked('c', 8, ['a'])}` +
        marked('d', 0.5, ['b']);
      const build = await submit(primary, plan);
      await primary.waitForTask(build.id, 'a', 'running');
      await waitFor(
        async () =>
          (await backup.api<BuildView>('GET', `/builds/${build.id}`)).body.tasks?.find(
            (t) => t.name === 'a',
          )?.status === 'running',
        15_000,
        "the backup's copy to have a running",
      );
      await primary.kill();

      await waitFor(
        async () => (await status(backup)).role === 'backup-active',
        30_000,
        'the backup to take over',
      );
      await backup.waitForTask(build.id, 'b', 'running');
      await backup.waitForTask(build.id, 'c', 'running');
      // A build only the backup knows, running when it dies.
      const own = await submit(backup, `tasks:\n${marked('y', 8)}`);
      await backup.waitForTask(own.id, 'y', 'running');
      await backup.kill();

      primary = await restartCoordinator(primary, { tls: true, args: [...FAST] });
      const done = await primary.waitForBuild(build.id, 90_000);
      const list = await assertClean(primary, done);
      // b and c were the backup's attempts, still running: adopted, not started again.
      for (const name of ['b', 'c']) {
        const mine = list.filter((x) => x.task === name);
        assert.equal(mine.length, 1, `${name}: ${JSON.stringify(mine)}`);
        assert.equal(await runsOf(name), 1, `${name} ran again`);
      }
      assert.ok(
        primary.logs.some((l) => l.msg === 'adopted an attempt this coordinator had not recorded'),
      );
      // a: re-attached or retried, never two runs at once.
      assert.ok((await runsOf('a')) >= 1);
      assert.equal(await runsOf('d'), 1);

      // The backup returns: it hands back the build it created, whose attempt the primary left
      // running on the agent; that build finishes too, without running y again.
      backup = await restartCoordinator(backup, {
        tls: true,
        login: false,
        args: [...FAST, '--backup-of', primary.url, '--backup-name', 'b1', ...backupArgs],
      });
      await waitFor(
        async () => (await primary.api('GET', `/builds/${own.id}`)).status === 200,
        60_000,
        "the backup's build to be handed back",
      );
      const ownDone = await primary.waitForBuild(own.id, 60_000);
      await assertClean(primary, ownDone);
      assert.equal(await runsOf('y'), 1, 'y ran again');
      const seen = (await primary.api<StatusView>('GET', '/status')).body;
      assert.equal(seen.role, 'primary');
    },
  );
});
