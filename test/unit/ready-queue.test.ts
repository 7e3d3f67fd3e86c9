import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadyQueue } from '../../src/coordinator/scheduler/ready-queue.js';

describe('ready queue', () => {
  it('hands out tasks in order, keeps skipped ones, and survives compaction', () => {
    const queue = new ReadyQueue();
    for (let i = 0; i < 5000; i++) queue.push(`t${i}`);
    const taken: string[] = [];
    // Take every task except multiples of 7, at most 100 per pass, until a pass takes none.
    for (let took = -1; took !== 0;) {
      took = 0;
      let budget = 100;
      queue.scan((name) => {
        if (budget <= 0) return 'stop';
        if (Number(name.slice(1)) % 7 === 0) return 'skip';
        budget--;
        taken.push(name);
        took++;
        return 'take';
      });
    }
    const skipped: string[] = [];
    queue.scan((name) => {
      skipped.push(name);
      return 'skip';
    });
    assert.equal(taken.length + skipped.length, 5000);
    assert.deepEqual(
      taken,
      [...taken].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))),
    );
    assert.ok(skipped.every((n) => Number(n.slice(1)) % 7 === 0));
    assert.equal(queue.size, skipped.length);
    queue.clear();
    assert.equal(queue.size, 0);
  });
});
