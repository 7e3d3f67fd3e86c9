/**
 * Starts a real `muster coordinator` process for a benchmark (loopback, port 0, plain HTTP, a
 * fresh data dir, a known admin password), logs in, and talks to its REST API. Every coordinator
 * started here is killed and its data dir removed by `stop()`, and — should a benchmark throw or
 * the run be interrupted — by the process-wide exit hooks below.
 *
 * The data dir goes under BENCH_COORDINATOR_DIR, else BENCH_DIR, else the OS temp dir; node flags
 * for the coordinator come from BENCH_COORDINATOR_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=DIR").
 *
 * Like bench/agent.ts, kept apart from test/helpers/ so the benchmarks do not depend on test code
 * (process handling is shared in bench/process.ts). Also reads the process's RSS and CPU time from /proc (Linux).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildView } from '../src/api/views/builds.js';
import { startAgent, type BenchAgent } from './agent.js';
import { cliPath, nodeArgsFrom, spawnMuster } from './process.js';

export { cliPath };

const ADMIN_PASSWORD = 'bench-admin-password';

export interface ApiResponse<T> {
  status: number;
  body: T;
}

export interface BenchCoordinator {
  readonly url: string;
  readonly token: string;
  /** Logs in as admin (a backup can only once it holds its primary's users). */
  login(): Promise<void>;
  /** SIGKILL, keeping the data dir for a restart (startCoordinator({ dataDir })). */
  kill(): Promise<void>;
  readonly pid: number;
  readonly dataDir: string;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>>;
  /** Registers a real agent started by bench/agent.ts (TLS, pinned fingerprint). */
  addAgent(name: string, agent: BenchAgent, options?: { slots?: number }): Promise<void>;
  /** Polls GET /api/v1/status until `connected` agents are connected. */
  waitForAgents(connected: number, timeoutMs?: number): Promise<void>;
  /** Polls GET /api/v1/builds/:id (every `intervalMs`) until the build has ended. */
  waitForBuild(id: number, timeoutMs?: number, intervalMs?: number): Promise<BuildView>;
  /** SIGTERM (SIGKILL after 10 s), then removes the data dir. Idempotent. */
  stop(): Promise<void>;
}

export interface CoordinatorStartOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Node flags for the coordinator (also BENCH_COORDINATOR_NODE_ARGS, e.g. "--cpu-prof"). */
  nodeArgs?: string[];
  /** Reuse this data dir (a restart); default: a new one. */
  dataDir?: string;
  /** Log in at start (default); a new backup has no users yet. */
  login?: boolean;
  /** HOST:PORT to listen on (a restart keeps its address); default 127.0.0.1:0. */
  listen?: string;
}

