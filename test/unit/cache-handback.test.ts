/**
 * Failback of the compile cache: a backup's export of the rows it made since its takeover, page
 * by page, and the primary taking them back through a fake peer (the backup's real store and
 * blob store behind it): blobs fetched and checked, rows it has kept, a line whose entry it has
 * evicted skipped, a second run adding nothing, pages that do not move forward refused.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { BlobStore } from '../../src/common/blob-store.js';
import { cacheHistoryQuery } from '../../src/coordinator/api/ha-routes.js';
import { httpStatusOf, parse } from '../../src/coordinator/api/http-errors.js';
import { takeBackCache } from '../../src/coordinator/ha/cache-handback.js';
import type {
  PeerClient,
  PeerRequest,
  PeerResponse,
} from '../../src/coordinator/ha/peer-client.js';
import type { CacheHistoryTable } from '../../src/coordinator/store/cache.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import type { Store } from '../../src/coordinator/store/store.js';
import type { BlobSizeOf, NewCacheEntry } from '../../src/coordinator/store/types.js';
import { MusterError } from '../../src/protocol/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-cache-handback-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

const open: Store[] = [];
afterEach(() => {
  for (const store of open.splice(0)) store.close();
});

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const TAKEOVER = '2020-01-02T01:00:00.000Z';

/** A store with a blob store, whose clock the test sets. */
async function side(clock: { at: string }): Promise<{ store: Store; blobs: BlobStore }> {
  const n = ++counter;
  const store = openSqliteStore(join(dir, `db-${n}.sqlite`), { now: () => new Date(clock.at) });
  open.push(store);
  const blobs = new BlobStore(join(dir, `blobs-${n}`));
  await blobs.init();
  return { store, blobs };
}

async function putBlob(blobs: BlobStore, content: string): Promise<void> {
  const temp = join(blobs.incomingDir, `t-${++counter}`);
  writeFileSync(temp, content);
  await blobs.commit(temp, sha(content));
}

function sizes(...blobs: string[]): BlobSizeOf {
  const map = new Map(blobs.map((content) => [sha(content), Buffer.byteLength(content)]));
  return (sha256) => map.get(sha256);
}

function entry(key: string, object: string, stderr?: string): NewCacheEntry {
  return {
    key: sha(key),
    kind: 'compile',
    outputs: [
      { name: 'object', sha256: sha(object), size: Buffer.byteLength(object), mode: 0o644 },
    ],
    stderr: stderr === undefined ? null : { sha256: sha(stderr), size: Buffer.byteLength(stderr) },
    exitCode: 0,
    toolchain: sha('tc'),
    source: 'agent',
    buildUid: null,
    createdBy: 'ada',
  };
}

/**
 * The backup's end of the peer API as failback uses it: the cache history route (JSON round
 * trip, as over HTTP) and blob downloads. `tamper` rewrites a page before it is sent.
 */
function fakePeer(
  backup: { store: Store; blobs: BlobStore },
  tamper?: (table: string, body: { rows: unknown[]; next: unknown }) => unknown,
  pageBytes?: number,
): Pick<PeerClient, 'json' | 'url'> & { calls: string[]; queries: Record<string, unknown>[] } {
  const queries: Record<string, unknown>[] = [];
  const calls: string[] = [];
  return {
    url: 'https://backup.test:8000',
    calls,
    queries,
    json<T>(path: string, options: PeerRequest = {}): Promise<PeerResponse<T>> {
      calls.push(path);
      const answer = (body: unknown) =>
        Promise.resolve({ body: body as T, headers: {}, fingerprint: undefined });
      const blob = /^\/api\/v1\/ha\/blobs\/([0-9a-f]{64})$/.exec(path);
      if (blob && options.toFile) {
        copyFileSync(backup.blobs.pathOf(blob[1]!), options.toFile);
        return answer(undefined);
      }
      const cache = /^\/api\/v1\/ha\/history\/cache\/(\w+)$/.exec(path);
      if (cache) {
        const query = options.query ?? {};
        queries.push({ table: cache[1], ...query });
        // The route's own check of the query (both halves of the cursor, or neither).
        const checked = cacheHistoryQuery.parse(
          Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)),
        );
        const after =
          checked.afterAt === undefined || checked.afterKey === undefined
            ? undefined
            : { at: checked.afterAt, key: checked.afterKey };
        const page = backup.store.cache.exportSince(
          cache[1] as CacheHistoryTable,
          TAKEOVER,
          after,
          checked.limit,
          pageBytes,
        );
        const body = JSON.parse(JSON.stringify(page)) as { rows: unknown[]; next: unknown };
        return answer(tamper ? tamper(cache[1]!, body) : body);
      }
      return Promise.reject(new Error(`unexpected call ${path}`));
    },
  };
}

