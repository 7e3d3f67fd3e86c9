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
      queue.compact();
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

  it('goes on where an earlier scan of the same pass stopped', () => {
    const queue = new ReadyQueue();
    for (const name of ['a', 'b', 'c', 'd', 'e']) queue.push(name);
    const seen: string[] = [];
    // Skips a, takes b, stops at c: the next scan starts at c, not at the skipped a.
    let at = queue.scan((name) => {
      seen.push(name);
      return name === 'a' ? 'skip' : name === 'b' ? 'take' : 'stop';
    });
    at = queue.scan((name) => {
      seen.push(name);
      return 'take';
    }, at);
    assert.deepEqual(seen, ['a', 'b', 'c', 'c', 'd', 'e']);
    assert.equal(at, 5);
    queue.compact();
    const left: string[] = [];
    queue.scan((name) => {
      left.push(name);
      return 'skip';
    });
    assert.deepEqual(left, ['a']);
    assert.equal(queue.size, 1);
  });
});
