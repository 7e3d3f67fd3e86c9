/**
 * The queue of local compiles' results kept after their shims were answered
 * (src/cli/cc/deferred-stores.ts): one at a time, waiting while every core compiles, at once
 * over its bounds or while draining.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeferredStores } from '../../src/cli/cc/deferred-stores.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('deferred stores', () => {
  it('runs each store at once while a core is free, one at a time, in order', async () => {
    const stores = new DeferredStores({ busy: () => false, maxItems: 64, maxBytes: 1 << 20 });
    const order: string[] = [];
    let release: () => void = () => undefined;
    const first = stores.add(10, async () => {
      order.push('first started');
      await new Promise<void>((r) => (release = r));
      order.push('first done');
    });
    const second = stores.add(10, async () => {
      order.push('second');
    });
    await tick();
    assert.deepEqual(order, ['first started']);
    assert.equal(stores.pending, 1);
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first started', 'first done', 'second']);
    assert.equal(stores.pending, 0);
    assert.equal(stores.bytes, 0);
  });

  it('waits while every core compiles, and runs when woken with a core free', async () => {
    let busy = true;
    const stores = new DeferredStores({ busy: () => busy, maxItems: 64, maxBytes: 1 << 20 });
    let ran = 0;
    const done = stores.add(100, async () => void ran++);
    await tick();
    stores.wake();
    await tick();
    assert.equal(ran, 0, 'still busy');
    assert.equal(stores.bytes, 100);
    busy = false;
    stores.wake();
    await done;
    assert.equal(ran, 1);
  });

  it('runs at once over the count or the byte bound, and everything once draining', async () => {
    const stores = new DeferredStores({ busy: () => true, maxItems: 2, maxBytes: 1000 });
    const ran: number[] = [];
    const all = [1, 2].map((n) => stores.add(10, async () => void ran.push(n)));
    assert.equal(stores.full, false, 'two waiting is within the bound');
    all.push(stores.add(10, async () => void ran.push(3)));
    assert.equal(stores.full, false, 'the oldest started: two wait, within the bound');
    // Three waiting is over two: the oldest runs; then two wait, which the bound allows.
    await all[0];
    await tick();
    assert.deepEqual(ran, [1]);
    assert.equal(stores.pending, 2);
    assert.equal(stores.full, false);
    const big = stores.add(2000, async () => void ran.push(4));
    assert.equal(stores.full, true, 'over the byte bound');
    await all[1];
    await all[2];
    await big;
    assert.deepEqual(ran, [1, 2, 3, 4], 'over the byte bound, the queue runs down to it');
    const late = stores.add(10, async () => void ran.push(5));
    await tick();
    assert.deepEqual(ran, [1, 2, 3, 4]);
    stores.drain();
    await late;
    assert.deepEqual(ran, [1, 2, 3, 4, 5]);
  });

  it('says it is full while more than the bound wait behind a running store', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const stores = new DeferredStores({ busy: () => false, maxItems: 1, maxBytes: 1000 });
    const first = stores.add(10, () => gate);
    const second = stores.add(10, async () => undefined);
    assert.equal(stores.full, false, 'one waits behind the running one: within the bound');
    const third = stores.add(10, async () => undefined);
    assert.equal(stores.full, true, 'two wait: the compile that added the last waits for it');
    open();
    await Promise.all([first, second, third]);
    assert.equal(stores.full, false);
  });

  it('a store that fails does not stop the queue', async () => {
    const stores = new DeferredStores({ busy: () => false, maxItems: 64, maxBytes: 1 << 20 });
    const failed = stores.add(1, () => Promise.reject(new Error('disk full')));
    let ran = false;
    const next = stores.add(1, async () => void (ran = true));
    await failed;
    await next;
    assert.ok(ran);
  });
});
