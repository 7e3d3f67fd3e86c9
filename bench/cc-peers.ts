/**
 * The half of the compile benchmark that needs no Muster: real projects from Debian source built
 * clean with plain `make -j2`, with distcc and with icecream (two one-slot build hosts each, on
 * this machine), alternated in rounds; each peer's ratio to the make of its own round. Muster's
 * rows (`muster build -- make -j2`) come from their own benchmark on the same projects.
 *
 * The peers are Debian's packages: `apt-get install distcc icecc`, with a policy-rc.d that exits
 * 101 (as in containers) or the units masked first, so the package never starts iceccd in the
 * root namespace, where it would broadcast on every interface. icecream needs root (its
 * namespace). A peer that is missing is reported as such; the benchmark still runs.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ratiosToMake } from './cc-peer-args.js';
import { makeTempDir, removeTempDir } from './cc-peer-processes.js';
import { musterRunners } from './cc-muster.js';
import { distcc, icecream, plainMake, type PeerBuild, type PeerRunner } from './cc-peer-runners.js';
import { lua, projectTree, re2, type CcProject } from './cc-projects.js';
import { fmt, list, median, type Benchmark, type Measurement } from './measure.js';

/** The issue's comparison: make -j2 against two build hosts of one slot each. */
const JOBS = 2;
const BENCHMARK = 'compile peers';

function load(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
}

const seconds = (ms: number): string => `${fmt(ms / 1000)} s`;

interface PeerState {
  runner: PeerRunner;
  /** Why it was not run, short ("not installed (no distccd)", "could not start"). */
  missing?: string;
  /** The whole reason, for the detail column. */
  why?: string;
  builds: (PeerBuild | undefined)[];
}

function remoteText(builds: (PeerBuild | undefined)[]): string {
  const done = builds.filter((b): b is PeerBuild => b !== undefined && b.remote !== undefined);
  if (done.length === 0) return '';
  return `; compiles on its build hosts per round: ${done
    .map((b) => `${b.remote}/${b.compiles} (${b.where ?? ''})`)
    .join(', ')}`;
}

function cpuText(builds: (PeerBuild | undefined)[]): string {
  const cpu = builds.flatMap((b) =>
    b?.clientCpuMs === undefined ? [] : [{ ms: b.clientCpuMs, per: b.clientCpuMs / b.compiles }],
  );
  if (cpu.length === 0) return '';
  return `; CPU on this machine (make, launchers, preprocessing, service, links): ${list(
    cpu.map((c) => c.ms / 1000),
    's',
  )} = ${list(
    cpu.map((c) => c.per),
    'ms',
  )} per compile`;
}

/**
 * The machine's busy CPU during each build against make's in the same round: what a peer adds
 * in work, apart from the cores it leaves idle (wall time = work / cores + idle).
 */
function machineCpuText(
  builds: (PeerBuild | undefined)[],
  makeBuilds: (PeerBuild | undefined)[] = [],
): string {
  const cpu = builds.flatMap((b) => (b?.machineCpuMs === undefined ? [] : [b.machineCpuMs]));
  if (cpu.length === 0) return '';
  const ratios = ratiosToMake(
    makeBuilds.map((b) => b?.machineCpuMs),
    builds.map((b) => b?.machineCpuMs),
  );
  const ratio =
    ratios.length === 0 ? '' : `, ${fmt(median(ratios))} x make's (median of the rounds' ratios)`;
  return `; machine CPU busy ${list(
    cpu.map((ms) => ms / 1000),
    's',
  )}${ratio}`;
}

/**
 * `BENCH_CC_PEERS=cold,known` runs only those (make always: the ratios are to it); known follows
 * cold's first use and warm known's build, so each needs the one before. Unset: all of them.
 */
function pickedRunners(keys: readonly string[]): string[] {
  const wanted = process.env.BENCH_CC_PEERS?.split(',').map((p) => p.trim());
  if (wanted === undefined) return [...keys];
  const unknown = wanted.filter((w) => !keys.includes(w));
  if (unknown.length > 0)
    throw new Error(`BENCH_CC_PEERS: unknown ${unknown.join(', ')} (known: ${keys.join(', ')})`);
  if (wanted.includes('warm') && !wanted.includes('known'))
    throw new Error("BENCH_CC_PEERS: warm rebuilds from known's cache; name known too");
  if (wanted.includes('known-new-service') && !wanted.includes('cold'))
    throw new Error("BENCH_CC_PEERS: known-new-service follows cold's first use; name cold too");
  if (wanted.includes('known') && !wanted.includes('cold'))
    throw new Error("BENCH_CC_PEERS: known follows cold's first use in each round; name cold too");
  return wanted;
}

