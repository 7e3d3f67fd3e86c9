/**
 * The pure part of the compile benchmark's peers (bench/cc-peer-runners.ts): the command lines of
 * distcc's and icecream's daemons, the environment a build runs with, and what their logs say
 * about where the compiles ran. No process is started here.
 */

/** distcc's host list: each daemon at 127.0.0.1 (not `localhost`, which distcc runs in-process). */
export function distccHosts(ports: readonly number[]): string {
  return ports.map((port) => `127.0.0.1:${port}/1`).join(' ');
}

/**
 * One distccd in the foreground (`--no-detach`, so the pid the benchmark holds is the daemon's),
 * one job, only 127.0.0.1, at nice 0 like make's own compilers (distccd's default is 5, which on
 * a shared machine would slow it down against the other rows).
 */
export function distccdArgs(port: number, logFile: string): string[] {
  return [
    '--daemon',
    '--no-detach',
    '--listen',
    '127.0.0.1',
    '--port',
    String(port),
    '--allow',
    '127.0.0.1',
    '--jobs',
    '1',
    '--nice',
    '0',
    `--log-file=${logFile}`,
    '--log-level=info',
  ];
}

/** Compiles a distccd log reports as done (`COMPILE_OK` in its job summaries). */
export function distccCompiles(log: string): number {
  return log.split('\n').filter((line) => line.includes(' COMPILE_OK ')).length;
}

/** PATH with `dir` first (a masquerade directory: gcc, g++, cc… that are the tool's client). */
export function pathWithFirst(dir: string, path: string | undefined): string {
  return path === undefined || path === '' ? dir : `${dir}:${path}`;
}

export interface IcecreamDaemon {
  /** The host's name for the scheduler (`-N`). */
  name: string;
  /** TCP port for remote jobs (`-p`), inside the benchmark's network namespace. */
  port: number;
  /** Compile slots (`-m`); 0 with `noRemote` for the client's own daemon. */
  slots: number;
  noRemote: boolean;
  envDir: string;
  logFile: string;
}

/**
 * One iceccd in the foreground, connected to the scheduler by address (a lone `lo` carries no
 * broadcast to rely on), at nice 0 (iceccd's default is 5; see distccdArgs).
 */
export function iceccdArgs(daemon: IcecreamDaemon, schedulerPort: number): string[] {
  return [
    '-s',
    `127.0.0.1:${schedulerPort}`,
    '-p',
    String(daemon.port),
    '-N',
    daemon.name,
    '-m',
    String(daemon.slots),
    ...(daemon.noRemote ? ['--no-remote'] : []),
    '-b',
    daemon.envDir,
    '-l',
    daemon.logFile,
    '--nice',
    '0',
    '-vv',
  ];
}

/**
 * Finished jobs per build host in an icecc-scheduler log (written with `-vvv`):
 * `END 3 status=0 in=… out=… real=… server=ice2`.
 */
export function icecreamJobsByServer(log: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of log.split('\n')) {
    const match = /: END \d+ status=\d+ .* server=(\S+)\s*$/.exec(line);
    if (match?.[1] === undefined) continue;
    counts.set(match[1], (counts.get(match[1]) ?? 0) + 1);
  }
  return counts;
}

/**
 * How often the scheduler found no host for a waiting job (`No suitable host found, delaying`):
 * every host busy, or a host's load (the whole machine's, measured by each iceccd) too high.
 */
export function icecreamDelays(log: string): number {
  return log.split('\n').filter((line) => line.includes('No suitable host found, delaying')).length;
}

/** `after - before` per key (the jobs of one build, from two readings of a growing log). */
export function countsSince(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0);
    if (delta !== 0) out.set(key, delta);
  }
  return out;
}

/** The only interface names in `ip -o link show` output (one line per link: `1: lo: <…>`). */
export function linkNames(ipOutput: string): string[] {
  return ipOutput
    .split('\n')
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

/** The benchmark's own network namespace: one per benchmark process. */
export function netnsName(pid: number): string {
  return `muster-bench-${pid}`;
}

/**
 * Each round's peer time divided by plain make's time in the same round (rounds where either is
 * missing are skipped), in round order.
 */
export function ratiosToMake(
  make: readonly (number | undefined)[],
  peer: readonly (number | undefined)[],
): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(make.length, peer.length); i++) {
    const m = make[i];
    const p = peer[i];
    if (m !== undefined && p !== undefined && m > 0) out.push(p / m);
  }
  return out;
}
