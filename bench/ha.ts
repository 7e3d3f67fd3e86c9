/**
 * Failover and failback: a primary, a selected backup and two real agents. Each round submits a
 * build of short tasks, kills the primary (SIGKILL) in the middle of it, and times
 *   - failover: from the kill to the first task the backup dispatches;
 *   - failback: from the primary's restart (process spawned) to every agent working for it again,
 *     the backup's history merged and the backup standing by;
 * then, once every build has ended, counts tasks lost (not succeeded) and duplicated (more than
 * one successful attempt). Run with the defaults and with aggressive settings.
 */
import type { AttemptView, BuildView } from '../src/api/views/builds.js';
import type { StatusView } from '../src/api/views/status.js';
import { startAgent, type BenchAgent } from './agent.js';
import { sleep, startCoordinator, type BenchCoordinator } from './coordinator-process.js';
import {
  fmt,
  list,
  median,
  type Benchmark,
  type BenchContext,
  type Measurement,
} from './measure.js';

interface Profile {
  name: string;
  /** Flags for both coordinators. */
  coordinator: string[];
  failoverTimeout: string;
  leaseTtl: string;
  rounds: number;
  quickRounds: number;
  /** Tasks per build: enough to outlast one failover and failback. */
  tasks: number;
}

const PROFILES: Profile[] = [
  {
    name: 'aggressive: failover 3 s, agent lease 3 s, heartbeats 0.3/0.5 s',
    coordinator: ['--ha-heartbeat', '300ms', '--heartbeat-interval', '500ms'],
    failoverTimeout: '3s',
    leaseTtl: '3s',
    rounds: 5,
    quickRounds: 2,
    tasks: 800,
  },
  {
    name: 'defaults: failover 30 s, agent lease 15 s, heartbeats 1/5 s',
    coordinator: [],
    failoverTimeout: '30s',
    leaseTtl: '15s',
    rounds: 2,
    quickRounds: 1,
    tasks: 3000,
  },
];

/** `count` independent core/sleep tasks of 50 ms (2 agents × 2 slots: about 80 a second). */
function sleepPlan(name: string, count: number): string {
  const lines = [`name: ${name}`, 'tasks:'];
  for (let i = 0; i < count; i++)
    lines.push(`  t${i}:`, '    uses: core/sleep', '    with: { ms: 50 }');
  return `${lines.join('\n')}\n`;
}

async function role(of: BenchCoordinator): Promise<string | undefined> {
  try {
    const response = await of.api<StatusView>('GET', '/status');
    return response.status === 200 ? response.body.role : undefined;
  } catch {
    return undefined;
  }
}

