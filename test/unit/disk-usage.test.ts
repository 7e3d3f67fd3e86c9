/**
 * The data dir's disk usage in /metrics: the database files plus the blob store's bytes as the
 * last sweep counted them (the sweep's walk counts referenced and kept blobs, not deleted ones),
 * the filesystem's free and total bytes, sampled at most every 30 s.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { BlobStore } from '../../src/common/blob-store.js';
import { BlobSweeper } from '../../src/coordinator/blob-sweeper.js';
import { DiskUsage } from '../../src/coordinator/disk-usage.js';
import { Metrics } from '../../src/coordinator/metrics.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-disk-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

describe('disk usage', () => {
  it('adds the database files and the blob bytes, and samples at most every 30 s', () => {
    const root = mkdtempSync(join(dir, 'data-'));
    writeFileSync(join(root, 'muster.db'), Buffer.alloc(100));
    writeFileSync(join(root, 'muster.db-wal'), Buffer.alloc(20));
    const blob: { bytes: number | undefined } = { bytes: undefined };
    let now = 1_000_000;
    const usage = new DiskUsage(
      root,
      () => blob.bytes,
      30_000,
      () => now,
    );
    const first = usage.sample();
    assert.ok(first);
    assert.equal(first.dataDirBytes, 120);
    assert.equal(first.blobBytes, undefined);
    assert.ok(first.freeBytes > 0 && first.sizeBytes >= first.freeBytes, JSON.stringify(first));
    blob.bytes = 1000;
    writeFileSync(join(root, 'muster.db-shm'), Buffer.alloc(3));
    now += 29_999;
    assert.equal(usage.sample()?.dataDirBytes, 120, 'cached');
    now += 1;
    assert.deepEqual([usage.sample()?.dataDirBytes, usage.sample()?.blobBytes], [1123, 1000]);
    const gone = new DiskUsage(
      join(root, 'nothing-here'),
      () => 0,
      30_000,
      () => now,
    );
    assert.equal(gone.sample(), undefined);
  });

  it('the blob sweep counts the bytes of the blobs it keeps, referenced or not yet old', async () => {
    const store = openSqliteStore(join(dir, `db-${++counter}.sqlite`));
    try {
      const blobs = new BlobStore(join(dir, `blobs-${counter}`));
      await blobs.init();
      const put = (text: string, ageMs: number) => {
        blobs.writeNow(sha(text), Buffer.from(text));
        const when = new Date(Date.now() - ageMs);
        utimesSync(blobs.pathOf(sha(text)), when, when);
        return sha(text);
      };
      const input = put('referenced input', 10_000_000);
      put('young upload', 0);
      put('old and unused', 10_000_000);
      store.createBuild(
        { name: 'b', tasks: [] },
        [{ path: 'a', sha256: input, size: 16, mode: 0o644 }],
        'ada',
      );
      const sweeper = new BlobSweeper(
        store,
        blobs,
        { quotaBytes: 1e9, perUserQuotaBytes: 1e9, retentionMs: 3_600_000 },
        pino({ level: 'silent' }),
      );
      assert.equal(sweeper.storedBytes(), undefined);
      assert.equal((await sweeper.sweep()).removed, 1);
      assert.equal(sweeper.storedBytes(), 'referenced input'.length + 'young upload'.length);
    } finally {
      store.close();
    }
  });

  it('shows the gauges in /metrics, and answers a scrape when the data dir cannot be read', async () => {
    let sample:
      | {
          dataDirBytes: number;
          blobBytes: number | undefined;
          freeBytes: number;
          sizeBytes: number;
        }
      | undefined = { dataDirBytes: 1500, blobBytes: 1000, freeBytes: 7, sizeBytes: 9 };
    const metrics = new Metrics({
      agentsByStatus: () => ({}),
      runningAttempts: () => 0,
      queuedTasks: () => 0,
      activeBuilds: () => 0,
      cache: () => ({ entries: 0, bytes: 0 }),
      disk: () => sample,
      ha: { backups: () => [], replication: () => undefined },
    });
    const text = await metrics.registry.metrics();
    for (const line of [
      'muster_data_dir_bytes 1500',
      'muster_blob_store_bytes 1000',
      'muster_data_dir_filesystem_free_bytes 7',
      'muster_data_dir_filesystem_size_bytes 9',
    ])
      assert.ok(text.split('\n').includes(line), line);
    // Unreadable (never in a running coordinator): the scrape still answers, without stale values.
    sample = undefined;
    const without = await metrics.registry.metrics();
    assert.ok(without.split('\n').includes('muster_data_dir_bytes 0'));
    assert.ok(!without.includes('1500'));
  });
});
