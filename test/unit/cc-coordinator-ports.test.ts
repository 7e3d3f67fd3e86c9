import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CompileRecord, CloseCompileSession } from '../../src/api/requests-types.js';
import { CACHE_RESULTS_LIMITS } from '../../src/api/requests.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { PutCacheResultsRequest } from '../../src/cli/api-client.js';
import {
  BATCH_RETRY_MS,
  CoordinatorCache,
  INLINE_UPLOAD_BYTES,
  MAX_BATCH_UPLOAD_BYTES,
} from '../../src/cli/cc/coordinator-cache.js';
import { DirectKeys } from '../../src/cli/cc/direct-keys.js';
import { SessionRecorder } from '../../src/cli/cc/session-recorder.js';
import type { Toolchain } from '../../src/cli/cc/toolchain.js';
import { MusterError } from '../../src/protocol/errors.js';

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const toolchain = { id: sha('tc') } as Toolchain;

/** The answer of a coordinator that stored every result of the batch. */
function storedAll(body: PutCacheResultsRequest) {
  return {
    results: body.results.map((r) => ({ key: r.key, stored: true as const, created: true })),
  };
}

/** A coordinator's API that takes batches: every blob missing, every result stored; `overrides` win. */
function batchingApi(overrides: Partial<ConstructorParameters<typeof CoordinatorCache>[0]> = {}) {
  return {
    cacheLookup: () => Promise.reject(new Error('unused')),
    getBlob: () => Promise.reject(new Error('unused')),
    missingBlobs: (hashes: string[]) => Promise.resolve(hashes),
    putBlob: () => Promise.resolve(),
    putCacheEntry: () => Promise.reject(new Error('not without the batch route')),
    putManifestLine: () => Promise.reject(new Error('not without the batch route')),
    putCacheResults: (body: PutCacheResultsRequest) => Promise.resolve(storedAll(body)),
    ...overrides,
  };
}

function record(n: number): CompileRecord {
  return {
    label: `gcc -c f${n}.c`,
    placement: 'local',
    cache: 'miss',
    exitCode: 0,
    startedAt: 1_700_000_000_000 + n,
    durationMs: 5,
  };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), 'condition not reached within 5 s');
}

