/**
 * Instances and cluster leases on a shared agent, attacked by a co-tenant: a coordinator that
 * holds the agent's access key (every coordinator sharing the agent does) but not the victim's
 * instance key. Real agent process over TLS. The attacker tries to claim the victim's instance
 * (another key, no signature, a signature replayed from another connection, a signature for
 * another id), to take the victim's cluster lease with a term no one could outbid, and to learn
 * the key from the agent's handshake. Each is refused with its code and logged; the victim keeps
 * working throughout, re-attaches its task, and an agent admin's unbind and lease reset work.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createBundle, type Bundle } from '../../src/protocol/client/bundle.js';
import type { AgentClient } from '../../src/protocol/client/agent-client.js';
import { newInstanceKey } from '../../src/protocol/handshake.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { runCli } from '../helpers/cli.js';
import { RawPeer } from '../helpers/raw-peer.js';

const dirs: string[] = [];
let agent: StartedAgent;
let bundle: Bundle;
const victimKey = newInstanceKey();
const attackerKey = newInstanceKey();
const victim = { instanceId: 'victim', instanceKey: victimKey };
const clients: AgentClient[] = [];
const peers: RawPeer[] = [];

before(async () => {
  const dataDir = await makeTempDir();
  dirs.push(dataDir);
  agent = await startAgent({ dataDir, args: ['--lease-ttl', '1s'] });
  bundle = await createBundle();
});

after(async () => {
  for (const c of clients) c.close();
  for (const p of peers) p.destroy();
  await cleanup(dirs);
});

async function connect(options: Parameters<StartedAgent['connect']>[0]): Promise<AgentClient> {
  const client = await agent.connect(options);
  clients.push(client);
  return client;
}

async function raw(): Promise<RawPeer> {
  const peer = await RawPeer.connect({ port: agent.port });
  peers.push(peer);
  return peer;
}

function warned(pattern: RegExp): () => boolean {
  return () =>
    agent.logs.some((l) => l.level === 40 && typeof l.msg === 'string' && pattern.test(l.msg));
}

describe('an instance is bound to its coordinator', () => {
  it('binds on the first claim, and lets its own coordinator back in', async () => {
    const first = await connect(victim);
    await first.sync(bundle);
    first.close();
    const again = await connect(victim);
    assert.equal(again.instance.key, 'muster@id:victim');
    again.close();
  });

  it("refuses another key's claim with INSTANCE_BOUND, logs it, and the victim keeps its task", async () => {
    const owner = await connect(victim);
    await owner.sync(bundle);
    await owner.startTask({
      taskId: 'victim-task',
      extension: 'core',
      operation: 'sleep',
      input: { ms: 1500 },
    });
    owner.close();

    await assert.rejects(connect({ instanceId: 'victim', instanceKey: attackerKey }), {
      code: 'INSTANCE_BOUND',
    });
    await waitFor(warned(/instance claim refused/), 10_000, 'a warning in the agent log');
    // The task is untouched: its owner re-attaches and collects the result.
    const back = await connect(victim);
    const attached = await back.attachTask('victim-task', 0);
    assert.equal((await attached.result).status, 'succeeded');
    back.close();
  });

  it('refuses a claim without a signature, a replayed one and one for another id', async () => {
    // No claim at all, with an instance id.
    const bare = await raw();
    const first = await bare.hello({ instanceId: 'victim' });
    bare.sendJson({
      t: 'auth',
      proof: bare.proofFor(agent.accessKey, first.nonce, first.answer.nonce as string),
    });
    assert.equal((await bare.nextJson()).code, 'INSTANCE_CLAIM_INVALID');

    // A signature the victim made on another connection (say, recorded by a relay).
    const recorded = await raw();
    const { nonce, answer } = await recorded.hello({ instanceId: 'victim' });
    const replayedClaim = recorded.claimFor(
      victimKey,
      { instanceId: 'victim' },
      nonce,
      answer.nonce as string,
    );
    recorded.destroy();
    const replaying = await raw();
    const second = await replaying.hello({ instanceId: 'victim' });
    replaying.sendJson({
      t: 'auth',
      proof: replaying.proofFor(agent.accessKey, second.nonce, second.answer.nonce as string),
      claim: replayedClaim,
    });
    const replayed = await replaying.nextJson();
    assert.equal(replayed.t, 'error');
    assert.equal(replayed.code, 'INSTANCE_CLAIM_INVALID');

    // The victim's signature, but for another instance id than the hello names.
    const other = await raw();
    const third = await other.hello({ instanceId: 'victim' });
    other.sendJson({
      t: 'auth',
      proof: other.proofFor(agent.accessKey, third.nonce, third.answer.nonce as string),
      claim: other.claimFor(
        attackerKey,
        { instanceId: 'attacker' },
        third.nonce,
        third.answer.nonce as string,
      ),
    });
    assert.equal((await other.nextJson()).code, 'INSTANCE_CLAIM_INVALID');
    await waitFor(
      warned(/missing or invalid signature/),
      10_000,
      'a warning about the invalid claim',
    );
  });

  it('lets the co-tenant use its own instance, which the victim cannot enter either', async () => {
    const own = await connect({ instanceId: 'attacker', instanceKey: attackerKey });
    await own.sync(bundle);
    assert.equal(
      (await own.runTask({ taskId: 'a-1', extension: 'core', operation: 'noop' })).status,
      'succeeded',
    );
    await assert.rejects(own.attachTask('victim-task', 0), { code: 'TASK_NOT_FOUND' });
    own.close();
    await assert.rejects(connect({ instanceId: 'attacker', instanceKey: victimKey }), {
      code: 'INSTANCE_BOUND',
    });
  });

  it('an agent admin can unbind an instance: its holder is cut off; the next claim binds it', async () => {
    const squatter = await connect({ instanceId: 'attacker', instanceKey: attackerKey });
    const unbound = await runCli([
      'agent',
      'instances',
      '--data',
      agent.dataDir,
      '--unbind',
      'muster@id:attacker',
    ]);
    assert.equal(unbound.code, 0, unbound.stderr);
    assert.match(unbound.stdout, /unbound/);
    await waitFor(() => squatter.closed, 10_000, "the unbound instance's connection to be closed");
    const listed = await runCli(['agent', 'instances', '--data', agent.dataDir, '--json']);
    const rows = JSON.parse(listed.stdout) as { key: string; boundTo: string | null }[];
    assert.equal(rows.find((r) => r.key === 'muster@id:attacker')?.boundTo, null);
    assert.match(rows.find((r) => r.key === 'muster@id:victim')?.boundTo ?? '', /^sha256:/);
    const rebound = await connect({ instanceId: 'attacker', instanceKey: victimKey });
    rebound.close();
    await assert.rejects(connect({ instanceId: 'attacker', instanceKey: attackerKey }), {
      code: 'INSTANCE_BOUND',
    });
  });
});

describe("a cluster's lease is bound to its coordinators' key", () => {
  const cluster = { instanceId: 'victim', clusterId: 'victim', instanceKey: victimKey };

  it('refuses a co-tenant bid, even one with a term no one could outbid', async () => {
    const holder = await connect({ ...cluster, leaseTerm: 3 });
    assert.equal(holder.lease?.held, true);
    await assert.rejects(
      connect({
        instanceId: 'attacker2',
        clusterId: 'victim',
        instanceKey: attackerKey,
        leaseTerm: 4,
      }),
      { code: 'INSTANCE_BOUND' },
    );
    // A term beyond the cap is not even a valid hello.
    await assert.rejects(connect({ ...cluster, leaseTerm: 2 ** 53 - 1 }), {
      code: 'INVALID_MESSAGE',
    });
    holder.close();
    // Once the holder's lease expired, its own cluster takes it with the next term, and only
    // with the next: terms move by one, so no bid can put the term out of the owner's reach.
    let next = await connect({ ...cluster, leaseTerm: 4 });
    await waitFor(
      async () => (await next.acquireLease(5)).expiresInMs === 0,
      10_000,
      'the lease to expire',
    );
    assert.deepEqual(await next.acquireLease(5), { held: false, term: 3, expiresInMs: 0 });
    assert.equal((await next.acquireLease(4)).held, true, 'the next term is granted');
    next.close();
    next = await connect({ ...cluster, leaseTerm: 4 });
    next.close();
  });

  it('an agent admin can reset a stuck lease: term and key are forgotten', async () => {
    const before = await runCli(['agent', 'leases', '--data', agent.dataDir, '--json']);
    const rows = JSON.parse(before.stdout) as {
      cluster: string;
      term: number;
      boundTo: string | null;
    }[];
    assert.equal(rows.find((r) => r.cluster === 'victim')?.term, 4);
    // Whoever is connected in the cluster when it is reset is cut off.
    const connected = await connect({ ...cluster, leaseTerm: 5 });
    const reset = await runCli(['agent', 'leases', '--data', agent.dataDir, '--reset', 'victim']);
    assert.equal(reset.code, 0, reset.stderr);
    await waitFor(warned(/lease reset by an agent admin/), 10_000, 'the reset in the agent log');
    await waitFor(() => connected.closed, 10_000, 'the connection in the cluster to be closed');
    // Any term may start the cluster again, and the next claimant's key binds it.
    const fresh = await connect({ ...cluster, leaseTerm: 1 });
    assert.equal(fresh.lease?.held, true);
    fresh.close();
    const unknown = await runCli(['agent', 'leases', '--data', agent.dataDir, '--reset', 'nope']);
    assert.equal(unknown.code, 2);
  });
});

describe('the handshake gives no oracle for the access key', () => {
  it('sends no proof before the client proved the key, and none after a wrong proof', async () => {
    const peer = await raw();
    const { nonce, answer } = await peer.hello();
    assert.equal(answer.t, 'challenge');
    assert.equal(answer.proof, undefined);
    peer.sendJson({
      t: 'auth',
      proof: peer.proofFor('not-the-access-key-at-all', nonce, answer.nonce as string),
    });
    const refused = await peer.nextJson();
    assert.equal(refused.code, 'AUTH_FAILED');
    assert.equal(refused.proof, undefined);
    await peer.waitClosed();
  });

  it('still serves a legitimate coordinator afterwards', async () => {
    const client = await connect(victim);
    await client.sync(bundle);
    assert.equal(
      (await client.runTask({ taskId: 'last', extension: 'core', operation: 'noop' })).status,
      'succeeded',
    );
    client.close();
  });
});