async function until(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function runProfile(
  profile: Profile,
  ctx: BenchContext,
): Promise<{
  failover: number[];
  failback: number[];
  lost: number;
  duplicated: number;
  tasks: number;
}> {
  const agents: BenchAgent[] = [];
  let primary: BenchCoordinator | undefined;
  let backup: BenchCoordinator | undefined;
  try {
    for (let i = 0; i < 2; i++)
      agents.push(await startAgent({ args: ['--lease-ttl', profile.leaseTtl] }));
    primary = await startCoordinator({ args: profile.coordinator });
    for (const [i, agent] of agents.entries()) await primary.addAgent(`a${i}`, agent);
    await primary.waitForAgents(2);
    backup = await startCoordinator({
      login: false,
      args: [
        ...profile.coordinator,
        '--backup-of',
        primary.url,
        '--backup-name',
        'bench-backup',
        '--failover-timeout',
        profile.failoverTimeout,
      ],
    });
    const p = primary;
    await until('the backup to register', 30_000, async () => {
      return (await p.api('PUT', '/backups/selected', { name: 'bench-backup' })).status === 200;
    });
    const b = backup;
    await until('the backup to hold a copy', 60_000, async () => {
      return (await fetch(`${b.url}/readyz`)).ok;
    });
    await backup.login();
    const failover: number[] = [];
    const failback: number[] = [];
    const builds: number[] = [];
    const rounds = ctx.quick ? profile.quickRounds : profile.rounds;
    for (let round = 0; round < rounds; round++) {
      const submitted = await primary.api<BuildView>('POST', '/builds', {
        plan: sleepPlan(`ha-${round}`, ctx.quick ? Math.ceil(profile.tasks / 3) : profile.tasks),
        files: [],
      });
      if (submitted.status !== 201) throw new Error(JSON.stringify(submitted.body));
      builds.push(submitted.body.id);
      // The backup has the build (it is replicated) before the primary dies.
      await until('the build to reach the backup', 30_000, async () => {
        return (await b.api('GET', `/builds/${submitted.body.id}`)).status === 200;
      });
      await sleep(1000);
      const killedAt = Date.now();
      await primary.kill();
      let firstDispatch: number | undefined;
      await until('the backup to dispatch', 180_000, async () => {
        if ((await role(b)) !== 'backup-active') return false;
        const attempts = await b.api<AttemptView[]>('GET', `/builds/${submitted.body.id}/attempts`);
        if (attempts.status !== 200) {
          if (process.env.BENCH_DEBUG) ctx.log(`    backup: ${JSON.stringify(attempts.body)}`);
          return false;
        }
        const after = attempts.body.map((a) => Date.parse(a.startedAt)).filter((t) => t > killedAt);
        if (after.length === 0) return false;
        firstDispatch = Math.min(...after);
        return true;
      });
      failover.push(((firstDispatch ?? Date.now()) - killedAt) / 1000);
      ctx.log(
        `  ${profile.name.split(':')[0]} round ${round + 1}: failover ${fmt(failover.at(-1)!)} s`,
      );
      await sleep(1000);
      const restartedAt = Date.now();
      // Same data dir and address: the backup and clients know the primary by its URL.
      primary = await startCoordinator({
        dataDir: primary.dataDir,
        listen: new URL(primary.url).host,
        args: profile.coordinator,
      });
      const back = primary;
      await until('the agents to return to the primary', 180_000, async () => {
        const seen = await b.api<StatusView>('GET', '/status');
        if (seen.body.primary?.state !== 'standby' || !seen.body.primary.reachable) return false;
        const status = await back.api<StatusView>('GET', '/status');
        return status.body.agents.connected === 2;
      });
      failback.push((Date.now() - restartedAt) / 1000);
      ctx.log(`    failback ${fmt(failback.at(-1)!)} s`);
      // Builds are served in order: the next round's first dispatch must not wait for this one.
      await back.waitForBuild(submitted.body.id, 600_000, 200);
    }
    let lost = 0;
    let duplicated = 0;
    let tasks = 0;
    for (const id of builds) {
      const build = await primary.waitForBuild(id, 600_000, 500);
      const attempts = (await primary.api<AttemptView[]>('GET', `/builds/${id}/attempts`)).body;
      const successes = new Map<string, number>();
      for (const a of attempts) {
        if (a.status === 'succeeded') successes.set(a.task, (successes.get(a.task) ?? 0) + 1);
      }
      for (const task of build.tasks) {
        tasks++;
        const n = successes.get(task.name) ?? 0;
        if (n === 0) lost++;
        if (n > 1) duplicated += n - 1;
      }
    }
    return { failover, failback, lost, duplicated, tasks };
  } finally {
    await Promise.all([primary?.stop(), backup?.stop(), ...agents.map((a) => a.stop())]);
  }
}

export const haFailover: Benchmark = {
  name: 'failover and failback',
  describe:
    'A primary, a selected backup (both over HTTP on loopback) and two real agents (TLS). Each round submits a build ' +
    'of independent 50 ms `core/sleep` tasks (800, or 3,000 with the defaults), SIGKILLs the primary a second later, and times the kill to the first task ' +
    "the backup dispatches (an attempt's start), then restarts the primary and times the restart (process spawned) to " +
    'both agents working for it with the backup standing by again; the next round starts once the build has ended. ' +
    'Afterwards every build is checked on the primary: ' +
    'tasks with no successful attempt are lost, extra successful attempts are duplicates.',
  async run(ctx) {
    const out: Measurement[] = [];
    for (const profile of PROFILES) {
      const result = await runProfile(profile, ctx);
      const short = profile.name.split(':')[0] ?? profile.name;
      out.push(
        {
          benchmark: this.name,
          metric: `failover, ${profile.name}: primary killed → first task dispatched by the backup`,
          value: median(result.failover),
          unit: 's',
          ...(short === 'aggressive' ? { aim: { op: '<=', value: 5 } as const } : {}),
          detail: `median of ${result.failover.length}: ${list(result.failover, 's')}`,
        },
        {
          benchmark: this.name,
          metric: `failback, ${short}: primary restarted → agents back on it, backup standing by`,
          value: median(result.failback),
          unit: 's',
          detail: `median of ${result.failback.length}: ${list(result.failback, 's')}`,
        },
        {
          benchmark: this.name,
          metric: `tasks lost, ${short}`,
          value: result.lost,
          unit: 'tasks',
          aim: { op: '<=', value: 0 },
          detail: `of ${result.tasks} tasks in ${result.failover.length} builds`,
        },
        {
          benchmark: this.name,
          metric: `tasks run twice (extra successful attempts), ${short}`,
          value: result.duplicated,
          unit: 'tasks',
          aim: { op: '<=', value: 0 },
          detail: `of ${result.tasks} tasks in ${result.failover.length} builds`,
        },
      );
    }
    return out;
  },
};
