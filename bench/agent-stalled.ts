/**
 * An agent under a crowd of stalled, unauthenticated connections: what they cost it in memory,
 * and what they cost a legitimate coordinator that connects meanwhile.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { startAgent, type BenchAgent } from './agent.js';
import { sampleProcess } from './coordinator-process.js';
import { fmt, MB, median, now, type Benchmark, type Measurement } from './measure.js';

const STALLED = 500;
/** The agent's default cap per source address; the stalled connections spread over enough. */
const PER_ADDRESS = 16;
const SAMPLES = 30;
const WARM_UPS = 20;

/**
 * How one stalled connection stalls, in turn: TCP that never starts TLS; TLS and silence; TLS and
 * 3 bytes of a 4 MiB length prefix; TLS and most of a frame just under the 16 KiB limit before
 * authentication (the most an unauthenticated peer can make the agent buffer).
 */
const KINDS = ['tcp', 'tls', 'prefix', 'frame'] as const;
type Kind = (typeof KINDS)[number];

function openStalled(port: number, kind: Kind, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const onConnected = (): void => {
      socket.off('error', reject);
      socket.on('error', () => undefined);
      if (kind === 'prefix') socket.write(Buffer.from([0x00, 0x40, 0x00]));
      if (kind === 'frame') {
        const length = 16 * 1024 - 1;
        const head = Buffer.alloc(5);
        head.writeUInt32BE(length, 0);
        head.writeUInt8(1, 4);
        socket.write(Buffer.concat([head, Buffer.alloc(length - 100, 0x20)]));
      }
      resolve(socket);
    };
    // tls.connect hands localAddress on to net.connect; its type does not list it.
    const bind = { localAddress };
    const socket: Socket =
      kind === 'tcp'
        ? netConnect({ host: '127.0.0.1', port, ...bind }, onConnected)
        : tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...bind }, onConnected);
    socket.once('error', reject);
  });
}

/** Connect (TLS + hello/challenge/auth/ready) and close, SAMPLES times; ms each. */
async function connectTimes(agent: BenchAgent): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < WARM_UPS + SAMPLES; i++) {
    const t0 = now();
    const client = await agent.connect({ localAddress: '127.0.0.1' });
    const elapsed = now() - t0;
    client.close();
    if (i >= WARM_UPS) times.push(elapsed);
  }
  return times;
}

async function settle(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export const stalledConnections: Benchmark = {
  name: 'agent under stalled connections',
  describe:
    `One \`muster agent\` (TLS, default limits, \`--handshake-timeout 10m\` so nothing expires during the run). ` +
    `First ${SAMPLES} connects of a coordinator-side \`AgentClient\` (TCP + TLS + hello/challenge/auth/ready, ` +
    `then close; ${WARM_UPS} warm-ups) are timed unloaded. Then ${STALLED} connections are opened one after ` +
    `another and left stalled, from 127.0.0.2 up (${PER_ADDRESS} per address, the per-address cap), in turn: TCP ` +
    'that never starts TLS, TLS and silence, TLS and 3 bytes of a 4 MiB length prefix, TLS and 16,283 bytes of a ' +
    'frame just under the 16 KiB limit before authentication. The agent keeps at most 256 unauthenticated ' +
    'connections and drops the oldest for each one over that. RSS increase = agent VmRSS (/proc/PID/status) 2 s ' +
    `after the last was opened - VmRSS before (after the unloaded connects); MB = 10^6 bytes. Then the ${SAMPLES} ` +
    'connects are timed again (the first takes the place of the oldest stalled connection; each leaves the cap once ' +
    'authenticated), and once more after the ' +
    'stalled connections are gone; ratio = loaded median / median of both unloaded sets.',
  async run(ctx) {
    const agent = await startAgent({ args: ['--handshake-timeout', '10m'] });
    const stalled: Socket[] = [];
    try {
      const pid = agent.pid;
      if (pid === undefined) throw new Error('the agent has no pid');
      const unloaded = await connectTimes(agent);
      await settle(1000);
      const before = sampleProcess(pid);
      const count = ctx.quick ? 100 : STALLED;
      for (let i = 0; i < count; i++) {
        const address = `127.0.0.${2 + Math.floor(i / PER_ADDRESS)}`;
        const socket = await openStalled(agent.port, KINDS[i % KINDS.length]!, address);
        stalled.push(socket);
      }
      await settle(2000);
      const after = sampleProcess(pid);
      const held = stalled.filter((s) => !s.destroyed && s.readyState === 'open').length;
      const loaded = await connectTimes(agent);
      // Unloaded again once the agent has seen the stalled connections go: the agent's code is
      // as warm as in the loaded run, and load from elsewhere on the machine averages out.
      for (const socket of stalled) socket.destroy();
      await settle(2000);
      const unloadedAfter = await connectTimes(agent);
      ctx.log(
        `unloaded medians: ${fmt(median(unloaded))} ms before, ${fmt(median(unloadedAfter))} ms after`,
      );
      unloaded.push(...unloadedAfter);
      const increaseMB = ((after.rssKiB - before.rssKiB) * 1024) / MB;
      const unloadedMs = median(unloaded);
      const loadedMs = median(loaded);
      ctx.log(
        `VmRSS ${fmt(before.rssKiB / 1024, 1)} MiB -> ${fmt(after.rssKiB / 1024, 1)} MiB; ${held} of ${count} stalled connections still open`,
      );
      ctx.log(
        `connect+auth median ${fmt(unloadedMs)} ms unloaded, ${fmt(loadedMs)} ms under stalled connections`,
      );
      const benchmark = stalledConnections.name;
      const results: Measurement[] = [
        {
          benchmark,
          metric: `agent RSS increase under ${count} stalled unauthenticated connections`,
          value: increaseMB,
          unit: 'MB',
          aim: { op: '<=', value: 50 },
          detail: `VmRSS ${fmt(before.rssKiB / 1024, 1)} MiB before, ${fmt(after.rssKiB / 1024, 1)} MiB after; ${held} of ${count} still open (cap 256, the oldest dropped): ${fmt(((after.rssKiB - before.rssKiB) * 1.024) / Math.max(1, held), 1)} KB each`,
        },
        {
          benchmark,
          metric: `coordinator connect + authenticate under ${count} stalled connections / unloaded`,
          value: loadedMs / unloadedMs,
          unit: 'x',
          aim: { op: '<=', value: 2 },
          detail: `medians: ${fmt(loadedMs)} ms loaded (${SAMPLES}), ${fmt(unloadedMs)} ms unloaded (${SAMPLES} before and ${SAMPLES} after)`,
        },
        {
          benchmark,
          metric: 'coordinator connect + authenticate, unloaded: p50',
          value: unloadedMs,
          unit: 'ms',
          detail: `${SAMPLES} connects before and ${SAMPLES} after the stalled ones; min ${fmt(Math.min(...unloaded))} ms, max ${fmt(Math.max(...unloaded))} ms`,
        },
        {
          benchmark,
          metric: `coordinator connect + authenticate under ${count} stalled connections: p50`,
          value: loadedMs,
          unit: 'ms',
          detail: `${SAMPLES} connects; min ${fmt(Math.min(...loaded))} ms, max ${fmt(Math.max(...loaded))} ms`,
        },
      ];
      return results;
    } finally {
      for (const socket of stalled) socket.destroy();
      await agent.stop();
    }
  },
};