/** Rounds: the project's (1 with --quick), or `BENCH_CC_ROUNDS`. */
function roundsFor(quick: boolean, project: CcProject): number {
  const given = process.env.BENCH_CC_ROUNDS;
  if (given === undefined || given === '') return quick ? 1 : project.rounds;
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1 || n > 50)
    throw new Error(`BENCH_CC_ROUNDS: ${given} is not a whole number from 1 to 50`);
  return n;
}

async function benchProject(
  project: CcProject,
  rounds: number,
  root: string,
  log: (text: string) => void,
): Promise<Measurement[]> {
  const tree = await projectTree(project, join(root, project.pkg));
  const { cold, known, warm, knownNewService, remote, launcher, launcherClean } = musterRunners();
  const all = {
    make: plainMake(),
    cold,
    known,
    warm,
    'known-new-service': knownNewService,
    launcher,
    'launcher-clean': launcherClean,
    remote,
    distcc: distcc(),
    icecream: icecream(),
  };
  const picked = pickedRunners(Object.keys(all));
  const peers: PeerState[] = Object.entries(all)
    .filter(([key]) => key === 'make' || picked.includes(key))
    .map(([, runner]) => ({ runner, builds: [] }));
  const loadBefore = load();
  log(`${project.name}: load average before ${loadBefore}`);
  try {
    for (const peer of peers) {
      const missing = await peer.runner.missing();
      if (missing !== undefined) {
        peer.missing = missing;
        log(`${peer.runner.name}: ${missing}`);
        continue;
      }
      try {
        await peer.runner.start(log);
      } catch (err) {
        // Installed but unusable here (no namespace, a daemon that would not start): its row
        // says why, the other peers still run.
        peer.missing = 'could not start';
        peer.why = `could not start: ${err instanceof Error ? err.message : String(err)}`;
        log(`${peer.runner.name}: ${peer.why}`);
        await peer.runner.stop();
        continue;
      }
      if (peer.runner.name === 'icecream') {
        // The first build sends the environment to each build host: reported, not counted.
        const first = await peer.runner.build(project, tree, JOBS);
        log(
          `icecream, first build (environment sent to the hosts): ${seconds(first.ms)}; ` +
            `${first.remote}/${first.compiles} compiles remote (${first.where ?? ''})`,
        );
      }
    }
    for (let round = 0; round < rounds; round++) {
      const parts: string[] = [];
      for (const peer of peers) {
        if (peer.missing !== undefined) continue;
        const build = await peer.runner.build(project, tree, JOBS);
        peer.builds[round] = build;
        if (build.remote !== undefined && build.remote < build.compiles)
          log(
            `warning: ${peer.runner.name} ran ${build.compiles - build.remote} of ${build.compiles} ` +
              'compiles locally (its daemons logged fewer jobs than make ran compilers)',
          );
        parts.push(
          `${peer.runner.name} ${seconds(build.ms)}` +
            (build.machineCpuMs === undefined ? '' : ` [CPU ${seconds(build.machineCpuMs)}]`) +
            (build.remote === undefined ? '' : ` (${build.remote}/${build.compiles} remote)`),
        );
      }
      log(`${project.name} round ${round + 1}/${rounds}: ${parts.join(', ')} (load ${load()})`);
    }
  } finally {
    for (const peer of peers) await peer.runner.stop();
  }
  const loads = `load average ${loadBefore} before, ${load()} after`;
  const make = peers[0]!;
  const makeTimes = make.builds.map((b) => b?.ms);
  const makeMs = makeTimes.filter((ms): ms is number => ms !== undefined);
  const rows: Measurement[] = [];
  if (make.missing !== undefined) {
    rows.push({
      benchmark: BENCHMARK,
      metric: `${project.name}: make -j${JOBS}, clean build`,
      value: Number.NaN,
      unit: 's',
      missing: make.missing,
      detail: make.missing,
    });
    return rows;
  }
  rows.push({
    benchmark: BENCHMARK,
    metric: `${project.name}: make -j${JOBS}, clean build, wall time`,
    value: median(makeMs) / 1000,
    unit: 's',
    detail: `median of ${makeMs.length}: ${list(
      makeMs.map((ms) => ms / 1000),
      's',
    )}; ${make.builds[0]?.compiles ?? 0} compiles${machineCpuText(make.builds)}; ${loads}`,
  });
  for (const peer of peers.slice(1)) {
    const isMuster = peer.runner.name.startsWith('muster');
    const metric =
      peer.runner === launcher
        ? `${project.name}: ${peer.runner.name} -j${JOBS} / make -j${JOBS}, after make clean`
        : peer.runner === launcherClean
          ? `${project.name}: ${peer.runner.name} -j${JOBS} / make -j${JOBS}, clean build`
          : isMuster
            ? `${project.name}: ${peer.runner.name} -- make -j${JOBS} (2 local agents × 1 slot) / make -j${JOBS}${peer.runner === warm ? ', after make clean' : peer.runner === remote ? ', clean build, no cache' : peer.runner === cold ? ', clean build, first use' : ', clean build, empty caches'}`
            : `${project.name}: ${peer.runner.name} (2 build hosts × 1 slot) / make -j${JOBS}, clean build`;
    const aim =
      peer.runner === known
        ? { aim: { op: '<=' as const, value: 1.03 } }
        : peer.runner === warm || peer.runner === launcher
          ? { aim: { op: '<=' as const, value: 0.2 } }
          : {};
    if (peer.missing !== undefined) {
      rows.push({
        benchmark: BENCHMARK,
        metric,
        value: Number.NaN,
        unit: 'x',
        missing: peer.missing,
        detail: peer.why ?? peer.missing,
      });
      continue;
    }
    const ratios = ratiosToMake(
      makeTimes,
      peer.builds.map((b) => b?.ms),
    );
    const peerMs = peer.builds.filter((b): b is PeerBuild => b !== undefined).map((b) => b.ms);
    rows.push({
      benchmark: BENCHMARK,
      metric,
      value: median(ratios),
      unit: 'x',
      ...aim,
      detail:
        `median of ${ratios.length} per-round ratios (${ratios.map((r) => fmt(r)).join(' / ')}); ` +
        `${peer.runner.name} ${seconds(median(peerMs))}, make ${seconds(median(makeMs))} (medians)` +
        `${remoteText(peer.builds)}${cpuText(peer.builds)}${machineCpuText(peer.builds, make.builds)}; ${loads}`,
    });
  }
  return rows;
}

