/**
 * The agent's edges before authentication, against real agent processes: hundreds of stalled
 * connections from several source addresses (127.0.0.x), of every kind — TCP that never starts
 * TLS, TLS that never says hello, TLS stuck in the middle of a frame's length prefix, TLS that
 * said hello and stopped. It checks the caps on unauthenticated connections (per address: new
 * ones refused; in all: the oldest dropped), the small frame limit before authentication, the
 * deadlines that end every stalled connection, that the refusals are not logged one line per
 * connection, and that a legitimate coordinator connects throughout.
 *
 * Assertions are about order and outcome, never about elapsed time: an over-cap connection is
 * recognised by being closed while the connections admitted before it are still open.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  DEFAULT_MAX_UNAUTHENTICATED,
  DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
  DEFAULT_PRE_AUTH_MAX_FRAME_BYTES,
} from '../../src/agent/options.js';
import type { AgentClient } from '../../src/protocol/client/agent-client.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeJsonFrame } from '../../src/protocol/framing.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { RawPeer, type JsonMessage } from '../helpers/raw-peer.js';

/** Per-test bound; generous, since hundreds of TLS handshakes share 2 cores with other work. */
const T = { timeout: 240_000 };
const WAIT_MS = 60_000;
const PER_ADDRESS = DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS;
const TOTAL = DEFAULT_MAX_UNAUTHENTICATED;

const dirs: string[] = [];
const peers: RawPeer[] = [];
const clients: AgentClient[] = [];

after(async () => {
  for (const client of clients) client.close();
  for (const peer of peers) peer.destroy();
  await cleanup(dirs);
});

async function agentWith(args: string[]): Promise<StartedAgent> {
  const dir = await makeTempDir('muster-agent-edges-');
  dirs.push(dir);
  return startAgent({ dataDir: dir, args });
}

/**
 * How a stalled peer stalls: `tcp` never starts TLS (plain TCP on a TLS port), `tls` completes
 * TLS and sends nothing, `partial` sends 3 of the 4 bytes of a 4 MiB length prefix, `hello` says
 * hello, gets the challenge and never answers it.
 */
type Stall = 'tcp' | 'tls' | 'partial' | 'hello';
const KINDS: Stall[] = ['tcp', 'tls', 'partial'];

async function stall(
  agent: StartedAgent,
  kind: Stall,
  localAddress: string,
  tls = true,
): Promise<RawPeer> {
  const peer = await RawPeer.connect({
    port: agent.port,
    tls: tls && kind !== 'tcp',
    localAddress,
  });
  peers.push(peer);
  if (kind === 'partial') peer.write(Buffer.from([0x00, 0x40, 0x00]));
  if (kind === 'hello') assert.equal((await peer.hello()).answer.t, 'challenge');
  return peer;
}

async function connectClient(
  agent: StartedAgent,
  instanceId: string,
  localAddress = '127.0.0.1',
): Promise<AgentClient> {
  const client = await agent.connect({ instanceId, localAddress });
  clients.push(client);
  return client;
}

/** A legitimate coordinator connects, authenticates and gets an answer. */
async function assertServes(agent: StartedAgent, instanceId: string): Promise<void> {
  const client = await connectClient(agent, instanceId);
  await client.ping();
  client.close();
}

function warnings(agent: StartedAgent, msg: string): Record<string, unknown>[] {
  return agent.logs.filter((l) => l.level === 40 && l.msg === msg);
}

/** Events behind a rate-limited warning: one per line, plus what summary lines say they sum up. */
function eventsLogged(agent: StartedAgent, msg: string): number {
  return warnings(agent, msg).reduce(
    (n, l) => n + (typeof l.repeated === 'number' ? l.repeated : 1),
    0,
  );
}

async function expectError(peer: RawPeer, code: string): Promise<JsonMessage> {
  const message = await peer.nextJson(WAIT_MS);
  assert.equal(message.t, 'error', `expected an error, got ${JSON.stringify(message)}`);
  assert.equal(message.code, code, `expected ${code}, got ${JSON.stringify(message)}`);
  return message;
}

const REFUSED = 'connection refused: too many unauthenticated connections from its address';
const DROPPED = 'oldest unauthenticated connection dropped: too many unauthenticated connections';

