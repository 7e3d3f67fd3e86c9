import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  INLINE_BLOB_BYTES,
  LocalTier,
  MANIFEST_LINES,
  TIER_DB_NAME,
  localEntryOf,
  manifestLinesOf,
  sha256,
  type LocalEntry,
} from '../../src/cli/cc/local-tier.js';

const hex = (n: number): string => n.toString(16).padStart(64, '0');
const HOUR = 3_600_000;

/** A larger blob's file (blobs over INLINE_BLOB_BYTES). */
function blobFile(dir: string, hash: string): string {
  return join(dir, 'files', hash.slice(0, 2), hash);
}

/** Runs `sql` on the tier's database from outside (as another process, or a disk, would). */
function onDb<T>(dir: string, use: (db: Database.Database) => T): T {
  const db = new Database(join(dir, TIER_DB_NAME));
  try {
    return use(db);
  } finally {
    db.close();
  }
}

const rowCount = (dir: string, table: string, where: string, value: string): number =>
  onDb(
    dir,
    (db) =>
      (
        db.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${where} = ?`).get(value) as {
          n: number;
        }
      ).n,
  );

const tierModule = new URL('../../src/cli/cc/local-tier.js', import.meta.url).href;

/** A Node process running `body` (an async module body) with LocalTier imported: another user. */
function child(body: string): ChildProcess {
  return spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { LocalTier } from ${JSON.stringify(tierModule)};\n${body}`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
}

function childDone(p: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error('the child process did not end within 30 s'));
    }, 30_000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`the child process exited with ${String(code)}`));
    });
  });
}

