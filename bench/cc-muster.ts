/**
 * Muster's rows of the compile benchmark, run in the same rounds as plain make and the peers
 * (cc-peers.ts): `muster build -- make -j2` against a fresh coordinator with two local agents of
 * one slot each, with an empty cache (a new coordinator data dir and a new HOME per round: a
 * first use, whose compiler is identified during the build), then — same round — a clean build
 * with empty caches again (a new coordinator, the local tier emptied) on a machine that knows the
 * compiler (its remembered toolchain ids kept: every use after the first), then after `make
 * clean` again with the cache as that build left it (a warm rebuild).
 *
 * The agents share this machine's cores (same boot id), so the default placement compiles here:
 * the cold row is the cost of going through Muster (launcher, service, hashing, storing), the
 * warm row what the cache saves. A third runner, `--placement remote --no-cache`, sends every
 * compile to the two agents (one coordinator for all rounds, the toolchains synced to the agents
 * before the first timed build), the row to compare with distcc and icecream; it also reports
 * the client's CPU time (everything the command ran on this machine: make, the launchers, the
 * directives-only passes, the service, the links), for the speed-up model of docs/compile.md.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildCounts } from '../src/cli/cc/build-summary.js';
import { userCacheDir } from '../src/cli/cc/cache-dir.js';
import { TOOLCHAIN_IDS_DIR } from '../src/cli/cc/toolchain-ids.js';
import { startAgent, type BenchAgent } from './agent.js';
import {
  mustRun,
  startDaemon,
  stopMusterService,
  timing,
  type Daemon,
  type Finished,
} from './cc-peer-processes.js';
import type { PeerBuild, PeerRunner } from './cc-peer-runners.js';
import { countCompiles, type CcProject } from './cc-projects.js';
import { startCoordinator, waitUntilIdle, type BenchCoordinator } from './coordinator-process.js';

const BUILD_LIMIT_MS = 15 * 60 * 1000;
/** bin/muster of this checkout: `muster build` as a user runs it. */
const muster = fileURLToPath(new URL('../../bin/muster', import.meta.url));

/** `muster build --json`'s counts (the fields read here). */
type Summary = Pick<
  BuildCounts,
  'compiles' | 'remote' | 'local' | 'cacheHits' | 'fallbacks' | 'reruns'
>;

/** The last summary JSON `muster build --json` printed. */
function summaryIn(output: string): Summary | undefined {
  // Without the lines `times` adds after it.
  const text = output.replace(/^\d+m[\d.]+s \d+m[\d.]+s$/gm, '');
  const json = /\{\s*"buildId"[\s\S]*\}\s*$/.exec(text)?.[0];
  return json === undefined ? undefined : (JSON.parse(json) as Summary);
}

/** The children's CPU time (ms) from the two lines of `times` at the end of the output. */
function childrenCpuMs(output: string): number | undefined {
  const match = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(output);
  if (match === null) return undefined;
  const [, um, us, sm, ss] = match;
  return (Number(um) * 60 + Number(us) + Number(sm) * 60 + Number(ss)) * 1000;
}

/** Empties the local tier of the user at `home`, keeping the compilers it knows (their ids). */
async function emptyLocalTier(home: string): Promise<void> {
  const tier = userCacheDir({ HOME: home, XDG_CACHE_HOME: join(home, '.cache') });
  for (const entry of await readdir(tier))
    if (entry !== TOOLCHAIN_IDS_DIR) await rm(join(tier, entry), { recursive: true, force: true });
}

function envFor(home: string, coordinator: BenchCoordinator): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: home,
    XDG_CACHE_HOME: join(home, '.cache'),
    MUSTER_URL: coordinator.url,
    MUSTER_TOKEN: coordinator.token,
    MUSTER_CONFIG_DIR: join(home, 'config'),
    // The per-user compile service `muster build` starts is this HOME's (stopped with it).
    XDG_RUNTIME_DIR: join(home, 'run'),
  };
}

/** Ends the per-user compile service of the user at `home`, if one runs. */
function stopService(home: string): Promise<void> {
  return stopMusterService({ ...process.env, XDG_RUNTIME_DIR: join(home, 'run') });
}

/**
 * Lets a coordinator (and its agents, a service) just started finish their start before a
 * timed build: a user's clean build meets a coordinator that has been running.
 */
async function settle(pids: readonly (number | undefined)[]): Promise<void> {
  const known = pids.filter((pid): pid is number => pid !== undefined);
  if (!(await waitUntilIdle(known)))
    process.stderr.write('   (the coordinator and agents did not settle within 15 s)\n');
}

/**
 * The cold, known and warm runners share one HOME per round and follow each other: cold is the
 * first use (a new HOME: the compiler is identified during the build), known a clean build with
 * empty caches again (a new coordinator, the local tier emptied) by a user whose machine already
 * knows the compiler (its remembered toolchain ids kept), warm the rebuild from known's cache.
 */
