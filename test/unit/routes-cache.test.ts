/**
 * The shared cache's routes with inject(), over the real cache store (a temp SQLite) and fake
 * blobs of known sizes: lookups, entries, manifest lines and toolchains; who may write; blobs
 * that must be there with their size; Cache.AcceptClientResults; a backup standing by and an
 * active one (whose rows a failback takes back: exportSince finds them).
 */
import assert from 'node:assert/strict';
import { toolchainIdOf } from '../../src/common/toolchain-id.js';
import { BlobStore } from '../../src/common/blob-store.js';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type {
  CacheDirectsView,
  CacheEntryView,
  CacheLookupView,
  CacheResultsView,
  ToolchainView,
} from '../../src/api/views/compile.js';
import type { BlobAccess, UploadQuota } from '../../src/coordinator/api/ports.js';
import type { AgentRow } from '../../src/coordinator/store/types.js';
import { CACHE_ACCEPT_CLIENT_RESULTS_SETTING } from '../../src/coordinator/store/cache.js';
import { backupHa, blobsOfSize, testApi, type TestApi } from '../helpers/api-context.js';

interface ErrorBody {
  error: { code: string; message: string };
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
const sha256Of = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const KEY = sha('key');
const DIRECT = sha('direct');
const OBJECT = { name: 'object', sha256: sha('a.o'), size: 1200, mode: 0o644 };
const DEPFILE = { name: 'depfile', sha256: sha('a.d'), size: 80, mode: 0o644 };
const STDERR = { sha256: sha('warning'), size: 30 };
const TOOLCHAIN = sha('toolchain');
const agentRow: AgentRow = {
  name: 'a1',
  host: '10.0.0.2',
  port: 7420,
  accessKey: 'k'.repeat(16),
  fingerprint: null,
  tls: true,
  labels: [],
  slots: 2,
  cores: null,
  createdAt: '2030-01-01T00:00:00.000Z',
  agentId: null,
  approved: true,
  facts: null,
};
const entryBody = { outputs: [OBJECT, DEPFILE], stderr: STDERR, exitCode: 0, toolchain: TOOLCHAIN };

/** Blobs by hash with their sizes; what the routes held and marked referenced. */
function sizedBlobs(sizes: Map<string, number>): {
  blobs: BlobAccess;
  uploads: UploadQuota;
  log: string[];
} {
  const log: string[] = [];
  return {
    blobs: blobsOfSize((h) => sizes.get(h)),
    uploads: {
      hold: (hashes) => {
        log.push(`hold ${[...hashes].length}`);
        return () => log.push('release');
      },
      referenced: (hashes) => log.push(`referenced ${[...hashes].length}`),
      reserve: () => () => {},
    },
    log,
  };
}

describe('routes: the shared cache', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  function withBlobs(
    ha?: ReturnType<typeof backupHa>,
  ): Promise<TestApi> & { sizes: Map<string, number>; log: string[] } {
    const sizes = new Map<string, number>([
      [OBJECT.sha256, OBJECT.size],
      [DEPFILE.sha256, DEPFILE.size],
      [STDERR.sha256, STDERR.size],
    ]);
    const fake = sizedBlobs(sizes);
    const promise = testApi(() => ({
      blobs: fake.blobs,
      uploads: fake.uploads,
      ...(ha ? { ha } : {}),
    }));
    return Object.assign(promise, { sizes, log: fake.log });
  }

  it('stores an entry and a manifest line, and finds both in one lookup', async () => {
    const pending = withBlobs();
    api = await pending;
    const put = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const entry = put.body as CacheEntryView;
    assert.deepEqual(
      [entry.key, entry.kind, entry.source, entry.toolchain, entry.exitCode],
      [KEY, 'compile', 'client', TOOLCHAIN, 0],
    );
    assert.deepEqual(entry.outputs, [OBJECT, DEPFILE]);
    assert.deepEqual(entry.stderr, STDERR);
    assert.deepEqual(pending.log, ['hold 3', 'referenced 3', 'release']);
    // Immutable: the same key again answers the row there, 200.
    const again = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: { ...entryBody, stderr: null },
    });
    assert.equal(again.status, 200);
    assert.deepEqual((again.body as CacheEntryView).stderr, STDERR);

    const includes = [['/usr/include/stdio.h', sha('stdio')]];
    const line = await api.call('POST', `/api/v1/cache/manifests/${DIRECT}`, {
      token: api.admin,
      body: { includes, entry: KEY },
    });
    assert.deepEqual([line.status, line.body], [201, { added: true }]);
    const same = await api.call('POST', `/api/v1/cache/manifests/${DIRECT}`, {
      token: api.admin,
      body: { includes, entry: KEY },
    });
    assert.deepEqual([same.status, same.body], [200, { added: false }]);

    const lookup = await api.call('POST', '/api/v1/cache/lookup', {
      token: api.viewer,
      body: { direct: DIRECT, keys: [KEY, sha('absent')] },
    });
    assert.equal(lookup.status, 200);
    const view = lookup.body as CacheLookupView;
    assert.deepEqual(view.manifest, [{ includes, entry: KEY }]);
    assert.deepEqual(
      view.entries.map((e) => e.key),
      [KEY],
    );
    // The lookup is a use: the entry is the most recently used.
    assert.equal(api.store.cache.usage(KEY)?.hits, 1);
    const empty = await api.call('POST', '/api/v1/cache/lookup', {
      token: api.viewer,
      body: { direct: sha('nothing') },
    });
    assert.deepEqual(empty.body, { manifest: [], entries: [] });
    // /metrics counts them: one answered with a result, one with none.
    const metrics = await api.metrics();
    assert.match(metrics, /^muster_cache_lookups_total\{result="hit"\} 1$/m);
    assert.match(metrics, /^muster_cache_lookups_total\{result="miss"\} 1$/m);
    assert.match(metrics, /^muster_cache_entries 1$/m);
  });

  it('stores several results at once, their small blobs inline; one refused leaves the others', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'muster-cache-results-'));
    try {
      const blobs = new BlobStore(dir);
      await blobs.init();
      const quota = sizedBlobs(new Map()).uploads;
      api = await testApi(() => ({ blobs, uploads: quota }));
      const object = Buffer.from('object bytes of a.o');
      const objectRef = {
        name: 'object',
        sha256: sha256Of(object),
        size: object.length,
        mode: 0o644,
      };
      const includes = [['a.h', sha('a.h')]];
      const results = [
        {
          key: KEY,
          entry: { outputs: [objectRef], stderr: null, exitCode: 0, toolchain: TOOLCHAIN },
          manifest: { direct: DIRECT, includes },
        },
        {
          // Names a blob that is neither inline nor uploaded.
          key: sha('other'),
          entry: { outputs: [OBJECT], stderr: null, exitCode: 0, toolchain: TOOLCHAIN },
        },
      ];
      const viewer = await api.call('POST', '/api/v1/cache/results', {
        token: api.viewer,
        body: { results, blobs: [{ sha256: objectRef.sha256, data: object.toString('base64') }] },
      });
      assert.equal(viewer.status, 403);
      // Bytes that are not their hash: nothing of the request is kept.
      const forged = await api.call('POST', '/api/v1/cache/results', {
        token: api.admin,
        body: {
          results,
          blobs: [
            { sha256: objectRef.sha256, data: Buffer.from('other bytes').toString('base64') },
          ],
        },
      });
      assert.equal((forged.body as ErrorBody).error.code, 'BLOB_HASH_MISMATCH');
      assert.equal(await blobs.sizeOf(objectRef.sha256), undefined);
      assert.equal(api.store.cache.getEntry(KEY), undefined);

      const put = await api.call('POST', '/api/v1/cache/results', {
        token: api.admin,
        body: { results, blobs: [{ sha256: objectRef.sha256, data: object.toString('base64') }] },
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const view = put.body as CacheResultsView;
      assert.deepEqual(view.results[0], { key: KEY, stored: true, created: true });
      assert.equal(view.results[1]?.stored, false);
      assert.equal(
        view.results[1]?.stored === false ? view.results[1].error.code : '',
        'BLOB_NOT_FOUND',
      );
      assert.equal(await blobs.sizeOf(objectRef.sha256), object.length);
      const lookup = await api.call('POST', '/api/v1/cache/lookup', {
        token: api.viewer,
        body: { direct: DIRECT },
      });
      const found = lookup.body as CacheLookupView;
      assert.deepEqual(found.manifest, [{ includes, entry: KEY }]);
      assert.deepEqual(found.entries[0]?.outputs, [objectRef]);
      assert.equal(api.store.cache.getEntry(sha('other')), undefined);
      // Again: the row is there (created false), and the blob is not written twice.
      const again = await api.call('POST', '/api/v1/cache/results', {
        token: api.admin,
        body: {
          results: results.slice(0, 1),
          blobs: [{ sha256: objectRef.sha256, data: object.toString('base64') }],
        },
      });
      assert.deepEqual((again.body as CacheResultsView).results, [
        { key: KEY, stored: true, created: false },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses an entry whose blobs are missing or of another size, and a line whose entry isn't there", async () => {
    const pending = withBlobs();
    api = await pending;
    pending.sizes.delete(DEPFILE.sha256);
    const missing = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal(missing.status, 400);
    assert.equal((missing.body as ErrorBody).error.code, 'BLOB_NOT_FOUND');
    pending.sizes.set(DEPFILE.sha256, DEPFILE.size + 1);
    const size = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal((size.body as ErrorBody).error.code, 'BLOB_SIZE_MISMATCH');
    assert.equal(api.store.cache.getEntry(KEY), undefined);

    const orphan = await api.call('POST', `/api/v1/cache/manifests/${DIRECT}`, {
      token: api.admin,
      body: { includes: [], entry: KEY },
    });
    assert.equal(orphan.status, 404);

    for (const [url, body] of [
      [`/api/v1/cache/entries/${KEY}`, { ...entryBody, exitCode: 1 }],
      [`/api/v1/cache/entries/NOTAKEY`, entryBody],
      [`/api/v1/cache/entries/${KEY}`, { ...entryBody, outputs: [] }],
    ] as const) {
      const bad = await api.call('PUT', url, { token: api.admin, body });
      assert.equal((bad.body as ErrorBody).error.code, 'VALIDATION_FAILED', url);
    }
    const noKeys = await api.call('POST', '/api/v1/cache/lookup', { token: api.admin, body: {} });
    assert.equal((noKeys.body as ErrorBody).error.code, 'VALIDATION_FAILED');
  });

  it('lists the direct keys as 4-byte prefixes by number, to any user, and checks the query', async () => {
    api = await withBlobs();
    const put = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal(put.status, 201);
    const directs = [DIRECT, sha('direct 2')];
    for (const direct of directs) {
      const line = await api.call('POST', `/api/v1/cache/manifests/${direct}`, {
        token: api.admin,
        body: { includes: [], entry: KEY },
      });
      assert.equal(line.status, 201);
    }
    const all = await api.call('GET', '/api/v1/cache/directs', { token: api.viewer });
    assert.equal(all.status, 200, JSON.stringify(all.body));
    const view = all.body as CacheDirectsView;
    assert.equal(view.reset, true);
    assert.equal(view.more, false);
    assert.equal(view.count, 2);
    assert.equal(view.next, 2);
    assert.deepEqual(
      Buffer.from(view.prefixes, 'base64').toString('hex'),
      directs.map((d) => d.slice(0, 8)).join(''),
    );
    const none = await api.call(
      'GET',
      `/api/v1/cache/directs?epoch=${view.epoch}&since=${view.next}`,
      { token: api.viewer },
    );
    assert.deepEqual(none.body, { ...view, reset: false, prefixes: '' });
    const anonymous = await api.call('GET', '/api/v1/cache/directs');
    assert.equal(anonymous.status, 401);
    for (const query of ['since=-1', 'since=x', 'epoch=', `epoch=${'e'.repeat(65)}`, 'other=1']) {
      const bad = await api.call('GET', `/api/v1/cache/directs?${query}`, { token: api.viewer });
      assert.equal((bad.body as ErrorBody).error.code, 'VALIDATION_FAILED', query);
    }
  });

  it('lets viewers read but not write', async () => {
    api = await withBlobs();
    const write = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.viewer,
      body: entryBody,
    });
    assert.equal(write.status, 403);
    const anonymous = await api.call('POST', '/api/v1/cache/lookup', { body: { keys: [KEY] } });
    assert.equal(anonymous.status, 401);
  });

  it('refuses clients’ results and lines with Cache.AcceptClientResults false', async () => {
    api = await withBlobs();
    const set = await api.call('PUT', '/api/v1/settings/Cache.AcceptClientResults', {
      token: api.admin,
      body: { value: false },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const entry = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal(entry.status, 403);
    assert.equal((entry.body as ErrorBody).error.code, 'CACHE_CLIENT_RESULTS_REFUSED');
    const line = await api.call('POST', `/api/v1/cache/manifests/${DIRECT}`, {
      token: api.admin,
      body: { includes: [], entry: KEY },
    });
    assert.equal((line.body as ErrorBody).error.code, 'CACHE_CLIENT_RESULTS_REFUSED');
    const batch = await api.call('POST', '/api/v1/cache/results', {
      token: api.admin,
      body: { results: [{ key: KEY, entry: entryBody }] },
    });
    assert.equal((batch.body as ErrorBody).error.code, 'CACHE_CLIENT_RESULTS_REFUSED');
    const notBoolean = await api.call('PUT', '/api/v1/settings/Cache.AcceptClientResults', {
      token: api.admin,
      body: { value: 'no' },
    });
    assert.equal(notBoolean.status, 400);
  });

  it('registers a toolchain whose files are uploaded, and shows it', async () => {
    const pending = withBlobs();
    api = await pending;
    // Even where clients' results are refused: the id is the files' own hash, and a toolchain
    // only runs for jobs that name it (without one, no remote compile could ever run).
    api.store.setSetting(CACHE_ACCEPT_CLIENT_RESULTS_SETTING, false);
    const gcc = { path: 'bin/gcc', sha256: sha('gcc'), size: 900, mode: 0o755 };
    const cc1 = {
      path: 'lib/gcc/x86_64-linux-gnu/12/cc1',
      sha256: sha('cc1'),
      size: 30_000,
      mode: 0o755,
    };
    const info = {
      driver: 'bin/gcc',
      triple: 'x86_64-linux-gnu',
      version: '12.2.0',
      glibc: '2.34',
    };
    const body = { files: [gcc, cc1], info };
    const id = toolchainIdOf({ ...info, files: [gcc, cc1] });
    // Under another id (a known compiler's, say) the same files are refused.
    const forged = await api.call('PUT', `/api/v1/toolchains/${sha('stock gcc')}`, {
      token: api.admin,
      body,
    });
    assert.equal(forged.status, 400);
    assert.match((forged.body as ErrorBody).error.message, /not the hash of its description/);
    const missing = await api.call('PUT', `/api/v1/toolchains/${id}`, {
      token: api.admin,
      body,
    });
    assert.equal((missing.body as ErrorBody).error.code, 'BLOB_NOT_FOUND');
    pending.sizes.set(gcc.sha256, gcc.size);
    pending.sizes.set(cc1.sha256, cc1.size);
    const put = await api.call('PUT', `/api/v1/toolchains/${id}`, {
      token: api.admin,
      body,
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.deepEqual((put.body as ToolchainView).info, body.info);
    // A new toolchain is a new bundle: pushed to the connected agents.
    assert.deepEqual(api.agents.calls, ['resync']);
    const again = await api.call('PUT', `/api/v1/toolchains/${id}`, {
      token: api.admin,
      body,
    });
    assert.equal(again.status, 200);
    assert.deepEqual(api.agents.calls, ['resync'], 'nothing new to push');
    // Which agents can run it: those whose snapshot says so.
    for (const name of ['a1', 'a2']) {
      api.agents.rows.set(name, { ...agentRow, name });
    }
    api.agents.toolchains.set('a2', [id]);
    const shown = await api.call('GET', `/api/v1/toolchains/${id}`, { token: api.viewer });
    assert.equal(shown.status, 200);
    assert.equal((shown.body as ToolchainView).id, id);
    assert.deepEqual((shown.body as ToolchainView).agents, ['a2']);
    const none = await api.call('GET', `/api/v1/toolchains/${sha('none')}`, { token: api.viewer });
    assert.equal(none.status, 404);
    const escaping = await api.call('PUT', `/api/v1/toolchains/${sha('other')}`, {
      token: api.admin,
      body: { files: [{ ...gcc, path: '../gcc' }], info: {} },
    });
    assert.equal(escaping.status, 400);
  });

  it('on a backup: refused standing by; written when active, and found for the failback', async () => {
    api = await withBlobs(backupHa('backup-standby', 'https://primary.test:8000'));
    const standby = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal((standby.body as ErrorBody).error.code, 'STANDBY');
    // Reads work on a standby (its copy of the primary's cache).
    const read = await api.call('POST', '/api/v1/cache/lookup', {
      token: api.viewer,
      body: { keys: [KEY] },
    });
    assert.equal(read.status, 200);
    await api.close();

    api = await withBlobs(backupHa('backup-active', 'https://primary.test:8000'));
    const since = new Date(Date.now() - 1000).toISOString();
    const active = await api.call('PUT', `/api/v1/cache/entries/${KEY}`, {
      token: api.admin,
      body: entryBody,
    });
    assert.equal(active.status, 201);
    const handedBack = api.store.cache.exportSince('entries', since, undefined, 10);
    assert.deepEqual(
      handedBack.rows.map((r) => [r.key, r.createdBy]),
      [[KEY, 'admin']],
    );
  });
});
