/**
 * The processes and the network namespace the compile benchmark's peers start: every daemon and
 * every build runs in its own process group (spawned detached), so it is stopped with all its
 * children by the group id the benchmark holds — never by name. Should the benchmark throw, exit
 * or be interrupted (Ctrl-C, SIGTERM), the hooks below kill what is left, delete the namespace and
 * remove the temp dirs.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { now } from './measure.js';

const groups = new Set<number>();
const namespaces = new Set<string>();
const dirs = new Set<string>();

function killGroupNow(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

function deleteNamespaceNow(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already deleted
  }
}

function cleanUpNow(): void {
  for (const pid of groups) killGroupNow(pid, 'SIGKILL');
  groups.clear();
  for (const name of namespaces) deleteNamespaceNow(name);
  namespaces.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

process.once('exit', cleanUpNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUpNow();
    process.exit(130);
  });
}

export interface Daemon {
  pid: number;
  /** Stops the daemon's whole process group: SIGTERM, SIGKILL after 5 s. Idempotent. */
  stop(): Promise<void>;
  /** Whether it has exited (and with what), for error messages. */
  exited(): string | undefined;
}

function exitedPromise(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** Starts a long-running program in its own process group, output discarded (it logs to files). */
export function startDaemon(command: string, args: string[], env?: NodeJS.ProcessEnv): Daemon {
  const child = spawn(command, args, {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, ...env },
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  groups.add(pid);
  const exited = exitedPromise(child);
  let stopping: Promise<void> | undefined;
  return {
    pid,
    exited: () =>
      child.exitCode !== null || child.signalCode !== null
        ? `exited with ${child.exitCode ?? child.signalCode}`
        : undefined,
    stop: () => {
      stopping ??= (async () => {
        killGroupNow(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroupNow(pid, 'SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
        // Children that outlived their parent (the group is still there) go too.
        killGroupNow(pid, 'SIGKILL');
        groups.delete(pid);
      })();
      return stopping;
    },
  };
}

export interface Finished {
  code: number | null;
  ms: number;
  output: string;
  /**
   * CPU time the whole machine spent busy while the command ran (every process: the command's,
   * daemons it talks to, anything else running), from /proc/stat; undefined where unreadable.
   */
  machineCpuMs: number | undefined;
}

/** A finished build's wall time and, where known, the machine's busy CPU time meanwhile. */
export function timing(result: Finished): { ms: number; machineCpuMs?: number } {
  return {
    ms: result.ms,
    ...(result.machineCpuMs === undefined ? {} : { machineCpuMs: result.machineCpuMs }),
  };
}

/** USER_HZ, the unit of /proc/stat: 100 on every Linux architecture Node runs on. */
const TICK_MS = 10;

/**
 * The machine's busy CPU time so far (ms): /proc/stat's first line, user + nice + system + irq +
 * softirq (guest time is already in user; idle, iowait and steal are not this machine's work).
 */
function machineBusyMs(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0] ?? '';
    const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = [user, nice, system, irq, softirq];
    if (busy.some((n) => n === undefined || !Number.isFinite(n))) return undefined;
    return busy.reduce<number>((sum, n) => sum + (n ?? 0), 0) * TICK_MS;
  } catch {
    return undefined;
  }
}

/**
 * Runs a command to its end in its own process group (killed whole after `limitMs`, or when the
 * benchmark is interrupted); stdout and stderr together, the last 64 kB kept.
 */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; limitMs?: number },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const start = now();
    const busyBefore = machineBusyMs();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid;
    if (pid !== undefined) groups.add(pid);
    let output = '';
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-65536);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer =
      options.limitMs === undefined || pid === undefined
        ? undefined
        : setTimeout(() => {
            output += `\n[killed after ${options.limitMs} ms]\n`;
            killGroupNow(pid, 'SIGKILL');
          }, options.limitMs);
    child.once('error', (err) => {
      if (timer !== undefined) clearTimeout(timer);
      if (pid !== undefined) groups.delete(pid);
      reject(err);
    });
    child.once('close', (code) => {
      const ms = now() - start;
      const busyAfter = machineBusyMs();
      const machineCpuMs =
        busyBefore === undefined || busyAfter === undefined ? undefined : busyAfter - busyBefore;
      if (timer !== undefined) clearTimeout(timer);
      if (pid !== undefined) {
        // Anything the command left behind in its group (a daemon a compiler wrapper forked).
        killGroupNow(pid, 'SIGKILL');
        groups.delete(pid);
      }
      resolve({ code, ms, output, machineCpuMs });
    });
  });
}

/** Runs a command and throws with its output unless it exits 0. */
/**
 * The environment of a `muster build` with its own home under `dir` and no coordinator (an
 * address nothing answers on): every compile is served by this machine's cache or compiled here.
 */
export function offlineMusterEnv(dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: dir,
    XDG_CACHE_HOME: join(dir, 'cache'),
    // The per-user compile service its builds start is this benchmark's: stopMusterService.
    XDG_RUNTIME_DIR: join(dir, 'run'),
    MUSTER_URL: 'http://127.0.0.1:9',
    MUSTER_TOKEN: 'none',
  };
}

/** Ends the per-user compile service `muster build` started with `env` (`muster cc --stop`). */
export async function stopMusterService(env: NodeJS.ProcessEnv): Promise<void> {
  const muster = fileURLToPath(new URL('../../bin/muster', import.meta.url));
  await mustRun('muster cc --stop', muster, ['cc', '--stop'], { cwd: '/', env });
}

export async function mustRun(
  what: string,
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; limitMs?: number },
): Promise<Finished> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0)
    throw new Error(`${what} exited with ${result.code}:\n${result.output.slice(-4000)}`);
  return result;
}

/**
 * Creates a network namespace holding only `lo` (up), recorded so the exit hooks delete it.
 * Needs root (CAP_SYS_ADMIN).
 */
export function addNamespace(name: string): void {
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  namespaces.add(name);
  execFileSync('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

export function deleteNamespace(name: string): void {
  deleteNamespaceNow(name);
  namespaces.delete(name);
}

/** A new temp dir (under BENCH_DIR or the system's), removed by the exit hooks if still there. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(process.env.BENCH_DIR || tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}
