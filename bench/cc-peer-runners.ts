/**
 * The compile benchmark's peers, each a way to run one clean build of a project with `-jN` and
 * time it: plain make, distcc (two one-job distccd on 127.0.0.1) and icecream (a scheduler, the
 * client's daemon without slots and two one-slot daemons, all inside a network namespace holding
 * only `lo`). A peer that is not installed says so and is reported as such.
 */
import { constants } from 'node:fs';
import { access, chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import {
  countsSince,
  distccCompiles,
  distccHosts,
  distccdArgs,
  icecreamDelays,
  icecreamJobsByServer,
  iceccdArgs,
  linkNames,
  netnsName,
  pathWithFirst,
  type IcecreamDaemon,
} from './cc-peer-args.js';
import {
  addNamespace,
  deleteNamespace,
  makeTempDir,
  mustRun,
  removeTempDir,
  startDaemon,
  timing,
  type Daemon,
} from './cc-peer-processes.js';
import { countCompiles, type CcProject } from './cc-projects.js';

/** A build that takes longer than this is stuck (a lost job): it is killed and the run fails. */
const BUILD_LIMIT_MS = 15 * 60 * 1000;
const DISTCC_DIR = '/usr/lib/distcc';
const ICECC_DIR = '/usr/lib/icecc/bin';

export interface PeerBuild {
  ms: number;
  /** Compiler invocations with -c in make's output. */
  compiles: number;
  /** How many of them the peer's daemons compiled (undefined for plain make). */
  remote?: number;
  /** Where they ran, e.g. "ice1 17, ice2 16". */
  where?: string;
  /** CPU time of everything the build ran on this machine, where measured. */
  clientCpuMs?: number;
  /** The whole machine's busy CPU time during the build (daemons included), where readable. */
  machineCpuMs?: number;
}

export interface PeerRunner {
  name: string;
  /**
   * Why it cannot run on this machine ("not installed (not found: distccd)", programs looked up
   * on PATH), or undefined.
   */
  missing(): Promise<string | undefined>;
  /** Starts its daemons (and logs what it set up). */
  start(log: (text: string) => void): Promise<void>;
  /** `make clean` (not timed), then one timed build, checked. */
  build(project: CcProject, tree: string, jobs: number): Promise<PeerBuild>;
  /** Stops its daemons, removes its files. Idempotent; safe after a failed start. */
  stop(): Promise<void>;
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && (await executable(join(dir, name)))) return true;
  }
  return false;
}

async function missingPrograms(names: string[], files: string[]): Promise<string | undefined> {
  const absent: string[] = [];
  for (const name of names) if (!(await onPath(name))) absent.push(name);
  for (const file of files) if (!(await executable(file))) absent.push(file);
  return absent.length === 0 ? undefined : `not installed (not found: ${absent.join(', ')})`;
}

async function clean(project: CcProject, tree: string): Promise<void> {
  await mustRun('make clean', 'make', project.cleanArgs, { cwd: tree });
}

/** One timed, checked build: `command args` (make, or make inside a namespace) in the tree. */
async function timedBuild(
  project: CcProject,
  tree: string,
  command: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<PeerBuild> {
  const result = await mustRun(`${project.name}: ${command} ${args.join(' ')}`, command, args, {
    cwd: tree,
    ...(env === undefined ? {} : { env }),
    limitMs: BUILD_LIMIT_MS,
  });
  await project.check(tree);
  return { ...timing(result), compiles: countCompiles(result.output) };
}

export function plainMake(): PeerRunner {
  return {
    name: 'make',
    missing: () => missingPrograms(['make', 'gcc', 'g++'], []),
    start: async () => undefined,
    async build(project, tree, jobs) {
      await clean(project, tree);
      return timedBuild(project, tree, 'make', project.buildArgs(jobs));
    },
    stop: async () => undefined,
  };
}

/** A TCP port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `ready` every 100 ms for up to 30 s; throws with `why()` when it never gets there. */
async function waitFor(
  what: string,
  ready: () => Promise<boolean>,
  why: () => Promise<string>,
): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await ready()) return;
    await sleep(100);
  }
  throw new Error(`${what} not ready after 30 s: ${await why()}`);
}

const readText = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '');

/**
 * A log file the daemon (which drops root for its own user) can append to, in a directory it
 * may traverse but not list.
 */
async function daemonLog(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, '');
  await chmod(path, 0o666);
  return path;
}