export const ccPeers: Benchmark = {
  name: BENCHMARK,
  describe:
    'Real projects from Debian source packages (upstream tarballs, their own Makefiles, unchanged): Lua 5.4.4 ' +
    '(`make linux`) and re2 (20 of libre2’s objects, C++ at -O3 -g; skipped with --quick; ' +
    '`BENCH_CC_PROJECTS=lua5.4,re2` picks by package; `BENCH_CC_PEERS=cold,known` picks runners, make always; ' +
    '`BENCH_CC_ROUNDS=N` sets the rounds). Each build is from ' +
    '`make clean`, with -j2, checked (the files it should make; `lua` runs a script). Peers, where installed: ' +
    'distcc 3.4 (two `distccd --jobs 1` on 127.0.0.1, `DISTCC_HOSTS` by address, its masquerade dir first on PATH) ' +
    'and icecream 1.4 (inside a network namespace holding only `lo`: a scheduler, the client’s iceccd without slots ' +
    'and two one-slot iceccd; icecc’s masquerade dir first on PATH; `ICECC_TEST_REMOTEBUILD=1` so jobs placed on ' +
    'hosts at 127.0.0.1 are really sent; the environment from `icecc --build-native` made once and not timed, ' +
    'a first untimed build sends it to the hosts). Daemons at nice 0 like make. make, distcc, icecream alternate ' +
    'in rounds (7 for Lua, 3 for re2; 1 with --quick); ratio = the median of each peer’s time / make’s time in the same round; the ' +
    'daemons’ logs count the compiles that really ran on them. Muster, in the same rounds: `muster build -- make -j2` ' +
    'with a fresh coordinator and two one-slot agents and a new HOME (first use: the build starts the per-user ' +
    'compile service that hosts it, and identifies the compiler), then with empty caches again (a fresh ' +
    'coordinator, the local tier emptied) through the service the first build started (compiler known), then ' +
    'after `make clean` (warm cache), then with empty caches once more after the service was stopped (compiler ' +
    'known, service started by the build: the first build after the service idled out); ' +
    '`make CC="muster cc gcc"` through the per-user service (`muster cc --serve` started once, a coordinator without ' +
    'agents), warm: a first untimed build each round, then `make clean` and the timed one; the same with a new ' +
    'service and coordinator each round and the local tier emptied (compiler known, empty caches: the clean build ' +
    "without `muster build`'s own start); and " +
    '`--placement remote --no-cache` (every compile on the agents; its own coordinator, toolchains synced before ' +
    'the first round), with the CPU time of everything it ran on this machine. A coordinator started for a row ' +
    '(with its agents, or the per-user service) is let settle before the timed build: until together they use ' +
    'at most 10 ms of CPU in half a second (at most 15 s), as a long-running coordinator would be.',
  async run(ctx) {
    const wanted = process.env.BENCH_CC_PROJECTS?.split(',').map((p) => p.trim());
    const projects = [lua, re2].filter((p) =>
      wanted === undefined ? !ctx.quick || p === lua : wanted.includes(p.pkg),
    );
    const root = makeTempDir('muster-bench-cc-peers-');
    try {
      const rows: Measurement[] = [];
      for (const project of projects)
        rows.push(
          ...(await benchProject(project, roundsFor(ctx.quick, project), root, (text) =>
            ctx.log(text),
          )),
        );
      return rows;
    } finally {
      removeTempDir(root);
    }
  },
};
