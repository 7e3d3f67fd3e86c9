/**
 * Fencing on a real agent: two coordinators of one cluster (same instance id, as a primary and
 * its backup are) cannot both start work; the one with the live lease can, the other gets
 * LEASE_NOT_HELD until the lease expires unrenewed, and then the old term is fenced off, also
 * after an agent restart.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { AgentClient } from '../../src/protocol/client/agent-client.js';
import { createBundle } from '../../src/protocol/client/bundle.js';
import { cleanup, makeTempDir, startAgent } from '../helpers/agent-process.js';

const dirs: string[] = [];
after(() => cleanup(dirs));

describe('cluster leases on the agent', () => {
  it('lets only the lease holder start tasks, and fences a returning older term', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    let agent = await startAgent({ dataDir, args: ['--lease-ttl', '1s'] });
    const bundle = await createBundle();
    const identity = { instanceId: 'cluster-main', clusterId: 'ci-cluster' };

    const primary = await agent.connect({ ...identity, leaseTerm: 1 });
    assert.deepEqual(primary.lease?.held, true);
    // The primary renews as a coordinator does, from the start: its first task (which may create
    // a task user) or the backup's connection may take longer than the TTL on a loaded machine.
    const renewing = setInterval(() => void primary.ping().catch(() => undefined), 200);
    let backup: AgentClient;
    try {
      await primary.sync(bundle);
      assert.equal(
        (await primary.runTask({ taskId: 'p-1', extension: 'core', operation: 'noop' })).status,
        'succeeded',
      );

      // The backup, with a higher term, while the primary keeps renewing: refused.
      backup = await agent.connect({ ...identity, leaseTerm: 2 });
      assert.equal(backup.lease?.held, false);
      assert.equal(backup.lease?.term, 1);
      await backup.sync(bundle);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await backup.acquireLease(2)).held, false, 'a live lease is never taken');
      await assert.rejects(
        backup.runTask({ taskId: 'b-1', extension: 'core', operation: 'noop' }),
        {
          code: 'LEASE_NOT_HELD',
        },
      );
    } finally {
      clearInterval(renewing);
    }

    // The primary goes silent: after the TTL the backup takes over with its higher term.
    primary.close();
    let lease = await backup.acquireLease(2);
    const deadline = Date.now() + 10_000;
    while (!lease.held && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      lease = await backup.acquireLease(2);
    }
    assert.equal(lease.held, true);
    assert.equal(
      (await backup.runTask({ taskId: 'b-2', extension: 'core', operation: 'noop' })).status,
      'succeeded',
    );

    // The old primary comes back with its old term: fenced off.
    const stale = await agent.connect({ ...identity, leaseTerm: 1 });
    assert.equal(stale.lease?.held, false);
    await stale.sync(bundle);
    await assert.rejects(stale.runTask({ taskId: 'p-2', extension: 'core', operation: 'noop' }), {
      code: 'LEASE_NOT_HELD',
    });
    stale.close();

    // Failback: the backup releases; the primary takes over with a new, higher term.
    await backup.releaseLease();
    const returning = await agent.connect({ ...identity, leaseTerm: 3 });
    assert.equal(returning.lease?.held, true);
    backup.close();
    returning.close();

    // Terms survive an agent restart: term 1 stays fenced, term 4 is fine.
    await agent.stop();
    agent = await startAgent({ dataDir, args: ['--lease-ttl', '1s'] });
    const old = await agent.connect({ ...identity, leaseTerm: 1 });
    assert.equal(old.lease?.held, false);
    old.close();
    const next = await agent.connect({ ...identity, leaseTerm: 4 });
    assert.equal(next.lease?.held, true);
    next.close();

    // Coordinators that declare no cluster are not fenced at all.
    const standalone = await agent.connect({ instanceId: 'standalone' });
    await standalone.sync(bundle);
    assert.equal(
      (await standalone.runTask({ taskId: 's-1', extension: 'core', operation: 'noop' })).status,
      'succeeded',
    );
    standalone.close();
    await agent.stop();
  });
});
