import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LeaseTable } from '../../src/agent/leases.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function table(clock: { now: number }): Promise<{ leases: LeaseTable; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'leases-'));
  dirs.push(dir);
  return { leases: new LeaseTable(dir, 10_000, () => clock.now), dir };
}

describe('cluster leases', () => {
  it('never takes a live lease away, even from a lower term', async () => {
    const clock = { now: 1000 };
    const { leases } = await table(clock);
    assert.equal(leases.acquire('c', 'primary', 1).held, true);
    const backup = leases.acquire('c', 'backup', 2);
    assert.deepEqual(backup, { held: false, term: 1, expiresInMs: 10_000 });
    clock.now += 9_000;
    assert.equal(leases.renew('c', 'primary', 1), true, 'the holder renews');
    clock.now += 9_000;
    assert.equal(leases.acquire('c', 'backup', 2).held, false, 'renewed, so still live');
  });

  it('lets a higher term take an expired lease and fences the old term off', async () => {
    const clock = { now: 0 };
    const { leases } = await table(clock);
    leases.acquire('c', 'primary', 1);
    clock.now += 10_001;
    assert.equal(leases.acquire('c', 'backup', 1).held, false, 'the same term is not enough');
    assert.equal(leases.acquire('c', 'backup', 2).held, true);
    assert.equal(leases.acquire('c', 'primary', 1).held, false, 'the old holder is fenced');
    assert.equal(leases.renew('c', 'primary', 1), false);
    assert.equal(leases.isHeld('c', 'backup', 2), true);
    // The same holder with the same term gets it back after a reconnect.
    assert.equal(leases.acquire('c', 'backup', 2).held, true);
  });

  it('hands over at once when the holder releases', async () => {
    const clock = { now: 0 };
    const { leases } = await table(clock);
    leases.acquire('c', 'backup', 2);
    leases.release('c', 'backup', 2);
    assert.equal(leases.acquire('c', 'primary', 3).held, true);
  });

  it('lets terms move by one only: a bid that jumps is refused', async () => {
    const clock = { now: 0 };
    const { leases } = await table(clock);
    leases.acquire('c', 'primary', 1);
    clock.now += 10_001;
    assert.deepEqual(leases.acquire('c', 'backup', 2 ** 31 - 1), {
      held: false,
      term: 1,
      expiresInMs: 0,
    });
    assert.equal(leases.acquire('c', 'backup', 3).held, false, 'two ahead is too far');
    assert.equal(leases.acquire('c', 'backup', 2).held, true, 'the next term is granted');
  });

  it('never lets two holders share a term, whatever their instance key', async () => {
    const clock = { now: 0 };
    const { leases } = await table(clock);
    // A primary that caught up one term at a time, and its backup, each with its holder id.
    assert.equal(leases.acquire('c', 'key#primary', 2).held, true);
    clock.now += 10_001;
    assert.equal(leases.acquire('c', 'key#backup', 2).held, false, 'same term, other holder');
    assert.equal(leases.acquire('c', 'key#backup', 3).held, true);
    clock.now += 10_001;
    assert.equal(leases.acquire('c', 'key#primary', 3).held, false, 'a term it never held');
    assert.equal(leases.acquire('c', 'key#primary', 4).held, true);
  });

  it('keeps clusters apart', async () => {
    const clock = { now: 0 };
    const { leases } = await table(clock);
    assert.equal(leases.acquire('one', 'a', 1).held, true);
    assert.equal(leases.acquire('two', 'b', 1).held, true);
  });

  it('remembers terms across restarts, with every lease expired', async () => {
    const clock = { now: 0 };
    const { leases, dir } = await table(clock);
    leases.acquire('c', 'backup', 5);
    await leases.flush();
    const restarted = new LeaseTable(dir, 10_000, () => clock.now);
    await restarted.load();
    assert.equal(restarted.acquire('c', 'primary', 4).held, false, 'an older term stays fenced');
    assert.equal(
      restarted.acquire('c', 'primary', 6).held,
      true,
      'expired at restart: a higher term takes it',
    );
  });
});