export async function startCoordinator(
  options: CoordinatorStartOptions = {},
): Promise<BenchCoordinator> {
  const base = process.env.BENCH_COORDINATOR_DIR || process.env.BENCH_DIR || tmpdir();
  const dataDir = options.dataDir ?? (await mkdtemp(join(base, 'muster-bench-coord-')));
  const { child, stop, kill } = spawnMuster(
    [
      'coordinator',
      '--listen',
      options.listen ?? '127.0.0.1:0',
      '--data',
      dataDir,
      ...(options.args ?? []),
    ],
    {
      dataDir,
      nodeArgs: [...nodeArgsFrom('BENCH_COORDINATOR_NODE_ARGS'), ...(options.nodeArgs ?? [])],
      env: { MUSTER_ADMIN_PASSWORD: ADMIN_PASSWORD, ...options.env },
    },
  );
  let stderr = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`coordinator did not start in 30 s: ${stderr}`)),
        30_000,
      );
      child.stderr!.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
        const match = /listening on (\S+)\n/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`coordinator exited (${code ?? signal}) before listening: ${stderr}`));
      });
    });
    // Drain its log (JSON lines); show errors. Not parsed otherwise: at thousands of agents
    // the benchmark process should not spend its time on the coordinator's log.
    let buffer = '';
    child.stdout!.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('"level":50') || line.includes('"level":60'))
          process.stderr.write(`coordinator: ${line}\n`);
      }
    });
    const call = async <T>(
      method: string,
      path: string,
      body?: unknown,
      token?: string,
    ): Promise<ApiResponse<T>> => {
      const response = await fetch(`${url}/api/v1${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(120_000),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
    };
    let token = '';
    const login = async (): Promise<void> => {
      const response = await call<{ token: string }>('POST', '/login', {
        user: 'admin',
        password: ADMIN_PASSWORD,
      });
      if (response.status !== 200)
        throw new Error(`login failed: ${JSON.stringify(response.body)}`);
      token = response.body.token;
    };
    if (options.login ?? true) await login();
    const api = <T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> =>
      call<T>(method, path, body, token);
    return {
      url,
      get token() {
        return token;
      },
      login,
      kill,
      pid: child.pid!,
      dataDir,
      api,
      addAgent: async (name, agent, agentOptions = {}) => {
        const response = await api('POST', '/agents', {
          name,
          address: `127.0.0.1:${agent.port}`,
          accessKey: agent.accessKey,
          fingerprint: agent.fingerprint,
          ...(agentOptions.slots === undefined ? {} : { slots: agentOptions.slots }),
        });
        if (response.status !== 201)
          throw new Error(`adding agent ${name}: ${JSON.stringify(response.body)}`);
      },
      waitForAgents: async (connected, timeoutMs = 60_000) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { body } = await api<{ agents: { total: number; connected: number } }>(
            'GET',
            '/status',
          );
          if (body.agents.connected >= connected) return;
          if (Date.now() > deadline) {
            throw new Error(
              `only ${body.agents.connected} of ${connected} agents connected after ${timeoutMs / 1000} s`,
            );
          }
          await sleep(100);
        }
      },
      waitForBuild: async (id, timeoutMs = 60_000, intervalMs = 50) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { body } = await api<BuildView>('GET', `/builds/${id}`);
          if (body.status !== 'queued' && body.status !== 'running') return body;
          if (Date.now() > deadline)
            throw new Error(`build ${id} did not finish in ${timeoutMs / 1000} s`);
          await sleep(intervalMs);
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function withCoordinator<T>(
  body: (coordinator: BenchCoordinator) => Promise<T>,
  options: CoordinatorStartOptions = {},
): Promise<T> {
  const coordinator = await startCoordinator(options);
  try {
    return await body(coordinator);
  } finally {
    await coordinator.stop();
  }
}

/** Starts `count` real agents (TLS, fresh data dirs) and always stops them afterwards. */
export async function withAgents<T>(
  count: number,
  body: (agents: BenchAgent[]) => Promise<T>,
): Promise<T> {
  const started = await Promise.allSettled(Array.from({ length: count }, () => startAgent()));
  const agents = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return await body(agents);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux almost always). */
const clockTicks: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface ProcessSample {
  /** Resident set size, KiB (VmRSS). */
  rssKiB: number;
  /** User + system CPU time so far, ms. */
  cpuMs: number;
  /** Of which in the kernel (stime), ms. */
  systemMs: number;
  /** performance.now() when sampled. */
  at: number;
}

/** RSS and CPU time of a process from /proc (Linux only). */
export function sampleProcess(pid: number): ProcessSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!rss) throw new Error(`no VmRSS for process ${pid}`);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at ") ".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
  const user = Number(fields[11]);
  const system = Number(fields[12]);
  return {
    rssKiB: Number(rss[1]),
    cpuMs: ((user + system) * 1000) / clockTicks,
    systemMs: (system * 1000) / clockTicks,
    at: performance.now(),
  };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function inBatches<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Waits until the processes have together used at most `maxCpuMs` of CPU over `windowMs` (a
 * coordinator and its agents done with their start: agents connecting, syncing, the first
 * heartbeats), at most `limitMs`. A timed build right after a start otherwise shares the cores
 * with that work, which no user's build meets against a coordinator that has been running.
 * Returns whether they settled.
 */
export async function waitUntilIdle(
  pids: readonly number[],
  options: { windowMs?: number; maxCpuMs?: number; limitMs?: number } = {},
): Promise<boolean> {
  const windowMs = options.windowMs ?? 500;
  const maxCpuMs = options.maxCpuMs ?? 10;
  const deadline = performance.now() + (options.limitMs ?? 15_000);
  const cpu = (): number => pids.reduce((sum, pid) => sum + sampleProcess(pid).cpuMs, 0);
  let before = cpu();
  while (performance.now() < deadline) {
    await sleep(windowMs);
    const after = cpu();
    if (after - before <= maxCpuMs) return true;
    before = after;
  }
  return false;
}