/**
 * distcc 3.4: two `distccd --jobs 1` on 127.0.0.1 free ports; the build runs with distcc's
 * masquerade directory first on PATH (so the Makefile's own `CC= gcc -std=gnu99` reaches distcc,
 * and make's command line is the same as plain make's), `DISTCC_HOSTS` naming both daemons by
 * address (never `localhost`, which distcc compiles in-process), its own `DISTCC_DIR`. The
 * daemons' logs count the compiles they did.
 */
export function distcc(): PeerRunner {
  let dir: string | undefined;
  let daemons: Daemon[] = [];
  let logs: string[] = [];
  let hosts = '';
  return {
    name: 'distcc',
    missing: () => missingPrograms(['distcc', 'distccd'], [join(DISTCC_DIR, 'gcc')]),
    async start(log) {
      dir = makeTempDir('muster-bench-distcc-');
      await chmod(dir, 0o711);
      // distcc's own state and lock files (it does not create the directory itself).
      await mkdir(join(dir, 'client'));
      const ports = [await freePort(), await freePort()];
      logs = [];
      for (const port of ports) {
        const logFile = await daemonLog(dir, `distccd-${port}.log`);
        logs.push(logFile);
        const daemon = startDaemon('distccd', distccdArgs(port, logFile));
        daemons.push(daemon);
        await waitFor(
          `distccd on port ${port}`,
          async () => daemon.exited() === undefined && (await canConnect(port)),
          async () => `${daemon.exited() ?? 'running'}; ${(await readText(logFile)).slice(-2000)}`,
        );
      }
      hosts = distccHosts(ports);
      log(`distcc: distccd pids ${daemons.map((d) => d.pid).join(', ')}, DISTCC_HOSTS="${hosts}"`);
    },
    async build(project, tree, jobs) {
      if (dir === undefined) throw new Error('distcc: not started');
      await clean(project, tree);
      const before = (await Promise.all(logs.map(readText))).map(distccCompiles);
      const built = await timedBuild(project, tree, 'make', project.buildArgs(jobs), {
        PATH: pathWithFirst(DISTCC_DIR, process.env.PATH),
        DISTCC_HOSTS: hosts,
        DISTCC_DIR: join(dir, 'client'),
        DISTCC_LOG: join(dir, 'client.log'),
      });
      const after = (await Promise.all(logs.map(readText))).map(distccCompiles);
      const perDaemon = after.map((n, i) => n - (before[i] ?? 0));
      return {
        ...built,
        remote: perDaemon.reduce((a, b) => a + b, 0),
        where: perDaemon.map((n, i) => `distccd ${i + 1}: ${n}`).join(', '),
      };
    },
    async stop() {
      await Promise.all(daemons.map((d) => d.stop()));
      daemons = [];
      if (dir !== undefined) removeTempDir(dir);
      dir = undefined;
    },
  };
}

/** The scheduler's port inside the namespace (the namespace has nothing else on it). */
const SCHEDULER_PORT = 8765;

/**
 * icecream 1.4, only inside a network namespace created here that holds nothing but `lo` (it
 * broadcasts on every interface it sees). In it: icecc-scheduler; the client's own iceccd with no
 * slots (`--no-remote -m 0`), which the build's icecc talks to; two build hosts of one slot each.
 * The build runs in the namespace with icecc's masquerade directory first on PATH, the
 * environment from `icecc --build-native` (made once at start, timed apart), and
 * `ICECC_TEST_REMOTEBUILD=1`: without it icecc compiles itself every job the scheduler places on
 * a host at 127.0.0.1 — all of them on one machine — and nothing would be sent. Each daemon has
 * its own socket (`ICECC_TEST_SOCKET`), so nothing is created under /var/run. The scheduler's
 * log counts the jobs each host finished.
 */