describe('the coordinator as the shared cache', () => {
  it('without POST /cache/results (an older coordinator): only missing blobs, then the entry, then the manifest line', async () => {
    const calls: string[] = [];
    const object = Buffer.from('object bytes');
    const depfile = Buffer.from('f.o: f.c f.h\n');
    const stderr = Buffer.from('warning: x\n');
    const cache = new CoordinatorCache(
      {
        cacheLookup: () => Promise.reject(new Error('unused')),
        getBlob: () => Promise.reject(new Error('unused')),
        putCacheResults: () => {
          calls.push('results');
          return Promise.reject(
            new MusterError('NOT_FOUND', 'Route POST:/api/v1/cache/results not found'),
          );
        },
        missingBlobs: (hashes) => {
          calls.push(`missing ${hashes.length}`);
          return Promise.resolve(hashes.filter((h) => h !== sha(depfile)));
        },
        putBlob: (hash, data) => {
          assert.equal(sha(Buffer.from(data)), hash);
          calls.push(
            `blob ${hash === sha(object) ? 'object' : hash === sha(stderr) ? 'stderr' : '?'}`,
          );
          return Promise.resolve();
        },
        putCacheEntry: (key, body) => {
          calls.push(`entry ${key.slice(0, 4)} build ${body.buildId ?? '-'}`);
          assert.deepEqual(body.stderr, { sha256: sha(stderr), size: stderr.length });
          assert.deepEqual(
            body.outputs.map((o) => [o.name, o.size, o.mode]),
            [
              ['object', object.length, 0o644],
              ['depfile', depfile.length, 0o644],
            ],
          );
          return Promise.resolve({} as never);
        },
        putManifestLine: (direct, body) => {
          calls.push(
            `manifest ${direct.slice(0, 4)} -> ${body.entry.slice(0, 4)} ${body.includes.length}`,
          );
          return Promise.resolve();
        },
      },
      () => 7,
    );
    const key = sha('key');
    const direct = sha('direct');
    await cache.store({
      key,
      outputs: [
        { name: 'object', data: object, mode: 0o644 },
        { name: 'depfile', data: depfile, mode: 0o644 },
      ],
      stderr,
      toolchain,
      manifest: { direct, includes: [['f.h', sha('h')]] },
    });
    assert.deepEqual(calls, [
      'results',
      'missing 3',
      'blob object',
      'blob stderr',
      `entry ${key.slice(0, 4)} build 7`,
      `manifest ${direct.slice(0, 4)} -> ${key.slice(0, 4)} 1`,
    ]);
  });

  it('batches the results made while an upload is in flight: small blobs inline, large ones uploaded first', async () => {
    const bodies: PutCacheResultsRequest[] = [];
    const uploaded: string[] = [];
    let release: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (release = resolve));
    // Over INLINE_UPLOAD_BYTES a blob goes as bytes (base64 in a JSON body costs the coordinator
    // far more than a request); at it, and always under the route's own bound, inline.
    const big = Buffer.alloc(INLINE_UPLOAD_BYTES + 1, 7);
    const atLimit = Buffer.alloc(INLINE_UPLOAD_BYTES, 8);
    assert.ok(big.length <= CACHE_RESULTS_LIMITS.inlineBlobBytes, 'the route would take it inline');
    const cache = new CoordinatorCache(
      {
        cacheLookup: () => Promise.reject(new Error('unused')),
        getBlob: () => Promise.reject(new Error('unused')),
        missingBlobs: (hashes) => Promise.resolve(hashes),
        putBlob: (hash) => {
          uploaded.push(hash);
          return Promise.resolve();
        },
        putCacheEntry: () => Promise.reject(new Error('not without the batch route')),
        putManifestLine: () => Promise.reject(new Error('not without the batch route')),
        putCacheResults: async (body) => {
          bodies.push(body);
          if (bodies.length === 1) await first;
          return {
            results: body.results.map((r) =>
              r.key === sha('refused')
                ? {
                    key: r.key,
                    stored: false,
                    error: { code: 'BLOB_NOT_FOUND', message: 'no blob' },
                  }
                : { key: r.key, stored: true, created: true },
            ),
          };
        },
      },
      () => 3,
    );
    const result = (name: string, data: Buffer) => ({
      key: sha(name),
      outputs: [{ name: 'object' as const, data, mode: 0o644 }],
      stderr: Buffer.alloc(0),
      toolchain,
      manifest: {
        direct: sha(`direct ${name}`),
        includes: [['a.h', sha('a')]] as [string, string][],
      },
    });
    const a = cache.store(result('a', Buffer.from('object a')));
    const b = cache.store(result('b', Buffer.from('object b')));
    const c = cache.store(result('c', big));
    const d = cache.store(result('d', atLimit));
    const refused = cache.store(result('refused', Buffer.from('object r')));
    release();
    await Promise.all([a, b, c, d]);
    await assert.rejects(refused, (err: unknown) => {
      assert.ok(err instanceof MusterError);
      assert.equal(err.code, 'BLOB_NOT_FOUND');
      return true;
    });
    // The first went alone; the four made meanwhile went together in one request.
    assert.deepEqual(
      bodies.map((body) => body.results.map((r) => r.key)),
      [[sha('a')], [sha('b'), sha('c'), sha('d'), sha('refused')]],
    );
    const second = bodies[1]!;
    assert.deepEqual(
      (second.blobs ?? []).map((blob) => sha(Buffer.from(blob.data, 'base64'))),
      [sha('object b'), sha(atLimit), sha('object r')],
    );
    assert.deepEqual(uploaded, [sha(big)], 'the large blob is uploaded on its own');
    assert.equal(second.results[1]?.entry.buildId, 3);
    assert.deepEqual(second.results[1]?.manifest, {
      direct: sha('direct c'),
      includes: [['a.h', sha('a')]],
    });
  });

  it('lets a result wait for company, and sends at once after flushNow', async () => {
    const bodies: string[][] = [];
    const cache = new CoordinatorCache(
      {
        cacheLookup: () => Promise.reject(new Error('unused')),
        getBlob: () => Promise.reject(new Error('unused')),
        missingBlobs: (hashes) => Promise.resolve(hashes),
        putBlob: () => Promise.resolve(),
        putCacheEntry: () => Promise.reject(new Error('not without the batch route')),
        putManifestLine: () => Promise.reject(new Error('not without the batch route')),
        putCacheResults: (body) => {
          bodies.push(body.results.map((r) => r.key));
          return Promise.resolve({
            results: body.results.map((r) => ({ key: r.key, stored: true, created: true })),
          });
        },
      },
      () => 3,
      undefined,
      Date.now,
      60_000,
    );
    const result = (name: string) => ({
      key: sha(name),
      outputs: [{ name: 'object' as const, data: Buffer.from(name), mode: 0o644 }],
      stderr: Buffer.alloc(0),
      toolchain,
    });
    const a = cache.store(result('a'));
    const b = cache.store(result('b'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(bodies, [], 'nothing is sent while results gather');
    cache.flushNow();
    await Promise.all([a, b]);
    assert.deepEqual(bodies, [[sha('a'), sha('b')]], 'the gathered results go in one request');
    // After flushNow nothing waits any more (the service is stopping).
    await cache.store(result('c'));
    assert.deepEqual(bodies, [[sha('a'), sha('b')], [sha('c')]]);
  });

  it('cuts batches by the route’s bounds, and sends a result whose rows alone are over them one by one', async () => {
    const batches: number[] = [];
    const entries: string[] = [];
    let release: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (release = resolve));
    const cache = new CoordinatorCache({
      cacheLookup: () => Promise.reject(new Error('unused')),
      getBlob: () => Promise.reject(new Error('unused')),
      missingBlobs: (hashes) => Promise.resolve(hashes),
      putBlob: () => Promise.resolve(),
      putCacheEntry: (key) => {
        entries.push(key);
        return Promise.resolve({} as never);
      },
      putManifestLine: () => Promise.resolve(),
      putCacheResults: async (body, bytes) => {
        batches.push(body.results.length);
        assert.ok((body.blobs ?? []).length <= CACHE_RESULTS_LIMITS.blobs);
        assert.ok(bytes >= JSON.stringify(body.results).length, 'the timeout counts the body');
        if (batches.length === 1) await first;
        return { results: body.results.map((r) => ({ key: r.key, stored: true, created: true })) };
      },
    });
    // Three blobs each (object, depfile, stderr): 192 blobs make 64 results.
    const small = (n: number) => ({
      key: sha(`r${n}`),
      outputs: [
        { name: 'object' as const, data: Buffer.from(`object ${n}`), mode: 0o644 },
        { name: 'depfile' as const, data: Buffer.from(`depfile ${n}`), mode: 0o644 },
      ],
      stderr: Buffer.from(`warning ${n}`),
      toolchain,
    });
    const stores = [cache.store(small(0))];
    for (let n = 1; n <= 70; n++) stores.push(cache.store(small(n)));
    // A manifest line of 19,000 long paths (~5.5 MB of JSON): over the rows' bound by itself.
    const includes = Array.from({ length: 19_000 }, (_, i): [string, string] => [
      `include/${'d'.repeat(200)}/h${i}.h`,
      sha(`h${i}`),
    ]);
    stores.push(cache.store({ ...small(71), manifest: { direct: sha('huge'), includes } }));
    release();
    await Promise.all(stores);
    assert.deepEqual(batches, [1, 64, 6]);
    assert.deepEqual(entries, [sha('r71')], 'the oversized one went the one-by-one way');
  });

  it('an answer to a batch that is not one fails the batch, not the next', async () => {
    let calls = 0;
    const cache = new CoordinatorCache({
      cacheLookup: () => Promise.reject(new Error('unused')),
      getBlob: () => Promise.reject(new Error('unused')),
      missingBlobs: () => Promise.resolve([]),
      putBlob: () => Promise.resolve(),
      putCacheEntry: () => Promise.reject(new Error('unused')),
      putManifestLine: () => Promise.reject(new Error('unused')),
      putCacheResults: (body) => {
        calls += 1;
        return Promise.resolve(
          calls === 1
            ? { results: 'all of them' }
            : { results: body.results.map((r) => ({ key: r.key, stored: true, created: false })) },
        );
      },
    });
    const one = { key: sha('1'), outputs: [], stderr: Buffer.from('w'), toolchain };
    await assert.rejects(cache.store(one), /not what this client understands/);
    await cache.store({ ...one, key: sha('2') });
    assert.equal(calls, 2);
  });

  it('refuses a blob whose bytes are not the hash it was asked for', async () => {
    const good = Buffer.from('good');
    const cache = new CoordinatorCache({
      cacheLookup: () => Promise.reject(new Error('unused')),
      getBlob: () => Promise.resolve(Buffer.from('evil')),
      missingBlobs: () => Promise.resolve([]),
      putBlob: () => Promise.resolve(),
      putCacheEntry: () => Promise.reject(new Error('unused')),
      putCacheResults: () => Promise.reject(new Error('unused')),
      putManifestLine: () => Promise.resolve(),
    });
    await assert.rejects(cache.fetchBlob(sha(good), good.length), (err: unknown) => {
      assert.ok(err instanceof MusterError);
      assert.equal(err.code, 'BLOB_HASH_MISMATCH');
      return true;
    });
  });
});

