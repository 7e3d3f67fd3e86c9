/**
 * Starts a real `muster agent` process for a benchmark: loopback, port 0, TLS with its
 * self-signed certificate, a fresh temp data dir. Every agent started here is killed and its
 * data dir removed by `stop()`, and — should a benchmark throw or the run be interrupted — by
 * the process-wide exit hooks below.
 *
 * Kept apart from test/helpers/ so the benchmarks do not depend on test code; process handling is
 * shared with the coordinator benchmarks in bench/process.ts.
 */
import { newInstanceKey } from '../src/protocol/handshake.js';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient, type AgentClientOptions } from '../src/protocol/client/agent-client.js';
import { nodeArgsFrom, spawnMuster } from './process.js';

const BENCH_INSTANCE_KEY = newInstanceKey();

export interface BenchAgent {
  readonly port: number;
  readonly fingerprint: string;
  readonly accessKey: string;
  readonly dataDir: string;
  readonly pid: number | undefined;
  connect(overrides?: Partial<AgentClientOptions>): Promise<AgentClient>;
  /** SIGTERM (SIGKILL after 10 s), then removes the data dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra agent flags, e.g. ['--log-level', 'warn']. */
  args?: string[];
  /**
   * Where the data dir (and so the agent's temp dir: blobs, versions, work dirs) is made.
   * Default: BENCH_DIR, else the OS temp dir.
   */
  baseDir?: string;
  /** Node flags for the agent (its host processes inherit them through fork's execArgv). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

export async function startAgent(options: StartOptions = {}): Promise<BenchAgent> {
  const base = options.baseDir ?? (process.env.BENCH_DIR || tmpdir());
  const dataDir = await mkdtemp(join(base, 'muster-bench-'));
  const proc = spawnMuster(
    ['agent', '--listen', '127.0.0.1:0', '--data', dataDir, ...(options.args ?? [])],
    {
      dataDir,
      nodeArgs: [...nodeArgsFrom('BENCH_AGENT_NODE_ARGS'), ...(options.nodeArgs ?? [])],
      ...(options.env ? { env: options.env } : {}),
    },
  );
  const { child, stop } = proc;
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  try {
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buffer = '';
      const timer = setTimeout(
        () => reject(new Error(`agent did not start in 30 s: ${stderr}`)),
        30_000,
      );
      child.stdout!.on('data', (d: Buffer) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (parsed.msg === 'listening') {
            clearTimeout(timer);
            resolve(parsed);
          } else if (parsed.level !== undefined && Number(parsed.level) >= 50) {
            process.stderr.write(`agent: ${line}\n`);
          }
        }
      });
      child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        reject(new Error(`agent exited (${code ?? signal}) before listening: ${stderr}`));
      });
    });
    const fingerprint = listening.fingerprint;
    if (typeof fingerprint !== 'string') throw new Error('the agent started without TLS');
    const port = listening.port as number;
    const accessKey = (await readFile(join(dataDir, 'access-key'), 'utf8')).trim();
    return {
      port,
      fingerprint,
      accessKey,
      dataDir,
      pid: child.pid,
      connect: (overrides = {}) =>
        AgentClient.connect({
          host: '127.0.0.1',
          port,
          accessKey,
          tls: { fingerprint },
          product: 'muster-bench',
          productVersion: '0.0.0-bench',
          instanceId: 'bench',
          instanceKey: BENCH_INSTANCE_KEY,
          ...overrides,
        }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs `body` with a fresh agent, and always stops it (and removes its data dir) afterwards. */
export async function withAgent<T>(
  body: (agent: BenchAgent) => Promise<T>,
  options: StartOptions = {},
): Promise<T> {
  const agent = await startAgent(options);
  try {
    return await body(agent);
  } finally {
    await agent.stop();
  }
}

/** Runs `body` with a connection, and always closes it. */
export async function withClient<T>(
  agent: BenchAgent,
  body: (client: AgentClient) => Promise<T>,
): Promise<T> {
  const client = await agent.connect();
  try {
    return await body(client);
  } finally {
    client.close();
  }
}
