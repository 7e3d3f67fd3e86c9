/**
 * Sync benchmarks: pushing a ~100 MB host+extension set to an agent over TLS on loopback, cold
 * (nothing on the agent) and again with nothing changed.
 */
import { rm } from 'node:fs/promises';
import { coreExtensionDir, createBundle, type Bundle } from '../src/protocol/client/bundle.js';
import { startAgent, withAgent } from './agent.js';
import {
  fmt,
  list,
  makePayloadExtension,
  MB,
  median,
  now,
  percentile,
  type BenchContext,
  type Benchmark,
  type Measurement,
} from './measure.js';

const PAYLOAD_FILES = 100;
const PAYLOAD_FILE_BYTES = 1 * MB;

/** The bundle: the default host, the core extension and a 100 x 1 MB `payload` extension. */
async function withPayloadBundle<T>(
  ctx: BenchContext,
  body: (bundle: Bundle, totalBytes: number) => Promise<T>,
): Promise<T> {
  const files = ctx.quick ? 20 : PAYLOAD_FILES;
  const payload = await makePayloadExtension(files, PAYLOAD_FILE_BYTES);
  try {
    const bundle = await createBundle({
      extensionDirs: [coreExtensionDir, payload.dir],
      label: 'bench-payload',
    });
    let totalBytes = 0;
    for (const blob of bundle.blobs.values()) totalBytes += blob.size;
    ctx.log(
      `bundle: ${bundle.manifest.files.length} files, ${bundle.blobs.size} blobs, ${(totalBytes / MB).toFixed(1)} MB`,
    );
    return await body(bundle, totalBytes);
  } finally {
    await rm(payload.root, { recursive: true, force: true });
  }
}

export const coldSync: Benchmark = {
  name: 'cold sync',
  describe:
    'A fresh agent (new data dir, empty blob store) per repetition; one TLS connection is opened first, then only ' +
    '`client.sync(bundle)` is timed: offer, the agent answers with every blob missing, the client streams them ' +
    '(1 MB chunks), the agent verifies, stores and materialises the version and says `sync.done`. Bundle: default host ' +
    '+ core + a `payload` extension of 100 random 1 MB files (hashing is done before). MB = 10^6 bytes of blobs sent.',
  async run(ctx) {
    const reps = ctx.quick ? 2 : 3;
    return withPayloadBundle(ctx, async (bundle, totalBytes) => {
      const rates: number[] = [];
      const times: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        await withAgent(async (agent) => {
          const client = await agent.connect();
          try {
            const start = now();
            const result = await client.sync(bundle);
            const ms = now() - start;
            if (result.versionId !== bundle.versionId)
              throw new Error('cold sync: wrong version id');
            if (result.sentBytes !== totalBytes) {
              throw new Error(`cold sync sent ${result.sentBytes} bytes, expected ${totalBytes}`);
            }
            times.push(ms);
            rates.push(result.sentBytes / MB / (ms / 1000));
            ctx.log(
              `cold sync ${rep + 1}/${reps}: ${ms.toFixed(0)} ms, ${rates.at(-1)!.toFixed(1)} MB/s`,
            );
          } finally {
            client.close();
          }
        });
      }
      return [
        {
          benchmark: 'cold sync',
          metric: `cold sync of ${(totalBytes / MB).toFixed(0)} MB host+extensions, TLS loopback`,
          value: median(rates),
          unit: 'MB/s',
          aim: { op: '>=', value: 200 },
          detail: `median of ${reps} fresh agents: ${list(rates, 'MB/s')} (${list(times, 'ms')})`,
        },
      ];
    });
  },
};

export const reSync: Benchmark = {
  name: 're-sync',
  describe:
    'One agent that already holds the 100 MB bundle (synced once, untimed). Same connection: 200 `client.sync(bundle)` ' +
    'calls in a row after 5 warm-ups (offer of the full manifest, agent finds the version materialised, `sync.done`). ' +
    'New connection: 20 times connect (TLS + challenge-response), sync, close; the sync alone and connect + sync are ' +
    'reported.',
  async run(ctx) {
    const sameConn = ctx.quick ? 40 : 200;
    const newConn = ctx.quick ? 8 : 20;
    return withPayloadBundle(ctx, async (bundle) => {
      const agent = await startAgent();
      try {
        const sameTimes: number[] = [];
        const client = await agent.connect();
        try {
          await client.sync(bundle);
          for (let i = 0; i < 5; i++) await client.sync(bundle);
          for (let i = 0; i < sameConn; i++) {
            const start = now();
            const result = await client.sync(bundle);
            sameTimes.push(now() - start);
            if (result.sentBlobs !== 0) throw new Error(`re-sync sent ${result.sentBlobs} blobs`);
          }
        } finally {
          client.close();
        }
        const syncTimes: number[] = [];
        const totalTimes: number[] = [];
        for (let i = 0; i < newConn; i++) {
          const start = now();
          const c = await agent.connect();
          try {
            const connected = now();
            const result = await c.sync(bundle);
            const end = now();
            if (result.sentBlobs !== 0) throw new Error(`re-sync sent ${result.sentBlobs} blobs`);
            syncTimes.push(end - connected);
            totalTimes.push(end - start);
          } finally {
            c.close();
          }
        }
        ctx.log(
          `re-sync same connection p50 ${fmt(median(sameTimes))} ms, p99 ${fmt(percentile(sameTimes, 99))} ms; ` +
            `new connection sync p50 ${fmt(median(syncTimes))} ms, connect+sync p50 ${fmt(median(totalTimes))} ms`,
        );
        const aim = { op: '<=', value: 20 } as const;
        const rows: Measurement[] = [
          {
            benchmark: 're-sync',
            metric: 're-sync, nothing changed, same connection: p50',
            value: median(sameTimes),
            unit: 'ms',
            aim,
            detail: `${sameTimes.length} re-syncs; min ${fmt(Math.min(...sameTimes))} ms`,
          },
          {
            benchmark: 're-sync',
            metric: 're-sync, nothing changed, same connection: p99',
            value: percentile(sameTimes, 99),
            unit: 'ms',
            aim,
            detail: `${sameTimes.length} re-syncs; max ${fmt(Math.max(...sameTimes))} ms`,
          },
          {
            benchmark: 're-sync',
            metric: 're-sync on a new connection (sync only): p50',
            value: median(syncTimes),
            unit: 'ms',
            aim,
            detail: `${syncTimes.length} connections; p99 ${fmt(percentile(syncTimes, 99))} ms`,
          },
          {
            benchmark: 're-sync',
            metric: 'reconnect (TLS + auth) + re-sync: p50',
            value: median(totalTimes),
            unit: 'ms',
            detail: `${totalTimes.length} connections; p99 ${fmt(percentile(totalTimes, 99))} ms`,
          },
        ];
        return rows;
      } finally {
        await agent.stop();
      }
    });
  },
};