describe('a coordinator that does not answer', () => {
  it('is not asked again for a while: lookups and stores fail at once', async () => {
    let lookups = 0;
    const cache = new CoordinatorCache({
      cacheLookup: (_body, timeoutMs) => {
        lookups += 1;
        assert.equal(timeoutMs, 5000, 'lookups wait 5 s at most');
        return Promise.reject(new MusterError('UNREACHABLE', 'connection refused'));
      },
      getBlob: () => Promise.reject(new Error('unused')),
      missingBlobs: () => Promise.reject(new Error('not asked while paused')),
      putBlob: () => Promise.resolve(),
      putCacheEntry: () => Promise.reject(new Error('unused')),
      putCacheResults: () => Promise.reject(new Error('unused')),
      putManifestLine: () => Promise.resolve(),
    });
    await assert.rejects(cache.lookup({ direct: sha('d') }), /connection refused/);
    await assert.rejects(cache.lookup({ direct: sha('d') }), /did not answer a moment ago/);
    await assert.rejects(
      cache.store({ key: sha('k'), outputs: [], stderr: Buffer.alloc(0), toolchain }),
      /did not answer a moment ago/,
    );
    assert.equal(lookups, 1);
  });

  it('an answer that is an error (not found, forbidden) pauses nothing', async () => {
    let lookups = 0;
    const cache = new CoordinatorCache({
      cacheLookup: () => {
        lookups += 1;
        return Promise.reject(new MusterError('FORBIDDEN', 'no'));
      },
      getBlob: () => Promise.reject(new Error('unused')),
      missingBlobs: () => Promise.resolve([]),
      putBlob: () => Promise.resolve(),
      putCacheEntry: () => Promise.reject(new Error('unused')),
      putCacheResults: () => Promise.reject(new Error('unused')),
      putManifestLine: () => Promise.resolve(),
    });
    await assert.rejects(cache.lookup({ direct: sha('d') }), /no/);
    await assert.rejects(cache.lookup({ direct: sha('d') }), /no/);
    assert.equal(lookups, 2);
  });
});