/** Waits (at most 5 s) for `done`, as a store's background trim. */
async function until(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${what} did not happen within 5 s`);
}

function entryOf(key: string, blob: string, size: number): LocalEntry {
  return {
    key,
    outputs: [{ name: 'object', sha256: blob, size, mode: 0o644 }],
    stderr: null,
    exitCode: 0,
    toolchain: hex(3),
    createdAt: '2026-12-06T00:00:00.000Z',
  };
}

describe('local tier of the compile cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'muster-cc-tier-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('keeps blobs by sha256 in its database and verifies them on read', async () => {
    const tier = new LocalTier({ dir: join(root, 'a') });
    const data = Buffer.from('object bytes');
    const hash = await tier.putBlob(data);
    assert.equal(hash, sha256(data));
    assert.deepEqual(await tier.getBlob(hash), data);
    assert.deepEqual(await tier.getBlob(hash, data.length), data);
    assert.equal(await tier.getBlob(hash, data.length + 1), null, 'another size is a miss');
    assert.deepEqual(await tier.getBlob(hash), data, '…and the blob stays for its own size');

    const again = await tier.putBlob(data);
    onDb(tier.dir, (db) =>
      db
        .prepare('UPDATE blob_data SET data = ? WHERE sha256 = ?')
        .run(Buffer.from('corrupted!!!'), again),
    );
    assert.equal(await tier.getBlob(again), null, 'a corrupt blob is a miss');
    assert.equal(rowCount(tier.dir, 'blob_data', 'sha256', again), 0, 'and is removed');
    assert.equal(await tier.getBlob('../../etc/passwd'), null);
    assert.equal(await tier.getBlob(hex(7)), null);
    assert.deepEqual(readdirSync(tier.dir).sort(), [
      TIER_DB_NAME,
      `${TIER_DB_NAME}-shm`,
      `${TIER_DB_NAME}-wal`,
    ]);
    assert.equal(statSync(join(tier.dir, TIER_DB_NAME)).mode & 0o777, 0o600);
    assert.equal(statSync(tier.dir).mode & 0o777, 0o700);
    tier.close();
  });

  it('keeps a larger blob as a file of its own, verified on read', async () => {
    const tier = new LocalTier({ dir: join(root, 'large') });
    const big = Buffer.alloc(INLINE_BLOB_BYTES + 1, 7);
    const hash = await tier.putBlob(big);
    assert.ok(existsSync(blobFile(tier.dir, hash)));
    assert.equal(rowCount(tier.dir, 'blob_data', 'sha256', hash), 0, 'not in the database');
    assert.deepEqual(await tier.getBlob(hash, big.length), big);
    // Its file gone: stored again when it comes again, a miss meanwhile.
    rmSync(blobFile(tier.dir, hash));
    assert.equal(await tier.getBlob(hash), null);
    assert.equal(await tier.putBlob(big), hash);
    assert.deepEqual(await tier.getBlob(hash), big);
    writeFileSync(blobFile(tier.dir, hash), Buffer.alloc(big.length, 8));
    assert.equal(await tier.getBlob(hash), null, 'a corrupt file is a miss');
    assert.ok(!existsSync(blobFile(tier.dir, hash)), 'and is removed');
    assert.equal(rowCount(tier.dir, 'blobs', 'sha256', hash), 0);
    tier.close();
  });

  it('works again after its folder was removed under it (a user clearing the cache)', async () => {
    const tier = new LocalTier({ dir: join(root, 'cleared') });
    const hash = await tier.putBlob(Buffer.from('first'));
    rmSync(tier.dir, { recursive: true, force: true });
    assert.equal(await tier.getBlob(hash), null, 'cleared: a miss');
    assert.equal(await tier.putBlob(Buffer.from('first')), hash);
    assert.deepEqual(await tier.getBlob(hash), Buffer.from('first'));
    const big = Buffer.alloc(300 * 1024, 1);
    assert.deepEqual(await tier.getBlob(await tier.putBlob(big)), big);

    // Cleared again while another process makes the new database and keeps it open (its last
    // results still in its WAL): closing the old connection here must not take them.
    rmSync(tier.dir, { recursive: true, force: true });
    const theirs = sha256(Buffer.from('theirs'));
    const holder = child(`
      const tier = new LocalTier({ dir: ${JSON.stringify(tier.dir)} });
      await tier.putBlob(Buffer.from('theirs'));
      process.stdout.write('ready\\n');
      await new Promise((resolve) => process.stdin.once('end', resolve).resume());
    `);
    await new Promise<void>((resolve, reject) => {
      holder.stdout?.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`the holder exited (${String(code)})`)));
    });
    assert.deepEqual(await tier.getBlob(theirs), Buffer.from('theirs'));
    const ours = await tier.putBlob(Buffer.from('ours'));
    holder.stdin?.end();
    await childDone(holder);
    const later = new LocalTier({ dir: tier.dir });
    assert.deepEqual(await later.getBlob(theirs), Buffer.from('theirs'));
    assert.deepEqual(await later.getBlob(ours), Buffer.from('ours'));
    assert.equal(await later.getBlob(hash), null);
    later.close();
    tier.close();
  });

  it('sets a database that is not one aside and starts afresh', async () => {
    const dir = join(root, 'corrupt');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, TIER_DB_NAME),
      'this is not a database, but it is long enough to look like one '.repeat(80),
    );
    const tier = new LocalTier({ dir });
    assert.deepEqual(await tier.getManifest(hex(1)), []);
    const hash = await tier.putBlob(Buffer.from('kept'));
    assert.deepEqual(await tier.getBlob(hash), Buffer.from('kept'));
    assert.ok(existsSync(join(dir, `${TIER_DB_NAME}.corrupt`)));
    tier.close();
  });

  it('removes the earlier layout’s folders when it makes its database', async () => {
    const dir = join(root, 'legacy');
    for (const name of ['blobs/ab', 'entries/cd', 'manifests/ef', 'explain', 'toolchain-ids'])
      mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, 'blobs', 'ab', hex(1)), 'old');
    const tier = new LocalTier({ dir });
    await tier.putBlob(Buffer.from('new'));
    const gone = (): boolean => readdirSync(dir).some((n) => n.includes('.gone-'));
    for (let i = 0; i < 200 && gone(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => !n.startsWith(TIER_DB_NAME))
        .sort(),
      ['toolchain-ids'],
    );
    tier.close();
  });

  it('misses and keeps nothing once closed (its service stopping)', async () => {
    const tier = new LocalTier({ dir: join(root, 'closed') });
    const hash = await tier.putBlob(Buffer.from('before'));
    tier.close();
    assert.equal(await tier.getBlob(hash), null);
    assert.deepEqual(await tier.getManifest(hex(1)), []);
    await assert.rejects(tier.putBlob(Buffer.from('after')), { name: 'TierClosedError' });
    tier.close();
    const again = new LocalTier({ dir: tier.dir });
    assert.deepEqual(await again.getBlob(hash), Buffer.from('before'));
    again.close();
  });

  it('keeps entries by key and refuses what is not an entry', async () => {
    const tier = new LocalTier({ dir: join(root, 'b') });
    const entry = entryOf(hex(1), hex(2), 10);
    await tier.putEntry(entry);
    assert.deepEqual(await tier.getEntry(hex(1)), entry);
    assert.equal(await tier.getEntry(hex(9)), null);
    onDb(tier.dir, (db) =>
      db.prepare('INSERT INTO entries (key, body, used) VALUES (?, ?, 0)').run(hex(4), '{"key":1}'),
    );
    assert.equal(await tier.getEntry(hex(4)), null);
    onDb(tier.dir, (db) =>
      db
        .prepare('INSERT INTO entries (key, body, used) VALUES (?, ?, 0)')
        .run(hex(5), JSON.stringify(entryOf(hex(6), hex(2), 10))),
    );
    assert.equal(await tier.getEntry(hex(5)), null, 'an entry filed under another key');
    await tier.removeEntry(hex(1));
    assert.equal(await tier.getEntry(hex(1)), null);
    tier.close();
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
    // What is not a manifest reads as none.
    onDb(tier.dir, (db) =>
      db.prepare('UPDATE manifests SET body = ? WHERE direct = ?').run('{"lines":7}', direct),
    );
    assert.deepEqual(await tier.getManifest(direct), []);
    tier.close();
  });

  it('keeps every line when two processes add to one manifest at once', async () => {
    const dir = join(root, 'two');
    const direct = hex(500);
    const writer = (first: number): Promise<void> =>
      childDone(
        child(`
          const tier = new LocalTier({ dir: ${JSON.stringify(dir)} });
          for (let i = ${first}; i < ${first + 8}; i++)
            await tier.addManifestLine(${JSON.stringify(direct)}, {
              includes: [['a.h', i.toString(16).padStart(64, '0')]],
              entry: (600 + i).toString(16).padStart(64, '0'),
            });
          tier.close();
        `),
      );
    await Promise.all([writer(0), writer(8)]);
    const tier = new LocalTier({ dir });
    const entries = (await tier.getManifest(direct)).map((l) => l.entry).sort();
    assert.deepEqual(entries, Array.from({ length: 16 }, (_, i) => hex(600 + i)).sort());
    tier.close();
  });

  it('misses and refuses stores while another process holds the database, then goes on', async () => {
    const tier = new LocalTier({ dir: join(root, 'busy'), busyTimeoutMs: 50 });
    const kept = await tier.putBlob(Buffer.from('kept'));
    await tier.addManifestLine(hex(1), { includes: [], entry: hex(2) });
    const other = new Database(join(tier.dir, TIER_DB_NAME));
    other.exec('BEGIN IMMEDIATE');
    try {
      await assert.rejects(tier.putBlob(Buffer.from('new')), { code: 'SQLITE_BUSY' });
      await assert.rejects(tier.addManifestLine(hex(1), { includes: [], entry: hex(3) }), {
        code: 'SQLITE_BUSY',
      });
      // Readers are not held up by a writer (WAL).
      assert.deepEqual(await tier.getBlob(kept), Buffer.from('kept'));
      assert.equal((await tier.getManifest(hex(1))).length, 1);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    const hash = await tier.putBlob(Buffer.from('new'));
    assert.deepEqual(await tier.getBlob(hash), Buffer.from('new'));
    tier.close();
  });

  it('sets a database of another schema version aside', async () => {
    const dir = join(root, 'version');
    mkdirSync(dir, { recursive: true });
    const foreign = new Database(join(dir, TIER_DB_NAME));
    foreign.exec('CREATE TABLE blobs (x); PRAGMA user_version = 7;');
    foreign.close();
    const tier = new LocalTier({ dir });
    const hash = await tier.putBlob(Buffer.from('mine'));
    assert.deepEqual(await tier.getBlob(hash), Buffer.from('mine'));
    assert.ok(existsSync(join(dir, `${TIER_DB_NAME}.corrupt`)));
    tier.close();
  });

  it('trims the least recently used blobs when over its bound', async () => {
    let clock = Date.now() - 10 * HOUR;
    const tier = new LocalTier({ dir: join(root, 'd'), maxBytes: 1000, now: () => clock });
    const hashes: string[] = [];
    for (let i = 0; i < 4; i++) {
      // Stored an hour apart, oldest first.
      hashes.push(await tier.putBlob(Buffer.alloc(200, i)));
      clock += HOUR;
    }
    // Reading the oldest makes it the most recently used.
    assert.ok((await tier.getBlob(hashes[0]!)) !== null);
    clock += HOUR;
    assert.equal(await tier.scanBytes(), 800);
    // 800 + 300 > 1000: trimmed to ≤ 900 by removing the least recently used (hashes[1]).
    const big = await tier.putBlob(Buffer.alloc(300, 9));
    // The trim the store started runs in the background.
    await until(async () => (await tier.scanBytes()) <= 900, 'the trim');
    assert.equal(await tier.getBlob(hashes[1]!), null);
    assert.ok((await tier.getBlob(hashes[0]!)) !== null);
    assert.ok((await tier.getBlob(big)) !== null);
    tier.close();
  });

  it('trims a larger blob’s file with it', async () => {
    let clock = Date.now() - HOUR;
    const size = INLINE_BLOB_BYTES + 10;
    const tier = new LocalTier({ dir: join(root, 'd2'), maxBytes: 2 * size, now: () => clock });
    const first = await tier.putBlob(Buffer.alloc(size, 1));
    clock += 1000;
    await tier.putBlob(Buffer.alloc(size, 2));
    clock += 1000;
    await tier.putBlob(Buffer.alloc(size, 3));
    await until(() => !existsSync(blobFile(tier.dir, first)), 'the trim');
    assert.equal(rowCount(tier.dir, 'blobs', 'sha256', first), 0);
    tier.close();
  });

  it('trims the entries and manifests last used no later than the blobs it trims', async () => {
    let clock = Date.now() - 10 * HOUR;
    const tier = new LocalTier({ dir: join(root, 'f'), maxBytes: 1000, now: () => clock });
    // Four results stored an hour apart, oldest first: blob, entry and manifest line each.
    const results: { blob: string; key: string; direct: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const blob = await tier.putBlob(Buffer.alloc(200, i));
      const key = hex(300 + i);
      const direct = hex(400 + i);
      await tier.putEntry(entryOf(key, blob, 200));
      await tier.addManifestLine(direct, { includes: [['a.h', hex(i)]], entry: key });
      results.push({ blob, key, direct });
      clock += HOUR;
    }
    // The oldest is served (manifest, entry, then its blob): now the most recently used.
    const served = results[0]!;
    assert.equal((await tier.getManifest(served.direct))[0]?.entry, served.key);
    assert.ok((await tier.getEntry(served.key)) !== null);
    assert.ok((await tier.getBlob(served.blob)) !== null);
    clock += HOUR;
    await tier.scanBytes();

    // 800 + 300 > 1000: the least recently used result (the second) goes, whole.
    await tier.putBlob(Buffer.alloc(300, 9));
    const gone = results[1]!;
    await until(() => rowCount(tier.dir, 'manifests', 'direct', gone.direct) === 0, 'the trim');
    assert.equal(rowCount(tier.dir, 'blobs', 'sha256', gone.blob), 0);
    assert.equal(rowCount(tier.dir, 'entries', 'key', gone.key), 0);
    assert.equal(rowCount(tier.dir, 'manifests', 'direct', gone.direct), 0);
    for (const kept of [results[0]!, results[2]!, results[3]!]) {
      assert.ok((await tier.getBlob(kept.blob)) !== null);
      assert.ok((await tier.getEntry(kept.key)) !== null, 'a kept blob keeps its entry');
      assert.equal((await tier.getManifest(kept.direct)).length, 1);
    }
    tier.close();
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