/** A backup holding a row from before its takeover and rows it made while it ran the cluster. */
async function backupWithHistory() {
  const clock = { at: '2020-01-02T00:30:00.000Z' };
  const backup = await side(clock);
  const contents = ['gcc', 'OLD', 'NEW', 'warning\n'];
  for (const content of contents) await putBlob(backup.blobs, content);
  const all = sizes(...contents);
  backup.store.cache.putEntry(entry('old', 'OLD'), all);
  clock.at = '2020-01-02T01:05:00.000Z';
  backup.store.cache.putToolchain(
    {
      id: sha('tc'),
      files: [{ path: 'bin/gcc', sha256: sha('gcc'), size: 3, mode: 0o755 }],
      info: { version: '12.2.0' },
      createdBy: 'ada',
    },
    all,
  );
  backup.store.cache.putEntry(entry('new', 'NEW', 'warning\n'), all);
  for (let i = 0; i < 3; i++) {
    clock.at = `2020-01-02T01:1${i}:00.000Z`;
    backup.store.cache.putEntry(entry(`more ${i}`, 'NEW'), all);
  }
  backup.store.cache.putManifestLine({
    direct: sha('D'),
    includes: [['a.h', sha('a')]],
    entry: sha('new'),
    createdBy: 'ada',
  });
  // A line to an entry from before the takeover, which the primary evicted meanwhile.
  backup.store.cache.putManifestLine({
    direct: sha('D-old'),
    includes: [],
    entry: sha('old'),
    createdBy: 'ada',
  });
  return backup;
}

describe('cache failback: the export', () => {
  it('pages the rows made since the takeover, oldest first, to the end', async () => {
    const { store } = await backupWithHistory();
    const first = store.cache.exportSince('entries', TAKEOVER, undefined, 2);
    assert.deepEqual(
      first.rows.map((r) => r.key),
      [sha('new'), sha('more 0')],
    );
    assert.deepEqual(first.next, { at: '2020-01-02T01:10:00.000Z', key: sha('more 0') });
    const second = store.cache.exportSince('entries', TAKEOVER, first.next ?? undefined, 2);
    assert.deepEqual(
      second.rows.map((r) => r.key),
      [sha('more 1'), sha('more 2')],
    );
    const last = store.cache.exportSince('entries', TAKEOVER, second.next ?? undefined, 2);
    assert.deepEqual(last, { rows: [], next: null });
    assert.equal(store.cache.exportSince('toolchains', TAKEOVER, undefined, 10).rows.length, 1);
    assert.equal(store.cache.exportSince('manifests', TAKEOVER, undefined, 10).rows.length, 2);
    assert.equal(
      store.cache.exportSince('entries', '2020-01-02T02:00:00.000Z', undefined, 10).rows.length,
      0,
    );
  });
});