describe('caps on unauthenticated connections (TLS agent)', () => {
  // A long deadline, so that nothing here is closed by it while the caps are checked.
  let agent: StartedAgent;
  /** The first peers, from 127.0.0.2, admitted up to the per-address cap. */
  let first: RawPeer[] = [];
  let flood: RawPeer[] = [];

  it(
    'refuses new connections from an address at its cap, keeping the admitted ones',
    T,
    async () => {
      agent = await agentWith(['--handshake-timeout', '30s']);
      const opened: RawPeer[] = [];
      // Opened one after another, so the agent accepts them in this order.
      for (let i = 0; i < PER_ADDRESS + 4; i++) opened.push(await stall(agent, 'tcp', '127.0.0.2'));
      const over = opened.slice(PER_ADDRESS);
      first = opened.slice(0, PER_ADDRESS);
      for (const peer of over) await peer.waitClosed(WAIT_MS);
      // A round trip through the agent: anything it closed by now has reached us.
      await assertServes(agent, 'probe-1');
      assert.deepEqual(
        first.map((p) => p.isClosed),
        first.map(() => false),
        'the connections admitted before the cap are still open',
      );
      // Four refusals, not four lines: the first at once, the rest summed up after the window.
      assert.equal(warnings(agent, REFUSED)[0]?.peer, '127.0.0.2');
      await waitFor(() => eventsLogged(agent, REFUSED) === 4, WAIT_MS, 'the summary line');
      assert.equal(warnings(agent, REFUSED).length, 2);
    },
  );

  it('serves a coordinator from another address while one address is at its cap', T, async () => {
    const client = await connectClient(agent, 'legit-1');
    await client.ping();
    // Authenticated, it no longer counts against the caps; its connection stays usable.
    await client.ping();
    client.close();
  });

  it(
    'drops the oldest unauthenticated connection for each new one over the total cap',
    T,
    async () => {
      // TOTAL more stalled connections of every kind from 16 more addresses: with the 16 from
      // 127.0.0.2 that is 16 over the cap, so those 16 (the oldest) must go, and only they.
      flood = [];
      for (let i = 0; i < TOTAL; i++) {
        const address = `127.0.0.${10 + Math.floor(i / PER_ADDRESS)}`;
        flood.push(await stall(agent, KINDS[i % KINDS.length]!, address));
      }
      for (const peer of first) await peer.waitClosed(WAIT_MS);
      // A coordinator still gets in: its connection takes the place of the oldest of the flood,
      // and leaves the gate once authenticated (so the next one pushes nobody out).
      await assertServes(agent, 'probe-2');
      await flood[0]!.waitClosed(WAIT_MS);
      await assertServes(agent, 'probe-3');
      const open = flood.slice(1).filter((p) => !p.isClosed).length;
      assert.equal(open, TOTAL - 1, 'every other flood connection is still open');
      // 17 connections dropped, in a handful of log lines.
      await waitFor(() => eventsLogged(agent, DROPPED) === 17, WAIT_MS, 'the summary line');
      assert.ok(warnings(agent, DROPPED).length <= 4, JSON.stringify(warnings(agent, DROPPED)));
    },
  );

  it('closes every stalled connection by the handshake deadline, and still serves', T, async () => {
    // 30 s after each was accepted; bounded well above that.
    for (const peer of flood) await peer.waitClosed(120_000);
    await assertServes(agent, 'after-flood');
    assert.equal(agent.process.exitCode, null);
  });
});