export function musterRunners(): {
  cold: PeerRunner;
  known: PeerRunner;
  warm: PeerRunner;
  knownNewService: PeerRunner;
  remote: PeerRunner;
  launcher: PeerRunner;
  launcherClean: PeerRunner;
} {
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
        env: envFor(home, coordinator),
        limitMs: BUILD_LIMIT_MS,
      },
    );
    await project.check(tree);
    const summary = summaryIn(result.output);
    return {
      ...timing(result),
      compiles: countCompiles(result.output),
      ...(summary === undefined
        ? {}
        : {
            where: `${summary.cacheHits} from cache, ${summary.local} local, ${summary.fallbacks} fallbacks`,
          }),
    };
  };

  const freshCoordinator = async (): Promise<void> => {
    await coordinator?.stop();
    coordinator = await startCoordinator();
    for (const [i, agent] of agents.entries())
      await coordinator.addAgent(`local-${i + 1}`, agent, { slots: 1 });
    await coordinator.waitForAgents(agents.length);
    await settle([coordinator.pid, ...agents.map((a) => a.pid)]);
  };

  const stopRound = async (): Promise<void> => {
    if (home !== undefined) await stopService(home);
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
      await freshCoordinator();
      return timed(project, tree, jobs);
    },
    async stop() {
      await stopRound();
      await Promise.all(agents.map((a) => a.stop()));
      agents = [];
    },
  };
  const known: PeerRunner = {
    name: 'muster build, compiler known',
    missing: async () => undefined,
    start: async () => undefined,
    async build(project, tree, jobs) {
      if (home === undefined) throw new Error('muster build, compiler known: no cold build before');
      await freshCoordinator();
      await emptyLocalTier(home);
      return timed(project, tree, jobs);
    },
    stop: async () => undefined,
  };
  const warm: PeerRunner = {
    name: 'muster build, warm cache',
    missing: async () => undefined,
    start: async () => undefined,
    build: (project, tree, jobs) => timed(project, tree, jobs),
    stop: async () => undefined,
  };
  // The per-user service ended (idle for 10 minutes, or stopped): the build starts it again.
  const knownNewService: PeerRunner = {
    name: 'muster build, compiler known, service started by the build',
    missing: async () => undefined,
    start: async () => undefined,
    async build(project, tree, jobs) {
      if (home === undefined) throw new Error(`${this.name}: no cold build before`);
      await stopService(home);
      await freshCoordinator();
      await emptyLocalTier(home);
      return timed(project, tree, jobs);
    },
    stop: async () => undefined,
  };
  return {
    cold,
    known,
    warm,
    knownNewService,
    remote: remoteRunner(),
    launcher: launcherRunner(true),
    launcherClean: launcherRunner(false),
  };
}

/**
 * `make CC="muster cc gcc"` through the per-user compile service (`muster cc --serve`, started
 * like the shim would, on a socket of its own). No `muster build` around make: no Node start,
 * session or summary per build.
 *
 * - warm: one service and coordinator for all rounds; each round a first build fills the cache
 *   (not timed), then `make clean` and the timed build — what a warm rebuild costs where
 *   `muster build`'s fixed cost does not come in;
 * - clean (`warm` false): each round a new coordinator and service (started untimed, as one
 *   already running), the local tier emptied but the remembered compilers kept, then the timed
 *   clean build — `muster build, compiler known` without the Node start of `muster build`, the
 *   figure a long-lived service taking `muster build`'s place would start from.
 */
function launcherRunner(warm: boolean): PeerRunner {
  let coordinator: BenchCoordinator | undefined;
  let home: string | undefined;
  let service: Daemon | undefined;
  let env: NodeJS.ProcessEnv = {};
  let primed = false;
  const startService = async (): Promise<void> => {
    if (home === undefined) throw new Error('no HOME');
    coordinator = await startCoordinator();
    const socket = join(home, 'run', 'cc.sock');
    env = { ...envFor(home, coordinator), MUSTER_CC_SOCKET: socket };
    service = startDaemon(muster, ['cc', '--serve', '--socket', socket, '--idle-exit', '0'], env);
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket)) {
      const exited = service.exited();
      if (exited !== undefined) throw new Error(`muster cc --serve ${exited}`);
      if (Date.now() > deadline) throw new Error('muster cc --serve made no socket in 30 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await settle([coordinator.pid, service.pid]);
  };
  const stopService = async (): Promise<void> => {
    await service?.stop();
    service = undefined;
    await coordinator?.stop();
    coordinator = undefined;
  };
  return {
    name: warm
      ? 'CC="muster cc" make (per-user service), warm cache'
      : 'CC="muster cc" make (per-user service), compiler known, empty caches',
    missing: async () => undefined,
    async start(log) {
      home = await mkdtemp(join(tmpdir(), 'muster-bench-cc-launcher-home-'));
      await startService();
      log(
        warm
          ? 'CC="muster cc" make, warm: one muster cc --serve for all rounds, a coordinator without agents'
          : 'CC="muster cc" make, empty caches: a new muster cc --serve and coordinator (without agents) each round',
      );
    },
    async build(project, tree, jobs) {
      const args = [...project.buildArgs(jobs), ...project.launcherVars(`${muster} cc`)];
      const make = (what: string) =>
        mustRun(`${project.name}: ${what}`, 'make', args, {
          cwd: tree,
          env,
          limitMs: BUILD_LIMIT_MS,
        });
      await mustRun('make clean', 'make', project.cleanArgs, { cwd: tree });
      if (warm) {
        await make('CC="muster cc" make, filling the cache');
        await mustRun('make clean', 'make', project.cleanArgs, { cwd: tree });
      } else if (home !== undefined) {
        // The compiler is known: identified by an untimed first build, remembered since.
        if (!primed) {
          await make('CC="muster cc" make, identifying the compiler');
          await mustRun('make clean', 'make', project.cleanArgs, { cwd: tree });
          primed = true;
        }
        await stopService();
        await emptyLocalTier(home);
        await startService();
      }
      const result = await make(warm ? 'CC="muster cc" make, warm' : 'CC="muster cc" make, clean');
      await project.check(tree);
      return { ...timing(result), compiles: countCompiles(result.output) };
    },
    async stop() {
      await stopService();
      if (home !== undefined) await rm(home, { recursive: true, force: true });
      home = undefined;
    },
  };
}

