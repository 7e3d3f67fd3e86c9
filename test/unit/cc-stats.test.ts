import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  emptyStats,
  formatStats,
  readStats,
  reasonName,
  StatsCounter,
  zeroStats,
} from '../../src/cli/cc/stats.js';

describe('compile stats', () => {
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-stats-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('adds what each counter counted to the file, from several counters at once', async () => {
    const dir = join(root, 'a');
    const one = new StatsCounter(dir, { flushDelayMs: 60_000 });
    const two = new StatsCounter(dir, { flushDelayMs: 60_000 });
    one.add('compiles', 3);
    one.add('cacheHits');
    one.localReason('placement-local');
    two.add('compiles');
    two.fallback('no-coordinator');
    two.fallback('no-coordinator');
    two.localReason('native-cpu');
    await Promise.all([one.flush(), two.flush()]);
    await one.flush(); // nothing pending: no change
    const stats = await readStats(dir);
    assert.equal(stats.compiles, 4);
    assert.equal(stats.cacheHits, 1);
    assert.equal(stats.fallbacks, 2);
    assert.deepEqual(stats.fallbackReasons, { 'no-coordinator': 2 });
    assert.deepEqual(stats.localReasons, { 'placement-local': 1, 'native-cpu': 1 });
    assert.equal(one.pending.compiles, 0);
    one.close();
    two.close();
  });

  it('flushes by itself after the debounce delay', async () => {
    const dir = join(root, 'b');
    const counter = new StatsCounter(dir, { flushDelayMs: 5 });
    counter.add('passthrough');
    for (let i = 0; i < 500 && !existsSync(join(dir, 'stats.json')); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await readStats(dir)).passthrough, 1);
    counter.close();
  });

  it('zeroes, and reads a damaged file as zeros', async () => {
    const dir = join(root, 'c');
    const counter = new StatsCounter(dir);
    counter.add('errors', 5);
    await counter.flush();
    await zeroStats(dir, new Date('2026-12-06T04:00:00Z'));
    const zeroed = await readStats(dir);
    assert.equal(zeroed.errors, 0);
    assert.equal(zeroed.zeroedAt, '2026-12-06T04:00:00.000Z');
    writeFileSync(join(dir, 'stats.json'), '{"compiles": -3, "errors": "x", "localReasons": 7');
    assert.deepEqual(await readStats(dir), emptyStats());
    writeFileSync(join(dir, 'stats.json'), '{"compiles": -3, "errors": 2, "localReasons": 7}');
    const partly = await readStats(dir);
    assert.equal(partly.compiles, 0);
    assert.equal(partly.errors, 2);
    assert.deepEqual(partly.localReasons, {});
    counter.close();
  });

  it("folds the shim's fallback log and removes it", async () => {
    const dir = join(root, 'd');
    const log = join(root, 'cc-fallbacks.log');
    writeFileSync(
      log,
      '1765000000 no-socket\n\n1765000001 eof\n1765000002 Not A Reason!\n1765000003\n',
    );
    const counter = new StatsCounter(dir);
    assert.equal(await counter.foldFallbackLog(log), 4);
    assert.ok(!existsSync(log));
    assert.equal(await counter.foldFallbackLog(log), 0, 'no log: nothing');
    await counter.flush();
    const stats = await readStats(dir);
    assert.equal(stats.fallbacks, 4);
    assert.deepEqual(stats.fallbackReasons, { 'no-socket': 1, eof: 1, other: 1, shim: 1 });
    assert.ok(readFileSync(join(dir, 'stats.json'), 'utf8').endsWith('\n'));
    counter.close();
  });

  it('formats the counters for --show-stats', () => {
    const stats = emptyStats();
    stats.compiles = 10;
    stats.cacheHits = 6;
    stats.cacheMisses = 4;
    stats.local = 4;
    stats.fallbacks = 1;
    stats.fallbackReasons = { 'no-coordinator': 1 };
    const text = formatStats(stats);
    assert.match(text, /^Compiles +10$/m);
    assert.match(text, /from the cache +6 \(60\.0 %\)/);
    assert.match(text, /Fallbacks because:\n {2}no-coordinator +1/);
    assert.equal(reasonName('agent-lost'), 'agent-lost');
    assert.equal(reasonName('x'.repeat(80)), 'other');
  });
});
