/**
 * Muster's rows of the compile benchmark, run in the same rounds as plain make and the peers
 * (cc-peers.ts): `muster build -- make -j2` against a fresh coordinator with two local agents of
 * one slot each, with an empty cache (a new coordinator data dir and a new local cache per
 * round: a cold build), then — same round, after `make clean` — again with the cache as that
 * build left it (a warm rebuild).
 *
 * The agents share this machine's cores (same boot id), so the default placement compiles here:
 * the cold row is the cost of going through Muster (launcher, service, hashing, storing), the
 * warm row what the cache saves.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAgent, type BenchAgent } from './agent.js';
import { mustRun } from './cc-peer-processes.js';
import type { PeerBuild, PeerRunner } from './cc-peer-runners.js';
import { countCompiles, type CcProject } from './cc-projects.js';
import { startCoordinator, type BenchCoordinator } from './coordinator-process.js';

const BUILD_LIMIT_MS = 15 * 60 * 1000;
/** bin/muster of this checkout: `muster build` as a user runs it. */
const muster = fileURLToPath(new URL('../../bin/muster', import.meta.url));

interface Summary {
  compiles: number;
  local: number;
  cacheHits: number;
  fallbacks: number;
}

/** The two runners share one coordinator and cache per round: the warm one follows the cold. */
export function musterRunners(): { cold: PeerRunner; warm: PeerRunner } {
  let agents: BenchAgent[] = [];
  let coordinator: BenchCoordinator | undefined;
  let home: string | undefined;

  const timed = async (project: CcProject, tree: string, jobs: number): Promise<PeerBuild> => {
    if (coordinator === undefined || home === undefined)
      throw new Error('muster build: not started');
    await mustRun('make clean', 'make', project.cleanArgs, { cwd: tree });
    const result = await mustRun(
      `${project.name}: muster build -- make`,
      muster,
      ['build', '--json', '--', 'make', ...project.buildArgs(jobs)],
      {
        cwd: tree,
        env: {
          ...process.env,
          HOME: home,
          XDG_CACHE_HOME: join(home, '.cache'),
          MUSTER_URL: coordinator.url,
          MUSTER_TOKEN: coordinator.token,
          MUSTER_CONFIG_DIR: join(home, 'config'),
        },
        limitMs: BUILD_LIMIT_MS,
      },
    );
    await project.check(tree);
    const json = /\{\s*"buildId"[\s\S]*\}\s*$/.exec(result.output)?.[0];
    const summary = json === undefined ? undefined : (JSON.parse(json) as Summary);
    return {
      ms: result.ms,
      compiles: countCompiles(result.output),
      ...(summary === undefined
        ? {}
        : {
            where: `${summary.cacheHits} from cache, ${summary.local} local, ${summary.fallbacks} fallbacks`,
          }),
    };
  };

  const stopRound = async (): Promise<void> => {
    await coordinator?.stop();
    coordinator = undefined;
    if (home !== undefined) await rm(home, { recursive: true, force: true });
    home = undefined;
  };

  const cold: PeerRunner = {
    name: 'muster build',
    missing: async () => undefined,
    async start(log) {
      agents = await Promise.all([startAgent(), startAgent()]);
      log('muster build: two local agents of one slot each; a fresh coordinator per round');
    },
    async build(project, tree, jobs) {
      await stopRound();
      home = await mkdtemp(join(tmpdir(), 'muster-bench-cc-home-'));
      coordinator = await startCoordinator();
      for (const [i, agent] of agents.entries())
        await coordinator.addAgent(`local-${i + 1}`, agent, { slots: 1 });
      await coordinator.waitForAgents(agents.length);
      return timed(project, tree, jobs);
    },
    async stop() {
      await stopRound();
      await Promise.all(agents.map((a) => a.stop()));
      agents = [];
    },
  };
  const warm: PeerRunner = {
    name: 'muster build, warm cache',
    missing: async () => undefined,
    start: async () => undefined,
    build: (project, tree, jobs) => timed(project, tree, jobs),
    stop: async () => undefined,
  };
  return { cold, warm };
}