/** Builds with every compile on the two agents (no cache), on one coordinator for all rounds. */
function remoteRunner(): PeerRunner {
  let agents: BenchAgent[] = [];
  let coordinator: BenchCoordinator | undefined;
  let home: string | undefined;
  const remoteBuild = async (
    what: string,
    command: string[],
    cwd: string,
  ): Promise<{
    result: Finished;
    output: string;
    summary: Summary | undefined;
    cpuMs: number | undefined;
  }> => {
    if (coordinator === undefined || home === undefined) throw new Error(`${what}: not started`);
    // `times` prints the shell's and then its children's CPU time: everything the build ran here.
    const script = `"$0" build --json --placement remote --no-cache -- "$@"; s=$?; times >&2; exit $s`;
    const result = await mustRun(what, 'sh', ['-c', script, muster, ...command], {
      cwd,
      env: envFor(home, coordinator),
      limitMs: BUILD_LIMIT_MS,
    });
    return {
      result,
      output: result.output,
      summary: summaryIn(result.output),
      cpuMs: childrenCpuMs(result.output),
    };
  };
  return {
    name: 'muster build --placement remote',
    missing: async () => undefined,
    async start(log) {
      agents = await Promise.all([startAgent(), startAgent()]);
      home = await mkdtemp(join(tmpdir(), 'muster-bench-cc-remote-home-'));
      coordinator = await startCoordinator();
      for (const [i, agent] of agents.entries())
        await coordinator.addAgent(`remote-${i + 1}`, agent, { slots: 1 });
      await coordinator.waitForAgents(agents.length);
      // Register gcc's and g++'s toolchains and wait until both agents have them (not timed).
      await writeFile(join(home, 'a.c'), 'int a(int x) { return x + 1; }\n');
      await writeFile(join(home, 'b.cc'), 'int b(int x) { return x * 2; }\n');
      const deadline = Date.now() + 300_000;
      for (;;) {
        const warmup = await remoteBuild(
          'warm-up',
          ['sh', '-c', 'gcc -c a.c -o a.o && g++ -c b.cc -o b.o'],
          home,
        );
        if (warmup.summary?.remote === 2) break;
        if (Date.now() > deadline)
          throw new Error(`the agents did not get the toolchains in 5 min: ${warmup.output}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      log(
        'muster build --placement remote: toolchains on both agents (one coordinator for all rounds)',
      );
    },
    async build(project, tree, jobs) {
      await mustRun('make clean', 'make', project.cleanArgs, { cwd: tree });
      const result = await remoteBuild(
        `${project.name}: muster build --placement remote -- make`,
        ['make', ...project.buildArgs(jobs)],
        tree,
      );
      await project.check(tree);
      const { summary } = result;
      const compiles = countCompiles(result.output);
      return {
        ...timing(result.result),
        compiles,
        ...(summary === undefined ? {} : { remote: summary.remote }),
        ...(result.cpuMs === undefined ? {} : { clientCpuMs: result.cpuMs }),
        ...(summary === undefined
          ? {}
          : {
              where: `${summary.remote} on agents, ${summary.reruns} re-run here, ${summary.local} local, ${summary.fallbacks} fallbacks`,
            }),
      };
    },
    async stop() {
      if (home !== undefined) await stopService(home);
      await coordinator?.stop();
      coordinator = undefined;
      if (home !== undefined) await rm(home, { recursive: true, force: true });
      home = undefined;
      await Promise.all(agents.map((a) => a.stop()));
      agents = [];
    },
  };
}