describe('cache failback: pages', () => {
  it('cuts a page by bytes as well as rows, and the primary still takes every row', async () => {
    const backup = await backupWithHistory();
    // Each entry row is a few hundred bytes of JSON: one row per page.
    const cut = backup.store.cache.exportSince('entries', TAKEOVER, undefined, 500, 1);
    assert.equal(cut.rows.length, 1);
    assert.deepEqual(cut.next, { at: cut.rows[0]!.createdAt, key: cut.rows[0]!.key });
    const lastOne = backup.store.cache.exportSince(
      'entries',
      TAKEOVER,
      { at: '2020-01-02T01:11:00.000Z', key: sha('more 1') },
      500,
      1,
    );
    assert.equal(lastOne.rows.length, 1);
    assert.equal(lastOne.next, null, 'nothing was left out of it: the last page');

    const primary = await side({ at: '2020-01-02T01:30:00.000Z' });
    const peer = fakePeer(backup, undefined, 1);
    const result = await takeBackCache(peer, primary.store, primary.blobs);
    assert.deepEqual(result.added, { toolchains: 1, entries: 4, manifests: 1 });
    assert.deepEqual(
      peer.queries.filter((q) => q.table === 'manifests').map((q) => q.afterKey !== undefined),
      [false, true],
      'a line per page',
    );
  });

  it('goes on from the last row it took, not from a cursor the backup names', async () => {
    const backup = await backupWithHistory();
    const primary = await side({ at: '2020-01-02T01:30:00.000Z' });
    // A backup whose cursors point past rows it has not sent yet.
    const skipping = fakePeer(
      backup,
      (_table, body) =>
        body.next === null ? body : { ...body, next: { at: '2030-01-01T00:00:00.000Z', key: 'z' } },
      1,
    );
    const result = await takeBackCache(skipping, primary.store, primary.blobs);
    assert.deepEqual(result.added, { toolchains: 1, entries: 4, manifests: 1 });
    for (const q of skipping.queries.filter((q) => q.afterAt !== undefined))
      assert.ok(String(q.afterAt) < '2030', 'never the backup’s cursor');
  });

  it('ends on an empty page even when the backup says there is more', async () => {
    const backup = await backupWithHistory();
    const primary = await side({ at: '2020-01-02T01:30:00.000Z' });
    const endless = fakePeer(backup, (_table, body) => ({
      ...body,
      next: { at: '2030-01-01T00:00:00.000Z', key: 'z' },
    }));
    const result = await takeBackCache(endless, primary.store, primary.blobs);
    assert.deepEqual(result.added, { toolchains: 1, entries: 4, manifests: 1 });
    assert.equal(endless.queries.length, 6, 'each table: its page, then an empty one');
  });

  it('the route takes the cursor whole or not at all', () => {
    assert.equal(cacheHistoryQuery.safeParse({}).success, true);
    assert.equal(cacheHistoryQuery.safeParse({ afterAt: 'a', afterKey: 'b' }).success, true);
    for (const half of [{ afterAt: '2020-01-02T01:00:00.000Z' }, { afterKey: sha('x') }]) {
      assert.throws(
        () => parse(cacheHistoryQuery, half, 'query'),
        (err: unknown) =>
          err instanceof MusterError &&
          err.code === 'VALIDATION_FAILED' &&
          httpStatusOf(err.code) === 400 &&
          /afterAt and afterKey go together/.test(err.message),
      );
    }
  });
});