describe('the list of the coordinator’s direct keys', () => {
  it('skips the lookup of a key not on a fresh list, asks for one on it, and lists what it stores', async () => {
    const listed = sha('listed');
    const lookups: string[] = [];
    const listings: { epoch: string | undefined; since: number; timeoutMs?: number }[] = [];
    const directs = new DirectKeys();
    const cache = new CoordinatorCache(
      batchingApi({
        cacheLookup: (body) => {
          lookups.push(body.direct ?? '');
          return Promise.resolve({ manifest: [], entries: [] });
        },
        cacheDirects: (epoch, since, timeoutMs) => {
          listings.push({ epoch, since, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
          return Promise.resolve({
            epoch: 'e1',
            reset: true,
            prefixes: Buffer.from(listed.slice(0, 8), 'hex').toString('base64'),
            next: 1,
            more: false,
            count: 1,
          });
        },
      }),
      undefined,
      undefined,
      Date.now,
      0,
      directs,
    );
    // Not heard yet: asked (and the list asked for, once).
    await cache.lookup({ direct: sha('absent') });
    assert.deepEqual(lookups, [sha('absent')]);
    await directs.updating;
    assert.deepEqual(listings, [{ epoch: undefined, since: 0, timeoutMs: 10_000 }]);
    // Heard: a key not on it is a miss without a request; one on it is asked.
    assert.deepEqual(await cache.lookup({ direct: sha('absent') }), { manifest: [], entries: [] });
    await cache.lookup({ direct: listed });
    await cache.lookup({ keys: [sha('by key')] });
    assert.deepEqual(lookups, [sha('absent'), listed, '']);
    // A result stored here goes on the list at once: the next lookup of its key is asked.
    const mine = sha('mine');
    await cache.store({
      key: sha('k'),
      outputs: [{ name: 'object', data: Buffer.from('o'), mode: 0o644 }],
      stderr: Buffer.alloc(0),
      toolchain,
      manifest: { direct: mine, includes: [] },
    });
    await cache.lookup({ direct: mine });
    assert.deepEqual(lookups.at(-1), mine);
    assert.equal(listings.length, 1, 'fresh: not asked again');
  });

  it('asks a paused coordinator as before: the lookup fails, and the compile counts a fallback', async () => {
    let lookups = 0;
    const directs = new DirectKeys();
    const api = batchingApi({
      cacheLookup: () => {
        lookups++;
        return Promise.reject(new MusterError('UNREACHABLE', 'connection refused'));
      },
      cacheDirects: () =>
        Promise.resolve({ epoch: 'e', reset: true, prefixes: '', next: 0, more: false, count: 0 }),
    });
    const cache = new CoordinatorCache(api, undefined, undefined, Date.now, 0, directs);
    cache.refreshDirects();
    await directs.updating;
    assert.ok(directs.lacks(sha('d')));
    await assert.rejects(cache.lookup({ keys: [sha('k')] }), /connection refused/);
    await assert.rejects(cache.lookup({ direct: sha('d') }), /did not answer a moment ago/);
    assert.equal(lookups, 1);
  });
});

describe('an older coordinator (no POST /cache/results)', () => {
  const notFound = (): Promise<never> =>
    Promise.reject(new MusterError('NOT_FOUND', 'Route POST:/api/v1/cache/results not found'));
  const result = (name: string) => ({
    key: sha(name),
    outputs: [{ name: 'object' as const, data: Buffer.from(`object ${name}`), mode: 0o644 }],
    stderr: Buffer.alloc(0),
    toolchain,
  });

  it('one by one: the first result that gets no answer fails the rest at once', async () => {
    let asked = 0;
    let release: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (release = resolve));
    let batches = 0;
    const cache = new CoordinatorCache({
      cacheLookup: () => Promise.reject(new Error('unused')),
      getBlob: () => Promise.reject(new Error('unused')),
      putCacheResults: async () => {
        // The first batch holds the queue, so the next three go in one batch.
        if (++batches === 1) await first;
        return notFound();
      },
      missingBlobs: () => {
        asked++;
        return Promise.reject(new MusterError('UNREACHABLE', 'no answer in 30 s'));
      },
      putBlob: () => Promise.reject(new Error('unused')),
      putCacheEntry: () => Promise.reject(new Error('unused')),
      putManifestLine: () => Promise.reject(new Error('unused')),
    });
    const stores = ['a', 'b', 'c', 'd'].map((n) => cache.store(result(n)));
    release();
    const outcomes = await Promise.allSettled(stores);
    const reasons = outcomes.map((o) =>
      o.status === 'rejected' ? (o.reason as Error).message : 'stored',
    );
    assert.equal(batches, 1, 'after the 404, one by one');
    assert.deepEqual(reasons, [
      'no answer in 30 s',
      'the coordinator did not answer a moment ago',
      'the coordinator did not answer a moment ago',
      'the coordinator did not answer a moment ago',
    ]);
    assert.equal(asked, 1, 'one wait, not one per result');
  });

  it('batches are tried again a minute after the 404, or at once at another coordinator', async () => {
    let clock = 0;
    let batches = 0;
    let entries = 0;
    let upgraded = false;
    const api = {
      url: 'https://primary.example',
      cacheLookup: () => Promise.reject(new Error('unused')),
      getBlob: () => Promise.reject(new Error('unused')),
      putCacheResults: async (body: PutCacheResultsRequest) => {
        batches++;
        if (!upgraded) return notFound();
        return { results: body.results.map((r) => ({ key: r.key, stored: true, created: true })) };
      },
      missingBlobs: () => Promise.resolve([]),
      putBlob: () => Promise.resolve(),
      putCacheEntry: () => {
        entries++;
        return Promise.resolve({} as never);
      },
      putManifestLine: () => Promise.resolve(),
    };
    const cache = new CoordinatorCache(api, undefined, undefined, () => clock);
    await cache.store(result('a'));
    assert.deepEqual([batches, entries], [1, 1]);
    clock += BATCH_RETRY_MS - 1;
    await cache.store(result('b'));
    assert.deepEqual([batches, entries], [1, 2], 'one by one within the minute');
    clock += 1;
    await cache.store(result('c'));
    assert.deepEqual([batches, entries], [2, 3], 'asked again after a minute: still 404');
    // The client switched to the (upgraded) backup: batches at once.
    upgraded = true;
    api.url = 'https://backup.example';
    await cache.store(result('d'));
    assert.deepEqual([batches, entries], [3, 3]);
    await cache.store(result('e'));
    assert.deepEqual([batches, entries], [4, 3]);
  });

  /** A result whose object is `bytes` long (over INLINE_UPLOAD_BYTES: uploaded on its own). */
  const largeResult = (name: string, bytes: number) => ({
    key: sha(name),
    outputs: [
      { name: 'object' as const, data: Buffer.alloc(bytes, name.charCodeAt(0)), mode: 0o644 },
    ],
    stderr: Buffer.alloc(0),
    toolchain,
  });

  it('a coordinator that refuses clients’ results is sent no result and no blob for a minute, or until another answers', async () => {
    let clock = 0;
    let posts = 0;
    const uploads: string[] = [];
    let accepts = false;
    const api = batchingApi({
      url: 'https://primary.example',
      putBlob: (hash: string) => {
        uploads.push(hash);
        return Promise.resolve();
      },
      putCacheResults: (body: PutCacheResultsRequest) => {
        posts++;
        if (!accepts)
          return Promise.reject(
            new MusterError('CACHE_CLIENT_RESULTS_REFUSED', 'only results of its agents'),
          );
        return Promise.resolve(storedAll(body));
      },
    });
    const refused = (err: unknown): boolean =>
      err instanceof MusterError && err.code === 'CACHE_CLIENT_RESULTS_REFUSED';
    const cache = new CoordinatorCache(api, undefined, undefined, () => clock);
    await assert.rejects(cache.store(largeResult('a', INLINE_UPLOAD_BYTES + 1)), refused);
    assert.deepEqual([posts, uploads.length], [1, 1], 'the first batch finds out');
    clock += BATCH_RETRY_MS - 1;
    await assert.rejects(cache.store(largeResult('b', INLINE_UPLOAD_BYTES + 1)), refused);
    assert.deepEqual([posts, uploads.length], [1, 1], 'within the minute: nothing sent at all');
    clock += 1;
    await assert.rejects(cache.store(largeResult('c', INLINE_UPLOAD_BYTES + 1)), refused);
    assert.deepEqual([posts, uploads.length], [2, 2], 'asked again after a minute');
    // The client switched coordinators: asked at once.
    accepts = true;
    api.url = 'https://backup.example';
    await cache.store(largeResult('d', INLINE_UPLOAD_BYTES + 1));
    assert.deepEqual([posts, uploads.length], [3, 3]);
  });

  it('a result answered BLOB_NOT_FOUND after its blobs were uploaded (a failover between) is sent again once', async () => {
    const uploads: string[] = [];
    const posts: string[][] = [];
    // The coordinator loses the uploads twice for 'lost', once for 'moved'.
    const losses = new Map([
      [sha('lost'), 2],
      [sha('moved'), 1],
      [sha('inline'), 1],
    ]);
    const cache = new CoordinatorCache(
      batchingApi({
        putBlob: (hash) => {
          uploads.push(hash);
          return Promise.resolve();
        },
        putCacheResults: (body) => {
          posts.push(body.results.map((r) => r.key));
          return Promise.resolve({
            results: body.results.map((r) => {
              const left = losses.get(r.key) ?? 0;
              if (left === 0) return { key: r.key, stored: true, created: true };
              losses.set(r.key, left - 1);
              return {
                key: r.key,
                stored: false,
                error: { code: 'BLOB_NOT_FOUND', message: 'no such blob' },
              };
            }),
          });
        },
      }),
    );
    const notFound = (err: unknown): boolean =>
      err instanceof MusterError && err.code === 'BLOB_NOT_FOUND';
    const moved = largeResult('moved', INLINE_UPLOAD_BYTES + 1);
    const lost = largeResult('lost', INLINE_UPLOAD_BYTES + 2);
    const inline = largeResult('inline', 100);
    const stored = cache.store(moved);
    const stays = cache.store(lost);
    const small = cache.store(inline);
    await stored;
    await assert.rejects(stays, notFound, 'sent again once only');
    await assert.rejects(small, notFound, 'no blob of its own was uploaded: not sent again');
    const movedHash = sha(moved.outputs[0]!.data);
    const lostHash = sha(lost.outputs[0]!.data);
    assert.equal(uploads.filter((h) => h === movedHash).length, 2, 'its blob uploaded again');
    assert.equal(uploads.filter((h) => h === lostHash).length, 2);
    // The first store goes alone (nothing gathers them), the two made meanwhile together.
    assert.deepEqual(posts, [
      [sha('moved')],
      [sha('moved')],
      [sha('lost'), sha('inline')],
      [sha('lost')],
    ]);
  });

  it('bounds the bytes a batch uploads on their own', async () => {
    const batches: string[][] = [];
    let release: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (release = resolve));
    const cache = new CoordinatorCache(
      batchingApi({
        putCacheResults: async (body) => {
          batches.push(body.results.map((r) => r.key));
          if (batches.length === 1) await first;
          return storedAll(body);
        },
      }),
    );
    const third = Math.floor(MAX_BATCH_UPLOAD_BYTES / 3);
    const stores = [cache.store(largeResult('a', 100))];
    for (const name of ['b', 'c', 'd', 'e']) stores.push(cache.store(largeResult(name, third)));
    release();
    await Promise.all(stores);
    assert.deepEqual(batches, [[sha('a')], [sha('b'), sha('c'), sha('d')], [sha('e')]]);
  });
});

