import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  LocalTier,
  MANIFEST_LINES,
  localEntryOf,
  manifestLinesOf,
  sha256,
  type LocalEntry,
} from '../../src/cli/cc/local-tier.js';

const hex = (n: number): string => n.toString(16).padStart(64, '0');

function blobPath(dir: string, hash: string): string {
  return join(dir, 'blobs', hash.slice(0, 2), hash);
}

describe('local tier of the compile cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-tier-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('keeps blobs by sha256 and verifies them on read', async () => {
    const tier = new LocalTier({ dir: join(root, 'a') });
    const data = Buffer.from('object bytes');
    const hash = await tier.putBlob(data);
    assert.equal(hash, sha256(data));
    assert.deepEqual(await tier.getBlob(hash), data);
    assert.deepEqual(await tier.getBlob(hash, data.length), data);
    assert.equal(await tier.getBlob(hash, data.length + 1), null, 'a size mismatch is a miss');
    // …and the mismatching blob was removed.
    assert.ok(!existsSync(blobPath(tier.dir, hash)));

    const again = await tier.putBlob(data);
    writeFileSync(blobPath(tier.dir, again), 'corrupted!!!');
    assert.equal(await tier.getBlob(again), null, 'a corrupt blob is a miss');
    assert.ok(!existsSync(blobPath(tier.dir, again)), 'and is removed');
    assert.equal(await tier.getBlob('../../etc/passwd'), null);
    assert.equal(await tier.getBlob(hex(7)), null);
  });

  it('writes again after its folders were removed under it (a user clearing the cache)', async () => {
    const tier = new LocalTier({ dir: join(root, 'cleared') });
    const hash = await tier.putBlob(Buffer.from('first'));
    rmSync(tier.dir, { recursive: true, force: true });
    assert.equal(await tier.putBlob(Buffer.from('first')), hash);
    assert.deepEqual(await tier.getBlob(hash), Buffer.from('first'));
    const big = Buffer.alloc(300 * 1024, 1);
    assert.deepEqual(await tier.getBlob(await tier.putBlob(big)), big);
  });

  it('keeps entries by key and refuses what is not an entry', async () => {
    const tier = new LocalTier({ dir: join(root, 'b') });
    const entry: LocalEntry = {
      key: hex(1),
      outputs: [{ name: 'object', sha256: hex(2), size: 10, mode: 0o644 }],
      stderr: null,
      exitCode: 0,
      toolchain: hex(3),
      createdAt: '2026-12-06T00:00:00.000Z',
    };
    await tier.putEntry(entry);
    assert.deepEqual(await tier.getEntry(hex(1)), entry);
    assert.equal(await tier.getEntry(hex(9)), null);
    writeFileSync(join(tier.dir, 'entries', hex(4).slice(0, 2), `${hex(4)}.json`), '{"key":1}');
    assert.equal(await tier.getEntry(hex(4)), null);
    await tier.removeEntry(hex(1));
    assert.equal(await tier.getEntry(hex(1)), null);
  });

  it('keeps the newest manifest lines first, without repeats, at most 16', async () => {
    const tier = new LocalTier({ dir: join(root, 'c') });
    const direct = hex(100);
    assert.deepEqual(await tier.getManifest(direct), []);
    for (let i = 0; i < MANIFEST_LINES + 4; i++) {
      await tier.addManifestLine(direct, { includes: [['a.h', hex(i)]], entry: hex(200 + i) });
    }
    const lines = await tier.getManifest(direct);
    assert.equal(lines.length, MANIFEST_LINES);
    assert.equal(lines[0]?.entry, hex(200 + MANIFEST_LINES + 3));
    // The same line again moves to the front instead of being added twice.
    const old = lines[5]!;
    await tier.addManifestLine(direct, old);
    const after = await tier.getManifest(direct);
    assert.equal(after.length, MANIFEST_LINES);
    assert.deepEqual(after[0], old);
    assert.equal(after.filter((l) => l.entry === old.entry).length, 1);
  });

  it('trims the least recently used blobs when over its bound', async () => {
    const tier = new LocalTier({ dir: join(root, 'd'), maxBytes: 1000 });
    const hashes: string[] = [];
    for (let i = 0; i < 4; i++) {
      hashes.push(await tier.putBlob(Buffer.alloc(200, i)));
      // Use stamps an hour apart, oldest first.
      const t = new Date(Date.now() - (10 - i) * 3_600_000);
      utimesSync(blobPath(tier.dir, hashes[i]!), t, t);
    }
    // Reading the oldest makes it the most recently used.
    assert.ok((await tier.getBlob(hashes[0]!)) !== null);
    assert.equal(await tier.scanBytes(), 800);
    // 800 + 300 > 1000: trimmed to ≤ 900 by removing the least recently used (hashes[1]).
    const big = await tier.putBlob(Buffer.alloc(300, 9));
    assert.ok((await tier.scanBytes()) <= 900);
    assert.ok(!existsSync(blobPath(tier.dir, hashes[1]!)));
    assert.ok(existsSync(blobPath(tier.dir, hashes[0]!)));
    assert.ok(existsSync(blobPath(tier.dir, big)));
  });

  it('trims the entries and manifests last used no later than the blobs it trims', async () => {
    const tier = new LocalTier({ dir: join(root, 'f'), maxBytes: 1000 });
    const entryPath = (key: string): string =>
      join(tier.dir, 'entries', key.slice(0, 2), `${key}.json`);
    const manifestPath = (direct: string): string =>
      join(tier.dir, 'manifests', direct.slice(0, 2), `${direct}.json`);
    // Four results stored an hour apart, oldest first: blob, entry and manifest line each.
    const results: { blob: string; key: string; direct: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const blob = await tier.putBlob(Buffer.alloc(200, i));
      const key = hex(300 + i);
      const direct = hex(400 + i);
      await tier.putEntry({
        key,
        outputs: [{ name: 'object', sha256: blob, size: 200, mode: 0o644 }],
        stderr: null,
        exitCode: 0,
        toolchain: hex(3),
        createdAt: '2026-12-06T00:00:00.000Z',
      });
      await tier.addManifestLine(direct, { includes: [['a.h', hex(i)]], entry: key });
      const t = new Date(Date.now() - (10 - i) * 3_600_000);
      for (const file of [blobPath(tier.dir, blob), entryPath(key), manifestPath(direct)])
        utimesSync(file, t, t);
      results.push({ blob, key, direct });
    }
    // The oldest is served (manifest, entry, then its blob): now the most recently used.
    const served = results[0]!;
    assert.equal((await tier.getManifest(served.direct))[0]?.entry, served.key);
    assert.ok((await tier.getEntry(served.key)) !== null);
    assert.ok((await tier.getBlob(served.blob)) !== null);
    await tier.scanBytes();

    // 800 + 300 > 1000: the least recently used result (the second) goes, whole.
    await tier.putBlob(Buffer.alloc(300, 9));
    const gone = results[1]!;
    assert.ok(!existsSync(blobPath(tier.dir, gone.blob)));
    assert.equal(await tier.getEntry(gone.key), null);
    assert.deepEqual(await tier.getManifest(gone.direct), []);
    assert.ok(!existsSync(entryPath(gone.key)) && !existsSync(manifestPath(gone.direct)));
    for (const kept of [results[0]!, results[2]!, results[3]!]) {
      assert.ok(existsSync(blobPath(tier.dir, kept.blob)));
      assert.ok((await tier.getEntry(kept.key)) !== null, 'a kept blob keeps its entry');
      assert.equal((await tier.getManifest(kept.direct)).length, 1);
    }
  });

  it('leaves no temp files behind and cleans up old ones', async () => {
    const tier = new LocalTier({ dir: join(root, 'e'), maxBytes: 10 });
    const hash = await tier.putBlob(Buffer.from('x'));
    const dir = join(tier.dir, 'blobs', hash.slice(0, 2));
    const stale = join(dir, `${hash}.abc.tmp`);
    writeFileSync(stale, 'partial');
    const old = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(stale, old, old);
    await tier.trim();
    assert.deepEqual(readdirSync(dir), [hash]);
  });

  it('reads a manifest only when it is one, whatever else the file holds', () => {
    const h = 'a'.repeat(64);
    const line = { includes: [['inc/x.h', h]], entry: h };
    assert.deepEqual(manifestLinesOf({ lines: [line] }), [line]);
    assert.deepEqual(manifestLinesOf({ lines: [] }), []);
    const bad: unknown[] = [
      null,
      [],
      'lines',
      { lines: [line], more: 1 },
      { lines: {} },
      { lines: Array.from({ length: MANIFEST_LINES + 1 }, () => line) },
      { lines: [{ ...line, extra: true }] },
      { lines: [{ includes: line.includes }] },
      { lines: [{ ...line, entry: 'A'.repeat(64) }] },
      { lines: [{ ...line, entry: h.slice(1) }] },
      { lines: [{ ...line, includes: {} }] },
      { lines: [{ ...line, includes: [['inc/x.h']] }] },
      { lines: [{ ...line, includes: [['inc/x.h', h, h]] }] },
      { lines: [{ ...line, includes: [['', h]] }] },
      { lines: [{ ...line, includes: [['x'.repeat(4097), h]] }] },
      { lines: [{ ...line, includes: [[7, h]] }] },
      { lines: [{ ...line, includes: [['inc/x.h', 'not a hash']] }] },
      { lines: [{ ...line, includes: Array.from({ length: 20_001 }, () => ['a.h', h]) }] },
    ];
    for (const value of bad)
      assert.equal(manifestLinesOf(value), null, JSON.stringify(value)?.slice(0, 80));
  });

  it('reads an entry only when it is one, whatever else the file holds', () => {
    const h = 'b'.repeat(64);
    const object = { name: 'object', sha256: h, size: 10, mode: 0o644 };
    const entry = {
      key: h,
      outputs: [object, { ...object, name: 'depfile', size: 0 }],
      stderr: { sha256: h, size: 3 },
      exitCode: 0,
      toolchain: h,
      createdAt: '2026-12-06T00:00:00.000Z',
    };
    assert.deepEqual(localEntryOf(entry), entry);
    assert.deepEqual(localEntryOf({ ...entry, stderr: null }), { ...entry, stderr: null });
    const bad: unknown[] = [
      null,
      [],
      'entry',
      { ...entry, more: 1 },
      { ...entry, key: h.toUpperCase() },
      { ...entry, key: undefined },
      { ...entry, exitCode: 1 },
      { ...entry, toolchain: '' },
      { ...entry, toolchain: 't'.repeat(201) },
      { ...entry, toolchain: 7 },
      { ...entry, createdAt: 'x'.repeat(65) },
      { ...entry, outputs: [] },
      { ...entry, outputs: [object, object, object] },
      { ...entry, outputs: {} },
      { ...entry, outputs: [{ ...object, name: 'stderr' }] },
      { ...entry, outputs: [{ ...object, sha256: 'nope' }] },
      { ...entry, outputs: [{ ...object, size: -1 }] },
      { ...entry, outputs: [{ ...object, size: 1.5 }] },
      { ...entry, outputs: [{ ...object, mode: 0o1000 }] },
      { ...entry, outputs: [{ ...object, extra: true }] },
      { ...entry, stderr: { sha256: h } },
      { ...entry, stderr: { sha256: h, size: '3' } },
      { ...entry, stderr: { sha256: h, size: 3, extra: 1 } },
    ];
    for (const value of bad)
      assert.equal(localEntryOf(value), null, JSON.stringify(value)?.slice(0, 120));
  });
});