describe('cache failback: taking the rows back', () => {
  it('adds what the primary lacks with its blobs, keeps what it has, skips orphan lines', async () => {
    const backup = await backupWithHistory();
    const primary = await side({ at: '2020-01-02T01:30:00.000Z' });
    // The primary already has one of them (the same key is the same result).
    await putBlob(primary.blobs, 'NEW');
    primary.store.cache.putEntry(entry('more 2', 'NEW'), sizes('NEW'));
    // The backup's builds used its toolchain since: that last use comes back with it.
    assert.ok(backup.store.cache.touchToolchain(sha('tc'), '2020-01-02T01:25:00.000Z'));
    const peer = fakePeer(backup);
    const result = await takeBackCache(peer, primary.store, primary.blobs);
    assert.deepEqual(result, {
      added: { toolchains: 1, entries: 3, manifests: 1 },
      skipped: 1,
    });
    for (const key of ['new', 'more 0', 'more 1']) {
      const mine = primary.store.cache.getEntry(sha(key));
      assert.deepEqual(mine, backup.store.cache.getEntry(sha(key)), key);
    }
    assert.equal(primary.store.cache.getEntry(sha('old')), undefined);
    assert.equal(
      primary.store.cache.getEntry(sha('more 2'))?.createdAt,
      '2020-01-02T01:30:00.000Z',
    );
    assert.deepEqual(
      primary.store.cache.getToolchain(sha('tc')),
      backup.store.cache.getToolchain(sha('tc')),
    );
    assert.deepEqual(primary.store.cache.manifest(sha('D')), backup.store.cache.manifest(sha('D')));
    assert.deepEqual(primary.store.cache.manifest(sha('D-old')), []);
    for (const content of ['gcc', 'NEW', 'warning\n'])
      assert.equal(await primary.blobs.has(sha(content)), true, content);
    // Only the blobs it lacked (it had NEW), of rows made after the takeover, each once.
    assert.equal(await primary.blobs.has(sha('OLD')), false);
    assert.deepEqual(
      peer.calls.filter((c) => c.startsWith('/api/v1/ha/blobs/')).sort(),
      [sha('gcc'), sha('warning\n')].map((h) => `/api/v1/ha/blobs/${h}`).sort(),
    );

    assert.equal(
      primary.store.cache.getToolchain(sha('tc'))?.lastUsedAt,
      '2020-01-02T01:25:00.000Z',
    );

    // Used on the backup once more: a row the primary has takes the later use, nothing else.
    assert.ok(backup.store.cache.touchToolchain(sha('tc'), '2020-01-02T01:40:00.000Z'));
    const again = await takeBackCache(fakePeer(backup), primary.store, primary.blobs);
    assert.deepEqual(again, { added: { toolchains: 0, entries: 0, manifests: 0 }, skipped: 1 });
    assert.equal(
      primary.store.cache.getToolchain(sha('tc'))?.lastUsedAt,
      '2020-01-02T01:40:00.000Z',
    );
  });

  it('takes nothing from a backup that knows no cache route (an older version)', async () => {
    const primary = await side({ at: '2020-01-02T01:30:00.000Z' });
    const calls: string[] = [];
    const older: Pick<PeerClient, 'json' | 'url'> = {
      url: 'https://backup.test:8000',
      json: (path) => {
        calls.push(path);
        return Promise.reject(new MusterError('NOT_FOUND', `no route GET ${path}`));
      },
    };
    assert.deepEqual(await takeBackCache(older, primary.store, primary.blobs), {
      added: { toolchains: 0, entries: 0, manifests: 0 },
      skipped: 0,
    });
    assert.equal(calls.length, 3);
    const failing: Pick<PeerClient, 'json' | 'url'> = {
      url: 'https://backup.test:8000',
      json: () => Promise.reject(new MusterError('UNREACHABLE', 'backup.test: ECONNREFUSED')),
    };
    await assert.rejects(takeBackCache(failing, primary.store, primary.blobs), /ECONNREFUSED/);
  });

  it('refuses malformed rows and pages that do not move forward', async () => {
    const backup = await backupWithHistory();
    const primary = await side({ at: '2020-01-02T01:30:00.000Z' });
    const malformed = fakePeer(backup, (table, body) =>
      table === 'entries' ? { ...body, rows: [{ key: 'not a hash' }] } : body,
    );
    await assert.rejects(
      takeBackCache(malformed, primary.store, primary.blobs),
      (err: unknown) => err instanceof MusterError && err.code === 'VALIDATION_FAILED',
    );
    assert.equal(primary.store.cache.totals().entries, 0);
    // A backup that answers its first page again and again, saying there is more.
    const first = JSON.parse(
      JSON.stringify(backup.store.cache.exportSince('entries', TAKEOVER, undefined, 2)),
    ) as { rows: unknown[] };
    const stuck = fakePeer(backup, (table, body) =>
      table === 'entries'
        ? { rows: first.rows, next: { at: '2020-01-02T03:00:00.000Z', key: sha('more') } }
        : body,
    );
    await assert.rejects(
      takeBackCache(stuck, primary.store, primary.blobs),
      /pages do not move forward/,
    );
  });
});
