/**
 * No-op operation benchmarks: `core/noop` tasks through the agent and its host process, one at a
 * time (round trip) and many in flight (throughput).
 */
import { statfsSync } from 'node:fs';
import type { AgentClient } from '../src/protocol/client/agent-client.js';
import { createBundle } from '../src/protocol/client/bundle.js';
import { withAgent, type BenchAgent } from './agent.js';
import {
  fmt,
  list,
  mean,
  median,
  now,
  percentile,
  taskIdPrefix,
  type Benchmark,
  type Measurement,
} from './measure.js';

/** Opens a connection and syncs the default bundle (host + core) on it. */
async function syncedClient(agent: BenchAgent): Promise<AgentClient> {
  const client = await agent.connect();
  try {
    await client.sync(await createBundle());
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
}

function noop(taskId: string): { taskId: string; extension: string; operation: string } {
  return { taskId, extension: 'core', operation: 'noop' };
}

async function runNoop(client: AgentClient, taskId: string): Promise<void> {
  const result = await client.runTask(noop(taskId));
  if (result.status !== 'succeeded') {
    throw new Error(`noop ${taskId} ${result.status}: ${result.error?.message ?? ''}`);
  }
}

export const noopLatency: Benchmark = {
  name: 'no-op round trip',
  describe:
    'One connection, one task at a time: `client.runTask({extension: "core", operation: "noop"})` from sending ' +
    '`task.start` to receiving `task.done` (agent validates, creates the work dir, sends the task to the host process ' +
    'over IPC, the host runs it and answers). 300 warm-ups (the first starts the host), then 2,000 timed; each task is ' +
    'released (awaited, outside the timed window) before the next.',
  async run(ctx) {
    const warmup = ctx.quick ? 100 : 300;
    const count = ctx.quick ? 500 : 2000;
    return withAgent(async (agent) => {
      const client = await syncedClient(agent);
      try {
        const prefix = taskIdPrefix('rt');
        for (let i = 0; i < warmup; i++) {
          await runNoop(client, `${prefix}-w${i}`);
          await client.releaseTask(`${prefix}-w${i}`);
        }
        const times: number[] = [];
        for (let i = 0; i < count; i++) {
          const id = `${prefix}-${i}`;
          const start = now();
          await runNoop(client, id);
          times.push(now() - start);
          await client.releaseTask(id);
        }
        ctx.log(
          `noop round trip: p50 ${fmt(median(times))} ms, p99 ${fmt(percentile(times, 99))} ms, mean ${fmt(mean(times))} ms`,
        );
        const rows: Measurement[] = [
          {
            benchmark: 'no-op round trip',
            metric: 'no-op round trip through agent and host: p50',
            value: median(times),
            unit: 'ms',
            aim: { op: '<=', value: 1 },
            detail: `${count.toLocaleString('en-US')} sequential no-ops; mean ${fmt(mean(times))} ms, min ${fmt(Math.min(...times))} ms`,
          },
          {
            benchmark: 'no-op round trip',
            metric: 'no-op round trip through agent and host: p99',
            value: percentile(times, 99),
            unit: 'ms',
            detail: `${count.toLocaleString('en-US')} sequential no-ops; max ${fmt(Math.max(...times))} ms`,
          },
        ];
        return rows;
      } finally {
        client.close();
      }
    });
  },
};

interface PoolOptions {
  clients: AgentClient[];
  perClient: number;
  total: number;
  /** Stop starting new tasks after this long (the ones in flight still finish). */
  maxMs?: number;
  release: boolean;
  prefix: string;
}

interface PoolResult {
  rate: number;
  done: number;
}

/**
 * Runs `total` no-ops (fewer if `maxMs` runs out first) keeping `perClient` outstanding on each
 * client. With `release`, each task is released as soon as its result arrives, without waiting
 * for the release's ack before the next start (what a coordinator collecting results would do).
 * Returns ops per second; the time stops at the last result; outstanding releases are awaited
 * afterwards.
 */
async function pool(options: PoolOptions): Promise<PoolResult> {
  let next = 0;
  const start = now();
  const deadline = start + (options.maxMs ?? Number.POSITIVE_INFINITY);
  const releases: Promise<void>[] = [];
  let releaseError: Error | undefined;
  const worker = async (client: AgentClient): Promise<void> => {
    while (next < options.total && now() < deadline) {
      const id = `${options.prefix}-${next++}`;
      await runNoop(client, id);
      if (options.release) {
        releases.push(
          client.releaseTask(id).catch((err: unknown) => {
            releaseError ??= err instanceof Error ? err : new Error(String(err));
          }),
        );
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (const client of options.clients) {
    for (let i = 0; i < options.perClient; i++) workers.push(worker(client));
  }
  await Promise.all(workers);
  const ms = now() - start;
  await Promise.all(releases);
  if (releaseError !== undefined) throw releaseError;
  return { rate: next / (ms / 1000), done: next };
}

interface Variant {
  metric: string;
  connections: number;
  perClient: number;
  release: boolean;
  /** Put the agent's data (and temp) dir here instead of the default. */
  baseDir?: string;
}

/** A timed run stops starting no-ops after this long, so a slow agent cannot stretch the run. */
const MAX_RUN_MS = 12_000;

const TMPFS_MAGIC = 0x01021994;

/** /dev/shm when it is a tmpfs (Linux), for the file-system-free diagnostic variant. */
function tmpfsDir(): string | undefined {
  try {
    return statfsSync('/dev/shm').type === TMPFS_MAGIC ? '/dev/shm' : undefined;
  } catch {
    return undefined;
  }
}

function variants(): Variant[] {
  const shm = tmpfsDir();
  return [
    {
      metric: 'no-ops/s, 1 connection x 32 in flight, released (fire-and-forget)',
      connections: 1,
      perClient: 32,
      release: true,
    },
    {
      metric: 'no-ops/s, 2 connections x 16 in flight, released (fire-and-forget)',
      connections: 2,
      perClient: 16,
      release: true,
    },
    ...(shm === undefined
      ? []
      : [
          {
            metric:
              'diagnostic: no-ops/s, 1 connection x 32, released, agent temp dir on tmpfs (/dev/shm)',
            connections: 1,
            perClient: 32,
            release: true,
            baseDir: shm,
          },
        ]),
    // Last: it leaves 60,000+ work dirs whose removal slows the next inode allocations on ext4.
    {
      metric: 'no-ops/s, 1 connection x 32 in flight, not released',
      connections: 1,
      perClient: 32,
      release: false,
    },
  ];
}

export const noopThroughput: Benchmark = {
  name: 'no-op throughput',
  describe:
    'No-ops through one agent (one host process) with 32 outstanding at all times: a fresh agent per variant, 1,000 ' +
    'warm-ups, then 3 timed runs of 20,000 (median reported; a run stops starting tasks after 12 s). "Released": each task is released as soon as its ' +
    'result arrives, without awaiting the ack (how a coordinator would collect results). "Not released": records and ' +
    'work dirs stay on the agent for the grace period (60,000+ by the end of the variant). The diagnostic row runs ' +
    'the agent with its data and temp dir on tmpfs, to show what the per-task work dir costs on a real disk.',
  async run(ctx) {
    const total = ctx.quick ? 5000 : 20_000;
    const runs = ctx.quick ? 1 : 3;
    const rows: Measurement[] = [];
    for (const variant of variants()) {
      let capped = false;
      const rates = await withAgent(
        async (agent) => {
          const clients: AgentClient[] = [];
          try {
            for (let i = 0; i < variant.connections; i++) clients.push(await syncedClient(agent));
            const prefix = taskIdPrefix('tp');
            await pool({
              clients,
              perClient: variant.perClient,
              total: 1000,
              release: variant.release,
              prefix: `${prefix}-w`,
            });
            const rates: number[] = [];
            for (let run = 0; run < runs; run++) {
              const { rate, done } = await pool({
                clients,
                perClient: variant.perClient,
                total,
                maxMs: MAX_RUN_MS,
                release: variant.release,
                prefix: `${prefix}-${run}`,
              });
              rates.push(rate);
              if (done < total) capped = true;
              ctx.log(
                `${variant.metric}: run ${run + 1}/${runs}: ${fmt(rate, 0)} ops/s (${done} no-ops)`,
              );
            }
            return rates;
          } finally {
            for (const c of clients) c.close();
          }
        },
        variant.baseDir === undefined ? {} : { baseDir: variant.baseDir },
      );
      rows.push({
        benchmark: 'no-op throughput',
        metric: variant.metric,
        value: median(rates),
        unit: 'ops/s',
        ...(variant.baseDir === undefined ? { aim: { op: '>=', value: 10_000 } as const } : {}),
        detail:
          `median of ${runs} x ${total.toLocaleString('en-US')}` +
          `${capped ? ` (some runs cut at ${MAX_RUN_MS / 1000} s)` : ''}: ${list(rates, 'ops/s')}`,
      });
    }
    return rows;
  },
};