export function icecream(): PeerRunner {
  let dir: string | undefined;
  let namespace: string | undefined;
  let daemons: Daemon[] = [];
  let environment = '';
  let clientSocket = '';
  let schedulerLog = '';
  return {
    name: 'icecream',
    async missing() {
      const absent = await missingPrograms(
        ['icecc', 'iceccd', 'icecc-scheduler', 'ip'],
        [join(ICECC_DIR, 'gcc')],
      );
      if (absent !== undefined) return absent;
      if (process.getuid?.() !== 0) return 'needs root (it runs in its own network namespace)';
      return undefined;
    },
    async start(log) {
      dir = makeTempDir('muster-bench-icecream-');
      // The daemons drop root for the icecc user and create their environment dirs here.
      await chmod(dir, 0o777);
      const native = await mustRun('icecc --build-native', 'icecc', ['--build-native'], {
        cwd: dir,
      });
      const tarball = (await readdir(dir)).find((name) => /\.tar\.(gz|xz|zst)$/.test(name));
      if (tarball === undefined)
        throw new Error(`icecc --build-native made no environment:\n${native.output}`);
      environment = join(dir, tarball);
      log(`icecream: icecc --build-native ${(native.ms / 1000).toFixed(1)} s (not in the builds)`);

      namespace = netnsName(process.pid);
      addNamespace(namespace);
      const links = linkNames(
        (
          await mustRun('ip link', 'ip', ['netns', 'exec', namespace, 'ip', '-o', 'link', 'show'], {
            cwd: dir,
          })
        ).output,
      );
      if (links.join(',') !== 'lo')
        throw new Error(`namespace ${namespace} holds ${links.join(', ')}, not only lo`);

      schedulerLog = await daemonLog(dir, 'scheduler.log');
      const scheduler = startDaemon('ip', [
        'netns',
        'exec',
        namespace,
        'icecc-scheduler',
        '-p',
        String(SCHEDULER_PORT),
        '-l',
        schedulerLog,
        '-vvv',
      ]);
      daemons.push(scheduler);
      const hosts: IcecreamDaemon[] = [
        { name: 'client', port: 10245, slots: 0, noRemote: true, envDir: '', logFile: '' },
        { name: 'ice1', port: 10246, slots: 1, noRemote: false, envDir: '', logFile: '' },
        { name: 'ice2', port: 10247, slots: 1, noRemote: false, envDir: '', logFile: '' },
      ];
      for (const host of hosts) {
        host.envDir = join(dir, `env-${host.name}`);
        host.logFile = await daemonLog(dir, `iceccd-${host.name}.log`);
        const socket = join(dir, `iceccd-${host.name}.socket`);
        if (host.name === 'client') clientSocket = socket;
        const daemon = startDaemon(
          'ip',
          ['netns', 'exec', namespace, 'iceccd', ...iceccdArgs(host, SCHEDULER_PORT)],
          { ICECC_TEST_SOCKET: socket },
        );
        daemons.push(daemon);
      }
      for (const host of hosts) {
        await waitFor(
          `iceccd ${host.name}`,
          async () => (await readText(host.logFile)).includes('Connected to scheduler'),
          async () =>
            `${daemons.map((d) => d.exited() ?? 'running').join(', ')}; ${(await readText(host.logFile)).slice(-2000)}`,
        );
      }
      log(
        `icecream: namespace ${namespace} (lo only), scheduler + iceccd pids ${daemons.map((d) => d.pid).join(', ')}`,
      );
    },
    async build(project, tree, jobs) {
      if (dir === undefined || namespace === undefined) throw new Error('icecream: not started');
      await clean(project, tree);
      const logBefore = await readText(schedulerLog);
      const before = icecreamJobsByServer(logBefore);
      const built = await timedBuild(
        project,
        tree,
        'ip',
        ['netns', 'exec', namespace, 'make', ...project.buildArgs(jobs)],
        {
          PATH: pathWithFirst(ICECC_DIR, process.env.PATH),
          ICECC_VERSION: environment,
          ICECC_TEST_SOCKET: clientSocket,
          ICECC_TEST_REMOTEBUILD: '1',
        },
      );
      const logAfter = await readText(schedulerLog);
      const jobsOn = countsSince(before, icecreamJobsByServer(logAfter));
      const delays = icecreamDelays(logAfter) - icecreamDelays(logBefore);
      const remote = [...jobsOn].filter(([server]) => server !== 'client');
      return {
        ...built,
        remote: remote.reduce((sum, [, n]) => sum + n, 0),
        where:
          `${[...jobsOn].map(([server, n]) => `${server}: ${n}`).join(', ') || 'no jobs'}; ` +
          `no host free ${delays} times`,
      };
    },
    async stop() {
      // The namespace goes after its processes (ip netns del only unmounts it).
      await Promise.all(daemons.map((d) => d.stop()));
      daemons = [];
      if (namespace !== undefined) deleteNamespace(namespace);
      namespace = undefined;
      if (dir !== undefined) removeTempDir(dir);
      dir = undefined;
    },
  };
}