describe('before authentication (TLS agent, 2 s handshake timeout)', () => {
  let agent: StartedAgent;

  it('refuses a frame over 16 KiB before authentication: FRAME_TOO_LARGE, closed', T, async () => {
    agent = await agentWith(['--handshake-timeout', '2s']);
    const peer = await stall(agent, 'tls', '127.0.0.3');
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(DEFAULT_MAX_FRAME_BYTES, 0);
    prefix.writeUInt8(1, 4);
    peer.write(prefix);
    const error = await expectError(peer, 'FRAME_TOO_LARGE');
    assert.deepEqual(error.details, {
      length: DEFAULT_MAX_FRAME_BYTES,
      limit: DEFAULT_PRE_AUTH_MAX_FRAME_BYTES,
    });
    await peer.waitClosed(WAIT_MS);

    // A hello padded past the limit too.
    const padded = await stall(agent, 'tls', '127.0.0.3');
    padded.write(
      encodeJsonFrame({ t: 'hello', pad: 'x'.repeat(DEFAULT_PRE_AUTH_MAX_FRAME_BYTES) }),
    );
    await expectError(padded, 'FRAME_TOO_LARGE');
    await padded.waitClosed(WAIT_MS);
  });

  it('raises the limit to the full one once authenticated', T, async () => {
    const peer = await RawPeer.connect({ port: agent.port, localAddress: '127.0.0.3' });
    peers.push(peer);
    const ready = await peer.handshake(agent.accessKey, { instanceId: 'big-frames' });
    assert.deepEqual(ready.limits, { maxFrameBytes: DEFAULT_MAX_FRAME_BYTES });
    // 256 KiB: far over the limit before authentication, well under the one after.
    peer.sendJson({ t: 'ping', id: 7, pad: 'x'.repeat(256 * 1024) });
    const answer = await peer.nextJson(WAIT_MS);
    assert.equal(answer.re, 7, JSON.stringify(answer).slice(0, 300));
    assert.notEqual(answer.code, 'FRAME_TOO_LARGE');
    peer.sendJson({ t: 'ping', id: 8 });
    assert.equal((await peer.nextJson(WAIT_MS)).t, 'pong');
    assert.equal(peer.isClosed, false);
    peer.destroy();
  });

  it('drops every kind of stalled connection by the deadline', T, async () => {
    const silentTcp = await stall(agent, 'tcp', '127.0.0.4');
    const tls = await stall(agent, 'tls', '127.0.0.4');
    const partial = await stall(agent, 'partial', '127.0.0.4');
    const hello = await stall(agent, 'hello', '127.0.0.4');
    // A TLS handshake that keeps sending, one byte of a ClientHello record at a time.
    const trickle = await stall(agent, 'tcp', '127.0.0.4');
    const record = Buffer.concat([Buffer.from('16030100c8010000c40303', 'hex'), Buffer.alloc(194)]);
    let sent = 0;
    const dripping = setInterval(() => {
      if (sent < record.length) trickle.write(record.subarray(sent, ++sent));
    }, 100);
    try {
      // Past TLS, the agent says why; before it, there is nobody to tell.
      for (const peer of [tls, partial, hello]) {
        await expectError(peer, 'HANDSHAKE_TIMEOUT');
        await peer.waitClosed(WAIT_MS);
      }
      await silentTcp.waitClosed(WAIT_MS);
      await trickle.waitClosed(WAIT_MS);
    } finally {
      clearInterval(dripping);
    }
    await waitFor(
      () => warnings(agent, 'TLS handshake failed').length > 0,
      WAIT_MS,
      'a TLS handshake warning',
    );
    await assertServes(agent, 'after-deadlines');
  });
});

describe('plain TCP (--no-tls, 2 s handshake timeout)', () => {
  it(
    'caps unauthenticated connections per address, drops silent peers with HANDSHAKE_TIMEOUT, serves',
    T,
    async () => {
      const agent = await agentWith(['--no-tls', '--handshake-timeout', '2s']);
      const opened: RawPeer[] = [];
      for (let i = 0; i < PER_ADDRESS + 3; i++) {
        opened.push(await stall(agent, 'tcp', '127.0.0.5', false));
      }
      // Refused at once: closed without a word (the admitted ones get HANDSHAKE_TIMEOUT).
      for (const peer of opened.slice(PER_ADDRESS)) {
        await assert.rejects(peer.nextJson(WAIT_MS), /closed before a frame arrived/);
      }
      const admitted = opened.slice(0, PER_ADDRESS);
      await assertServes(agent, 'during-stall');
      // The admitted ones never said hello: the session's handshake timer ends them.
      for (const peer of admitted) {
        await expectError(peer, 'HANDSHAKE_TIMEOUT');
        await peer.waitClosed(WAIT_MS);
      }
      // Their places are free again.
      const again = await stall(agent, 'hello', '127.0.0.5', false);
      await expectError(again, 'HANDSHAKE_TIMEOUT');
      await assertServes(agent, 'after-stall');
    },
  );
});