describe('the compile session recorder', () => {
  it('batches records, keeps them while the coordinator is away, then closes once', async () => {
    const sent: number[][] = [];
    const closes: CloseCompileSession[] = [];
    let down = true;
    const warnings: string[] = [];
    const recorder = new SessionRecorder(
      {
        recordCompileJobs: (session, records) => {
          assert.equal(session, '3');
          if (down) return Promise.reject(new MusterError('UNREACHABLE', 'connection refused'));
          sent.push(records.map((r) => r.startedAt - 1_700_000_000_000));
          return Promise.resolve();
        },
        closeCompileSession: (_id, body) => {
          closes.push(body);
          return Promise.resolve({} as never);
        },
      },
      { buildId: 3, key: '3' },
      { flushMs: 5, heartbeatMs: 60_000, warn: (t) => warnings.push(t) },
    );
    recorder.record(record(1));
    recorder.record(record(2));
    await until(() => warnings.length > 0);
    down = false;
    recorder.record(record(3));
    await until(() => sent.flat().length === 3);
    assert.deepEqual(sent.flat(), [1, 2, 3]);
    assert.equal(warnings.length, 1, 'one warning per kind of failure');
    recorder.record(record(4));
    const summary = { jobs: 4, remote: 0, local: 4, cacheHits: 0, fallbacks: 0 };
    await recorder.close(0, summary);
    await recorder.close(0, summary);
    assert.deepEqual(sent.flat(), [1, 2, 3, 4]);
    assert.deepEqual(closes, [{ exitCode: 0, summary }]);
    recorder.record(record(5));
    assert.deepEqual(sent.flat(), [1, 2, 3, 4], 'nothing is recorded after close');
  });

  it('keeps at most maxQueued records, dropping the oldest', async () => {
    const sent: number[] = [];
    let down = true;
    const recorder = new SessionRecorder(
      {
        recordCompileJobs: (_id, records) => {
          if (down) return Promise.reject(new Error('down'));
          sent.push(...records.map((r) => r.startedAt - 1_700_000_000_000));
          return Promise.resolve();
        },
        closeCompileSession: () => Promise.resolve({} as never),
      },
      { buildId: 1, key: '1' },
      { flushMs: 5, maxQueued: 3 },
    );
    for (let n = 1; n <= 5; n++) recorder.record(record(n));
    assert.equal(recorder.droppedRecords, 2);
    down = false;
    await recorder.close(0, { jobs: 5, remote: 0, local: 5, cacheHits: 0, fallbacks: 0 });
    assert.deepEqual(sent, [3, 4, 5]);
  });

  it('drops the records and stops sending once the session is closed on the coordinator', async () => {
    let calls = 0;
    let closes = 0;
    const warnings: string[] = [];
    const recorder = new SessionRecorder(
      {
        recordCompileJobs: () => {
          calls += 1;
          return Promise.reject(new MusterError('COMPILE_SESSION_CLOSED', 'build 3 has ended'));
        },
        closeCompileSession: () => {
          closes += 1;
          return Promise.resolve({} as never);
        },
      },
      { buildId: 3, key: '3' },
      { flushMs: 5, warn: (t) => warnings.push(t) },
    );
    recorder.record(record(1));
    await until(() => recorder.ended);
    recorder.record(record(2));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls, 1, 'not sent again');
    await recorder.close(0, { jobs: 2, remote: 0, local: 2, cacheHits: 0, fallbacks: 0 });
    assert.equal(closes, 0, 'an ended session is not closed again');
    assert.equal(warnings.length, 1);
  });

  it('keeps the records for a coordinator that does not know the session yet, and closes once it does', async () => {
    // A primary still taking its backup's history back: NOT_FOUND until the build is merged,
    // then found by its key under the id the merge gave it.
    const key = 'a'.repeat(32);
    let known = false;
    const sent: number[] = [];
    const asked: string[] = [];
    const closes: CloseCompileSession[] = [];
    const warnings: string[] = [];
    const unknown = (): Promise<never> =>
      Promise.reject(new MusterError('NOT_FOUND', `no compile session ${key}`));
    const recorder = new SessionRecorder(
      {
        recordCompileJobs: (session, records) => {
          asked.push(session);
          if (!known) return unknown();
          sent.push(...records.map((r) => r.startedAt - 1_700_000_000_000));
          return Promise.resolve();
        },
        closeCompileSession: (_session, body) => {
          if (!known) return unknown();
          closes.push(body);
          return Promise.resolve({ id: 1012 } as BuildView);
        },
      },
      { buildId: 12, key },
      { flushMs: 5, closeRetryMs: 5, closeWaitMs: 10_000, warn: (t) => warnings.push(t) },
    );
    recorder.record(record(1));
    await until(() => asked.length >= 2);
    assert.equal(recorder.ended, false, 'not refused for good');
    recorder.record(record(2));
    const summary = { jobs: 2, remote: 0, local: 2, cacheHits: 0, fallbacks: 0 };
    const closing = recorder.close(0, summary);
    await until(() => asked.length >= 4);
    known = true;
    await closing;
    assert.deepEqual(sent, [1, 2], 'every record, before the close');
    assert.deepEqual(closes, [{ exitCode: 0, summary }]);
    assert.ok(asked.every((session) => session === key));
    assert.equal(recorder.buildId, 1012, 'the id the close answered');
    assert.deepEqual(warnings, []);
  });

  it('gives up closing a session no coordinator knows after closeWaitMs', async () => {
    let closes = 0;
    const recorder = new SessionRecorder(
      {
        recordCompileJobs: () => Promise.resolve(),
        closeCompileSession: () => {
          closes += 1;
          return Promise.reject(new MusterError('NOT_FOUND', 'no compile session'));
        },
      },
      { buildId: 3, key: '3' },
      { flushMs: 5, closeRetryMs: 5, closeWaitMs: 50 },
    );
    await assert.rejects(
      recorder.close(0, { jobs: 0, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 }),
      (err: unknown) => err instanceof MusterError && err.code === 'NOT_FOUND',
    );
    assert.ok(closes >= 2, `asked again: ${closes}`);
    assert.equal(recorder.buildId, 3);
  });

  it('sends an empty batch as a heartbeat when there is nothing to record', async () => {
    let beats = 0;
    const recorder = new SessionRecorder(
      {
        recordCompileJobs: (_id, records) => {
          assert.equal(records.length, 0);
          beats += 1;
          return Promise.resolve();
        },
        closeCompileSession: () => Promise.resolve({} as never),
      },
      { buildId: 1, key: '1' },
      { flushMs: 5, heartbeatMs: 10 },
    );
    await until(() => beats >= 2);
    await recorder.close(0, { jobs: 0, remote: 0, local: 0, cacheHits: 0, fallbacks: 0 });
  });
});
