/**
 * The shared compile cache's store on real SQLite: entries written once and never changed,
 * refused when a blob they name is missing, manifests capped per direct key, eviction by last
 * use to the byte quota, toolchains, replication of all of it to a backup through the snapshot
 * and change stream HA uses, and the blob sweep keeping what cache rows reference.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { BlobStore } from '../../src/common/blob-store.js';
import { BlobSweeper } from '../../src/coordinator/blob-sweeper.js';
import { blobsOfRow, shaList } from '../../src/coordinator/ha/blob-sync.js';
import { Housekeeping } from '../../src/coordinator/housekeeping.js';
import {
  CACHE_MAX_BYTES_SETTING,
  DEFAULT_CACHE_MAX_BYTES,
  MANIFEST_LINES,
  TOOLCHAIN_USE_STAMP_MS,
  cacheMaxBytes,
  cacheMaxBytesSchema,
  type BlobSizeOf,
  type NewCacheEntry,
} from '../../src/coordinator/store/cache.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-cache-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const file = (name: string) => join(dir, `${name}-${++counter}.sqlite`);

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

/** A store whose clock the test moves (one millisecond per stamp unless set). */
function store(clock = { ms: Date.parse('2026-12-06T00:00:00Z') }): Store {
  const s = openSqliteStore(file('db'), { now: () => new Date(clock.ms++) });
  open.push(s);
  return s;
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** A fake blob store's sizes: every blob of `blobs` is there with its length. */
function sizes(...blobs: string[]): BlobSizeOf {
  const map = new Map(blobs.map((content) => [sha(content), Buffer.byteLength(content)]));
  return (sha256) => map.get(sha256);
}

function entry(key: string, object: string, extra: Partial<NewCacheEntry> = {}): NewCacheEntry {
  return {
    key: sha(key),
    kind: 'compile',
    outputs: [
      { name: 'object', sha256: sha(object), size: Buffer.byteLength(object), mode: 0o644 },
    ],
    stderr: null,
    exitCode: 0,
    toolchain: sha('gcc 12'),
    source: 'client',
    buildUid: 'b'.repeat(32),
    createdBy: 'ada',
    ...extra,
  };
}

function code(err: unknown): string {
  assert.ok(err instanceof MusterError, String(err));
  return err.code;
}

describe('cache store: entries', () => {
  it('stores an entry and reads it back with its size and stamp', () => {
    const s = store();
    const stderr = 'lapi.c:1: warning: unused\n';
    const put = s.cache.putEntry(
      entry('k1', 'OBJ', {
        outputs: [
          { name: 'object', sha256: sha('OBJ'), size: 3, mode: 0o644 },
          { name: 'depfile', sha256: sha('lapi.o: lapi.c\n'), size: 15, mode: 0o644 },
        ],
        stderr: { sha256: sha(stderr), size: Buffer.byteLength(stderr) },
      }),
      sizes('OBJ', 'lapi.o: lapi.c\n', stderr),
    );
    assert.equal(put.created, true);
    assert.deepEqual(s.cache.getEntry(sha('k1')), put.entry);
    assert.equal(put.entry.size, 3 + 15 + Buffer.byteLength(stderr));
    assert.deepEqual(put.entry.stderr, { sha256: sha(stderr), size: Buffer.byteLength(stderr) });
    assert.deepEqual(
      put.entry.outputs.map((o) => o.name),
      ['object', 'depfile'],
    );
    assert.match(put.entry.createdAt, /^2026-12-06T00:00:00\.\d{3}Z$/);
    assert.equal(put.entry.source, 'client');
    assert.equal(s.cache.getEntry(sha('nope')), undefined);
    assert.deepEqual(s.cache.totals(), { entries: 1, bytes: put.entry.size });
  });

  it('is immutable: a second put under the same key keeps the first result', () => {
    const s = store();
    const first = s.cache.putEntry(entry('k', 'ONE'), sizes('ONE', 'TWO'));
    const second = s.cache.putEntry(
      entry('k', 'TWO', { createdBy: 'bob', source: 'agent' }),
      sizes('ONE', 'TWO'),
    );
    assert.equal(second.created, false);
    assert.deepEqual(second.entry, first.entry);
    assert.equal(s.cache.getEntry(sha('k'))?.outputs[0]?.sha256, sha('ONE'));
    assert.equal(s.cache.getEntry(sha('k'))?.createdBy, 'ada');
  });

  it('refuses an entry whose blob is missing or of another size, and writes nothing', () => {
    const s = store();
    assert.equal(
      code(catching(() => s.cache.putEntry(entry('k', 'OBJ'), sizes()))),
      'BLOB_NOT_FOUND',
    );
    const stderr = { sha256: sha('warning'), size: 7 };
    assert.equal(
      code(catching(() => s.cache.putEntry(entry('k', 'OBJ', { stderr }), sizes('OBJ')))),
      'BLOB_NOT_FOUND',
    );
    const wrongSize: BlobSizeOf = (sha256) => (sha256 === sha('OBJ') ? 4 : undefined);
    assert.equal(
      code(catching(() => s.cache.putEntry(entry('k', 'OBJ'), wrongSize))),
      'BLOB_SIZE_MISMATCH',
    );
    assert.equal(s.cache.getEntry(sha('k')), undefined);
    assert.deepEqual(s.cache.totals(), { entries: 0, bytes: 0 });
  });

  it('refuses malformed entries', () => {
    const s = store();
    const blobs = sizes('OBJ');
    const bad: Partial<NewCacheEntry>[] = [
      { key: 'not-a-hash' },
      { toolchain: 'GCC' },
      { createdBy: '' },
      {
        outputs: [
          { name: 'object', sha256: sha('OBJ'), size: 3, mode: 0o644 },
          { name: 'object', sha256: sha('OBJ'), size: 3, mode: 0o644 },
        ],
      },
      { outputs: [{ name: 'object', sha256: sha('OBJ'), size: -1, mode: 0o644 }] },
      { outputs: [{ name: 'object', sha256: sha('OBJ'), size: 3, mode: 0o10000 }] },
      { stderr: { sha256: sha('big'), size: 2 * 1024 * 1024 } },
    ];
    for (const fields of bad) {
      assert.equal(
        code(catching(() => s.cache.putEntry(entry('k', 'OBJ', fields), blobs))),
        'VALIDATION_FAILED',
        JSON.stringify(fields),
      );
    }
    for (const stamp of ['yesterday', '2026-12-06', '2026-13-01T00:00:00.000Z'])
      assert.equal(
        code(catching(() => s.cache.putEntry(entry('k', 'OBJ'), blobs, stamp))),
        'VALIDATION_FAILED',
        stamp,
      );
    assert.equal(s.cache.getEntry(sha('k')), undefined);
  });

  it('records uses (not for unknown keys) and keeps the latest', () => {
    const s = store();
    s.cache.putEntry(entry('k', 'OBJ'), sizes('OBJ'));
    assert.equal(s.cache.usage(sha('k')), undefined);
    assert.equal(s.cache.touch(sha('k'), '2026-12-06T01:00:00.000Z'), true);
    assert.equal(s.cache.touch(sha('k'), '2026-12-06T00:30:00.000Z'), true);
    assert.deepEqual(s.cache.usage(sha('k')), { lastUsed: '2026-12-06T01:00:00.000Z', hits: 2 });
    assert.equal(s.cache.touch(sha('unknown')), false);
    assert.equal(s.cache.usage(sha('unknown')), undefined);
  });
});

describe('cache store: manifests', () => {
  it('lists lines newest first and keeps only the newest 16 per direct key', () => {
    const s = store();
    const direct = sha('direct');
    s.cache.putEntry(entry('r', 'OBJ'), sizes('OBJ'));
    for (let i = 0; i < MANIFEST_LINES + 3; i++) {
      assert.equal(
        s.cache.putManifestLine({
          direct,
          includes: [[`lua.h`, sha(`version ${i}`)]],
          entry: sha('r'),
          createdBy: 'ada',
        }),
        true,
      );
    }
    // Another direct key is not touched by the cap.
    s.cache.putManifestLine({
      direct: sha('other'),
      includes: [],
      entry: sha('r'),
      createdBy: 'ada',
    });
    const lines = s.cache.manifest(direct);
    assert.equal(lines.length, MANIFEST_LINES);
    assert.deepEqual(
      lines.map((line) => line.includes[0]?.[1]),
      Array.from({ length: MANIFEST_LINES }, (_, i) => sha(`version ${MANIFEST_LINES + 2 - i}`)),
    );
    assert.equal(s.cache.manifest(sha('other')).length, 1);
  });

  it('adds a line once, and refuses one whose entry does not exist', () => {
    const s = store();
    s.cache.putEntry(entry('r', 'OBJ'), sizes('OBJ'));
    const line = {
      direct: sha('d'),
      includes: [['a.h', sha('a')]] as [string, string][],
      entry: sha('r'),
      createdBy: 'ada',
    };
    assert.equal(s.cache.putManifestLine(line), true);
    assert.equal(s.cache.putManifestLine(line), false);
    assert.equal(s.cache.manifest(sha('d')).length, 1);
    assert.equal(
      code(catching(() => s.cache.putManifestLine({ ...line, entry: sha('missing') }))),
      'NOT_FOUND',
    );
    assert.equal(
      code(catching(() => s.cache.putManifestLine({ ...line, includes: [['a.h', 'x']] }))),
      'VALIDATION_FAILED',
    );
  });
});

describe('cache store: the direct keys listing', () => {
  /** A key as the listing gives it: its first 4 bytes, in hex. */
  const p = (direct: string) => sha(direct).slice(0, 8);
  const line = (direct: string, entryKey: string, header = 'a.h') => ({
    direct: sha(direct),
    includes: [[header, sha(header)]] as [string, string][],
    entry: sha(entryKey),
    createdBy: 'ada',
  });

  it('lists each direct key once, in the order it came, by number, a page at a time', () => {
    const s = store();
    s.cache.putEntry(entry('r', 'OBJ'), sizes('OBJ'));
    for (const d of ['d1', 'd2', 'd3']) s.cache.putManifestLine(line(d, 'r'));
    s.cache.putManifestLine(line('d1', 'r', 'b.h')); // a second line: not a second key
    const epoch = s.cache.directsEpoch;
    const first = s.cache.directKeys(undefined, 0, 2);
    assert.deepEqual(first, {
      epoch,
      reset: true,
      prefixes: [p('d1'), p('d2')],
      next: 2,
      more: true,
      count: 3,
    });
    const second = s.cache.directKeys(epoch, first.next, 2);
    assert.deepEqual(second, {
      epoch,
      reset: false,
      prefixes: [p('d3')],
      next: 3,
      more: false,
      count: 3,
    });
    assert.deepEqual(s.cache.directKeys(epoch, 3, 2).prefixes, [], 'nothing new');
    assert.equal(s.cache.directKeys(epoch, 3, 2).next, 3);
    s.cache.putManifestLine(line('d4', 'r'));
    assert.deepEqual(s.cache.directKeys(epoch, 3, 2).prefixes, [p('d4')]);
  });

  it('starts from the first for another epoch or a number it never gave', () => {
    const s = store();
    s.cache.putEntry(entry('r', 'OBJ'), sizes('OBJ'));
    s.cache.putManifestLine(line('d1', 'r'));
    const other = s.cache.directKeys('another-epoch', 1, 10);
    assert.equal(other.reset, true);
    assert.deepEqual(other.prefixes, [p('d1')]);
    const ahead = s.cache.directKeys(s.cache.directsEpoch, 99, 10);
    assert.equal(ahead.reset, true);
    assert.deepEqual(ahead.prefixes, [p('d1')]);
  });

  it('drops a key whose lines all went (eviction), and never numbers a key twice', () => {
    const s = store();
    s.cache.putEntry(entry('r1', 'ONE'), sizes('ONE'));
    s.cache.putEntry(entry('r2', 'TWO'), sizes('TWO'));
    s.cache.putManifestLine(line('d1', 'r1'));
    s.cache.putManifestLine(line('d2', 'r2'));
    s.cache.putManifestLine(line('d2', 'r1', 'b.h'));
    const epoch = s.cache.directsEpoch;
    assert.equal(s.cache.directKeys(epoch, 0, 10).count, 2);
    // r1 goes (the least recently used): d1 has no line left, d2 keeps its line to r2.
    s.cache.evict(Buffer.byteLength('TWO'));
    assert.equal(s.cache.getEntry(sha('r1')), undefined);
    const after = s.cache.directKeys(epoch, 0, 10);
    assert.deepEqual(after.prefixes, [p('d2')]);
    assert.equal(after.count, 1);
    // d1 comes again: a new number after every one given, so a client that heard 2 hears it.
    s.cache.putManifestLine(line('d1', 'r2'));
    const again = s.cache.directKeys(epoch, 2, 10);
    assert.equal(again.reset, false);
    assert.deepEqual(again.prefixes, [p('d1')]);
    assert.equal(again.next, 3);
  });

  it('lists the keys a backup received by snapshot and by change, numbered its own way', () => {
    const primary = store();
    primary.replication.setRecording(true);
    primary.cache.putEntry(entry('r', 'OBJ'), sizes('OBJ'));
    primary.cache.putManifestLine(line('before', 'r'));
    const backup = store();
    assert.notEqual(backup.cache.directsEpoch, primary.cache.directsEpoch);
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    assert.deepEqual(backup.cache.directKeys(undefined, 0, 10).prefixes, [p('before')]);
    primary.cache.putManifestLine(line('after', 'r'));
    backup.replication.applyChanges(
      primary.replication.readChanges(stream, seq),
      new Date().toISOString(),
    );
    assert.deepEqual(backup.cache.directKeys(undefined, 0, 10).prefixes, [p('before'), p('after')]);
  });
});

describe('cache store: eviction', () => {
  it('removes the least recently used (never used: by creation) until within the quota', () => {
    const s = store();
    // Four entries of 10 bytes, created a, b, c, d in that order.
    for (const name of ['a', 'b', 'c', 'd'])
      s.cache.putEntry(entry(name, name.repeat(10)), sizes(name.repeat(10)));
    s.cache.putManifestLine({ direct: sha('D'), includes: [], entry: sha('a'), createdBy: 'ada' });
    // a and c used later than b and d were created; b never used.
    s.cache.touch(sha('a'), '2026-12-06T02:00:00.000Z');
    s.cache.touch(sha('c'), '2026-12-06T01:00:00.000Z');
    s.cache.touch(sha('d'), '2026-12-06T00:00:00.000Z');
    assert.deepEqual(s.cache.evict(40), { removed: 0, removedBytes: 0, totalBytes: 40 });
    // d's use is older than b's creation: d goes first, then b.
    assert.deepEqual(s.cache.evict(25), { removed: 2, removedBytes: 20, totalBytes: 20 });
    assert.equal(s.cache.getEntry(sha('d')), undefined);
    assert.equal(s.cache.getEntry(sha('b')), undefined);
    assert.ok(s.cache.getEntry(sha('c')));
    assert.deepEqual(s.cache.evict(10), { removed: 1, removedBytes: 10, totalBytes: 10 });
    assert.equal(s.cache.getEntry(sha('c')), undefined);
    assert.equal(s.cache.manifest(sha('D')).length, 1);
    assert.deepEqual(s.cache.evict(0), { removed: 1, removedBytes: 10, totalBytes: 0 });
    // The manifest line and the use went with their entry.
    assert.deepEqual(s.cache.manifest(sha('D')), []);
    assert.equal(s.cache.usage(sha('a')), undefined);
  });

  it('evicts more than one batch in order, keeping the newest', () => {
    const s = store();
    const blobs = sizes('X');
    s.transaction(() => {
      for (let i = 0; i < 1201; i++) s.cache.putEntry(entry(`e${i}`, 'X'), blobs);
    });
    assert.deepEqual(s.cache.evict(100), { removed: 1101, removedBytes: 1101, totalBytes: 100 });
    assert.deepEqual(s.cache.totals(), { entries: 100, bytes: 100 });
    assert.equal(s.cache.getEntry(sha('e1100')), undefined);
    assert.ok(s.cache.getEntry(sha('e1101')));
    assert.ok(s.cache.getEntry(sha('e1200')));
  });

  it('reads the quota from Cache.MaxBytes: numbers and sizes with units, else the default', () => {
    assert.equal(cacheMaxBytes(undefined), DEFAULT_CACHE_MAX_BYTES);
    assert.equal(DEFAULT_CACHE_MAX_BYTES, 20 * 1024 ** 3);
    assert.equal(cacheMaxBytes(1000), 1000);
    assert.equal(cacheMaxBytes('junk'), DEFAULT_CACHE_MAX_BYTES);
    assert.equal(cacheMaxBytesSchema.parse('20GiB'), 20 * 1024 ** 3);
    assert.equal(cacheMaxBytesSchema.parse('500 MB'), 500e6);
    assert.equal(cacheMaxBytesSchema.parse('1.5kib'), 1536);
    assert.equal(cacheMaxBytesSchema.parse('0'), 0);
    for (const bad of [-1, 1.5, '1.5', '20 apples', '', 'GiB', 2 ** 51, true])
      assert.equal(cacheMaxBytesSchema.safeParse(bad).success, false, String(bad));
  });

  it('is run by housekeeping only on a coordinator that writes, with the quota setting', () => {
    const s = store();
    for (const name of ['a', 'b'])
      s.cache.putEntry(entry(name, name.repeat(10)), sizes(name.repeat(10)));
    s.setSetting(CACHE_MAX_BYTES_SETTING, 10);
    const log = pino({ level: 'silent' });
    let writes = false;
    const blobs = new BlobStore(join(dir, `blobs-${++counter}`));
    const sweeper = new BlobSweeper(
      s,
      blobs,
      { quotaBytes: 1e9, perUserQuotaBytes: 1e9, retentionMs: 3_600_000 },
      log,
    );
    const housekeeping = new Housekeeping(s, sweeper, 3_600_000, log, () => writes);
    housekeeping.evictCache();
    assert.equal(s.cache.totals().entries, 2);
    writes = true;
    housekeeping.evictCache();
    assert.deepEqual(s.cache.totals(), { entries: 1, bytes: 10 });
    assert.ok(s.cache.getEntry(sha('b')));
  });
});

describe('cache store: toolchains', () => {
  it('stores a toolchain once, with its files checked against the blob store', () => {
    const s = store();
    const files = [
      { path: 'bin/gcc', sha256: sha('driver'), size: 6, mode: 0o755 },
      { path: 'lib/gcc/x86_64-linux-gnu/12/cc1', sha256: sha('cc1'), size: 3, mode: 0o755 },
    ];
    const toolchain = {
      id: sha('toolchain'),
      files,
      info: { driver: 'gcc', triple: 'x86_64-linux-gnu', version: '12.2.0', glibc: '2.36' },
      createdBy: 'ada',
    };
    assert.equal(
      code(catching(() => s.cache.putToolchain(toolchain, sizes('driver')))),
      'BLOB_NOT_FOUND',
    );
    const put = s.cache.putToolchain(toolchain, sizes('driver', 'cc1'));
    assert.equal(put.created, true);
    assert.deepEqual(put.toolchain.files, files);
    assert.deepEqual(s.cache.getToolchain(sha('toolchain')), put.toolchain);
    const again = s.cache.putToolchain({ ...toolchain, createdBy: 'bob' }, sizes('driver', 'cc1'));
    assert.equal(again.created, false);
    assert.equal(again.toolchain.createdBy, 'ada');
    assert.deepEqual(s.cache.listToolchains(), [put.toolchain]);
    for (const path of ['/usr/bin/gcc', '../gcc', 'bin//gcc'])
      assert.equal(
        code(
          catching(() =>
            s.cache.putToolchain(
              { ...toolchain, id: sha(path), files: [{ ...files[0]!, path }] },
              sizes('driver'),
            ),
          ),
        ),
        'INVALID_PATH',
        path,
      );
  });

  const tc = (name: string, createdBy = 'ada') => ({
    id: sha(name),
    files: [{ path: 'bin/gcc', sha256: sha('gcc'), size: 3, mode: 0o755 }],
    info: { glibc: '2.36' },
    createdBy,
  });

  it('counts a registration as a use, and stamps later uses at most every 10 minutes', () => {
    const clock = { ms: Date.parse('2026-12-06T00:00:00Z') };
    const s = store(clock);
    const put = s.cache.putToolchain(tc('t'), sizes('gcc'));
    assert.equal(put.toolchain.lastUsedAt, put.toolchain.createdAt);
    assert.equal(put.toolchain.bytes, 3);
    clock.ms += 60_000;
    assert.equal(s.cache.touchToolchain(sha('t')), false, 'a minute later: not rewritten');
    clock.ms += TOOLCHAIN_USE_STAMP_MS;
    assert.equal(s.cache.touchToolchain(sha('t')), true);
    const used = s.cache.getToolchain(sha('t'))!.lastUsedAt;
    assert.ok(used > put.toolchain.lastUsedAt);
    assert.equal(s.cache.touchToolchain(sha('none')), false, 'no such toolchain');
    // Registered again, later: a use too.
    clock.ms += TOOLCHAIN_USE_STAMP_MS;
    const again = s.cache.putToolchain(tc('t', 'bob'), sizes('gcc'));
    assert.equal(again.created, false);
    assert.ok(again.toolchain.lastUsedAt > used);
    assert.deepEqual(
      s.cache.toolchainSummaries().map((t) => [t.id, t.files, t.bytes, t.createdBy]),
      [[sha('t'), 1, 3, 'ada']],
    );
  });

  it('caps the rows per user and in all, for registrations (not for a failback)', () => {
    const s = store();
    const limits = { perUser: 2, total: 3 };
    s.cache.putToolchain(tc('a1'), sizes('gcc'), undefined, limits);
    s.cache.putToolchain(tc('a2'), sizes('gcc'), undefined, limits);
    const mine = catching(() => s.cache.putToolchain(tc('a3'), sizes('gcc'), undefined, limits));
    assert.equal(code(mine), 'TOO_MANY_TOOLCHAINS');
    assert.deepEqual((mine as MusterError).details, { scope: 'user', limit: 2 });
    assert.match((mine as MusterError).message, /ada has registered 2 toolchains/);
    // One that exists is no new row: registering it again is never refused.
    assert.equal(s.cache.putToolchain(tc('a1'), sizes('gcc'), undefined, limits).created, false);
    s.cache.putToolchain(tc('b1', 'bob'), sizes('gcc'), undefined, limits);
    const all = catching(() =>
      s.cache.putToolchain(tc('c1', 'cy'), sizes('gcc'), undefined, limits),
    );
    assert.deepEqual((all as MusterError).details, { scope: 'total', limit: 3 });
    // A failback's rows (no limits) are taken whatever the counts.
    assert.equal(s.cache.putToolchain(tc('a4'), sizes('gcc')).created, true);
    // Removing one makes room.
    assert.equal(s.cache.removeToolchain(sha('b1')), true);
    assert.equal(s.cache.removeToolchain(sha('b1')), false);
    assert.equal(s.cache.removeToolchain(sha('a4')), true);
    assert.equal(
      s.cache.putToolchain(tc('c1', 'cy'), sizes('gcc'), undefined, limits).created,
      true,
    );
  });

  it('removes the toolchains last used before a time', () => {
    const clock = { ms: Date.parse('2026-12-06T00:00:00Z') };
    const s = store(clock);
    s.cache.putToolchain(tc('old'), sizes('gcc'));
    s.cache.putToolchain(tc('used'), sizes('gcc'));
    clock.ms = Date.parse('2026-12-20T00:00:00Z');
    s.cache.touchToolchain(sha('used'));
    s.cache.putToolchain(tc('new'), sizes('gcc'));
    assert.deepEqual(s.cache.removeToolchainsUnusedSince('2026-12-10T00:00:00.000Z'), [sha('old')]);
    assert.deepEqual(
      s.cache.toolchainSummaries().map((t) => t.id),
      [sha('new'), sha('used')],
      'most recently used first',
    );
  });

  it('is removed by housekeeping when unused for the retention, on a coordinator that writes', () => {
    const clock = { ms: Date.now() - 40 * 86_400_000 };
    const s = store(clock);
    s.cache.putToolchain(tc('old'), sizes('gcc'));
    clock.ms = Date.now();
    s.cache.putToolchain(tc('recent'), sizes('gcc'));
    const log = pino({ level: 'silent' });
    const sweeper = new BlobSweeper(
      s,
      new BlobStore(join(dir, `blobs-${++counter}`)),
      { quotaBytes: 1e9, perUserQuotaBytes: 1e9, retentionMs: 3_600_000 },
      log,
    );
    let writes = false;
    const removed: string[][] = [];
    const housekeeping = new Housekeeping(s, sweeper, 3_600_000, log, () => writes, {
      retentionMs: 30 * 86_400_000,
      removed: (ids) => removed.push(ids),
    });
    housekeeping.evictCache();
    assert.equal(s.cache.toolchainSummaries().length, 2, 'a backup standing by keeps them');
    writes = true;
    housekeeping.evictCache();
    assert.deepEqual(removed, [[sha('old')]]);
    assert.deepEqual(
      s.cache.toolchainSummaries().map((t) => t.id),
      [sha('recent')],
    );
  });
});

describe('cache store: replication and blobs', () => {
  it('copies entries, manifests and toolchains to a backup, evictions too, but not uses', () => {
    const primary = store();
    primary.replication.setRecording(true);
    primary.cache.putEntry(entry('before', 'OLD'), sizes('OLD'));
    const backup = store();
    const snap = file('snap');
    const { stream, seq } = primary.replication.writeSnapshot(snap);
    backup.replication.applySnapshot(snap, stream, seq, new Date().toISOString());
    assert.deepEqual(backup.cache.getEntry(sha('before')), primary.cache.getEntry(sha('before')));

    const stderr = 'warning: x\n';
    primary.cache.putEntry(
      entry('after', 'NEW', { stderr: { sha256: sha(stderr), size: Buffer.byteLength(stderr) } }),
      sizes('NEW', stderr),
    );
    primary.cache.putManifestLine({
      direct: sha('D'),
      includes: [['x.h', sha('x')]],
      entry: sha('after'),
      createdBy: 'ada',
    });
    primary.cache.putManifestLine({
      direct: sha('D2'),
      includes: [],
      entry: sha('before'),
      createdBy: 'ada',
    });
    primary.cache.putToolchain(
      {
        id: sha('tc'),
        files: [{ path: 'bin/gcc', sha256: sha('gcc'), size: 3, mode: 0o755 }],
        info: {},
        createdBy: 'ada',
      },
      sizes('gcc'),
    );
    primary.cache.touch(sha('after'));
    const page = primary.replication.readChanges(stream, seq);
    assert.deepEqual(page.changes.map((c) => c.table).sort(), [
      'cache_entries',
      'cache_manifests',
      'cache_manifests',
      'toolchains',
    ]);
    // The blobs the backup fetches before it applies the page.
    assert.deepEqual(
      page.changes.flatMap((c) => blobsOfRow(c.table, c.row)).sort(),
      [sha('NEW'), sha(stderr), sha('gcc')].sort(),
    );
    // …and what the sweep keeps and a new backup copies: the same columns (store/blob-columns.ts).
    assert.deepEqual(
      [...new Set(primary.replication.fileLists().flatMap(shaList))].sort(),
      [sha('OLD'), sha('NEW'), sha(stderr), sha('gcc')].sort(),
    );
    backup.replication.applyChanges(page, new Date().toISOString());
    for (const key of ['before', 'after'])
      assert.deepEqual(backup.cache.getEntry(sha(key)), primary.cache.getEntry(sha(key)));
    assert.deepEqual(backup.cache.manifest(sha('D')), primary.cache.manifest(sha('D')));
    assert.deepEqual(backup.cache.getToolchain(sha('tc')), primary.cache.getToolchain(sha('tc')));
    assert.equal(backup.cache.usage(sha('after')), undefined);

    // A toolchain's last use and its removal travel too (the backup ships what the primary did).
    const used = '2026-12-07T00:00:00.000Z';
    assert.ok(primary.cache.touchToolchain(sha('tc'), used));
    const touched = primary.replication.readChanges(stream, page.lastSeq);
    backup.replication.applyChanges(touched, new Date().toISOString());
    assert.equal(backup.cache.getToolchain(sha('tc'))?.lastUsedAt, used);
    primary.cache.removeToolchain(sha('tc'));
    const removed = primary.replication.readChanges(stream, touched.lastSeq);
    backup.replication.applyChanges(removed, new Date().toISOString());
    assert.equal(backup.cache.getToolchain(sha('tc')), undefined);

    // Eviction on the primary removes the entry and its manifest line on the backup.
    primary.cache.evict(primary.cache.totals().bytes - 1);
    assert.equal(primary.cache.getEntry(sha('before')), undefined);
    const evicted = primary.replication.readChanges(stream, removed.lastSeq);
    backup.replication.applyChanges(evicted, new Date().toISOString());
    assert.equal(backup.cache.getEntry(sha('before')), undefined);
    assert.deepEqual(backup.cache.manifest(sha('D2')), []);
    assert.deepEqual(backup.cache.totals(), primary.cache.totals());
  });

  it('keeps the blobs cache rows reference from the sweep, and lets go of evicted ones', async () => {
    const s = store();
    const blobs = new BlobStore(join(dir, `blobs-${++counter}`));
    await blobs.init();
    const contents = ['OBJ', 'DEP', 'STDERR', 'CC1', 'LOOSE'];
    for (const content of contents) {
      const temp = join(blobs.incomingDir, `t-${sha(content)}`);
      writeFileSync(temp, content);
      await blobs.commit(temp, sha(content));
      const old = new Date(Date.now() - 86_400_000);
      utimesSync(blobs.pathOf(sha(content)), old, old);
    }
    const blobSizeOf: BlobSizeOf = sizes(...contents);
    s.cache.putEntry(
      entry('k', 'OBJ', {
        outputs: [
          { name: 'object', sha256: sha('OBJ'), size: 3, mode: 0o644 },
          { name: 'depfile', sha256: sha('DEP'), size: 3, mode: 0o644 },
        ],
        stderr: { sha256: sha('STDERR'), size: 6 },
      }),
      blobSizeOf,
    );
    s.cache.putToolchain(
      {
        id: sha('tc'),
        files: [{ path: 'libexec/cc1', sha256: sha('CC1'), size: 3, mode: 0o755 }],
        info: {},
        createdBy: 'ada',
      },
      blobSizeOf,
    );
    const sweeper = new BlobSweeper(
      s,
      blobs,
      { quotaBytes: 1e9, perUserQuotaBytes: 1e9, retentionMs: 1000 },
      pino({ level: 'silent' }),
    );
    assert.equal((await sweeper.sweep()).removed, 1);
    assert.equal(await blobs.has(sha('LOOSE')), false);
    for (const content of ['OBJ', 'DEP', 'STDERR', 'CC1'])
      assert.equal(await blobs.has(sha(content)), true, content);

    s.cache.evict(0);
    assert.equal((await sweeper.sweep()).removed, 3);
    assert.equal(await blobs.has(sha('OBJ')), false);
    assert.equal(await blobs.has(sha('STDERR')), false);
    assert.equal(await blobs.has(sha('CC1')), true);
  });
});

function catching(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected an error');
}
