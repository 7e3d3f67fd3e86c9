/**
 * The shared compile cache (issue 13) over the store's cache (store/cache.ts): look up a direct
 * key's manifest and entries in one round trip, store a result, a manifest line (toolchains:
 * toolchain-routes.ts).
 *
 * Reads: any authenticated user. Writes: whoever may run builds (so not on a backup standing by;
 * an active backup stores them, and they are handed back at failback, ha/cache-handback.ts).
 * Every blob a row names must be in the blob store with its declared size (uploaded first with
 * PUT /blobs); it is kept from the sweep between the check and the row, which then keeps it.
 * With Cache.AcceptClientResults false, clients' results and manifest lines are refused.
 */
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import {
  CACHE_DIRECTS_PAGE,
  CACHE_RESULTS_LIMITS,
  cacheDirectsQuery,
  cacheLookupBody,
  putCacheEntryBody,
  putManifestLineBody,
} from '../../api/requests.js';
import type {
  CacheDirectsView,
  CacheEntryView,
  CacheLookupView,
  CacheResultView,
  CacheResultsView,
  ManifestLineAddedView,
} from '../../api/views/compile.js';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';
import {
  CACHE_ACCEPT_CLIENT_RESULTS_SETTING,
  acceptsClientResults,
  type DirectKeysPage,
  type NewCacheEntry,
} from '../store/cache.js';
import { receiveBlob, receiveBlobNow } from './blob-routes.js';
import { requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { parseResultsBody, type CacheResultsBody } from './results-body.js';
import { cacheEntryView } from './views.js';
import { withBlobs } from './with-blobs.js';

export function registerCacheRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;

  app.post('/api/v1/cache/lookup', async (request) => {
    requireUser(request);
    const body = parse(cacheLookupBody, request.body, 'lookup');
    const manifest = body.direct === undefined ? [] : store.cache.manifest(body.direct);
    const keys = new Set([...(body.keys ?? []), ...manifest.map((line) => line.entry)]);
    const entries = [...keys].flatMap((key) => store.cache.getEntry(key) ?? []);
    ctx.metrics.cacheLookups.inc({ result: entries.length > 0 ? 'hit' : 'miss' });
    // A lookup is the use an LRU sees (a standby writes nothing: it evicts nothing either).
    if (ctx.ha.role() !== 'backup-standby')
      for (const entry of entries) store.cache.touch(entry.key);
    const view: CacheLookupView = {
      manifest: manifest.map((line) => ({ includes: line.includes, entry: line.entry })),
      entries: entries.map(cacheEntryView),
    };
    return view;
  });

  // The direct keys that have lines, as their first 4 bytes, a page at a time: a client that
  // holds the list asks only about the keys on it (a clean build's compiles have nothing to find
  // and skip the round trip). Anyone who may look up may list: a key is a hash, and a lookup
  // says as much.
  app.get('/api/v1/cache/directs', async (request) => {
    requireUser(request);
    const query = parse(cacheDirectsQuery, request.query, 'query');
    return directsView(store.cache.directKeys(query.epoch, query.since ?? 0, CACHE_DIRECTS_PAGE));
  });

  app.put<{ Params: { key: string } }>('/api/v1/cache/entries/:key', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    const key = parse(sha256Hex, request.params.key, 'key');
    const body = parse(putCacheEntryBody, request.body, 'cache entry');
    requireClientResults(ctx);
    const { entry, created } = await storeEntry(ctx, user.name, key, body);
    const view: CacheEntryView = cacheEntryView(entry);
    return reply.code(created ? 201 : 200).send(view);
  });

  app.post('/api/v1/cache/results', { bodyLimit: RESULTS_BODY_LIMIT }, async (request) => {
    const user = requireBuilder(request, ctx);
    const body = parseResultsBody(request.body);
    requireClientResults(ctx);
    const blobs = body.blobs.map((blob) => ({
      sha256: blob.sha256,
      data: Buffer.from(blob.data, 'base64'),
    }));
    const inline = blobs.reduce((sum, blob) => sum + blob.data.length, 0);
    if (inline > CACHE_RESULTS_LIMITS.inlineBytes)
      throw new MusterError(
        'PAYLOAD_TOO_LARGE',
        `at most ${CACHE_RESULTS_LIMITS.inlineBytes} bytes of blobs ride in one request; upload larger ones with PUT /api/v1/blobs/{sha256}`,
      );
    // The blobs first, each checked against its hash before it enters the store; a blob that
    // does not match fails the request, before any row is written.
    for (const blob of blobs) {
      if (blob.data.length <= WRITE_NOW_BYTES)
        receiveBlobNow(ctx, user.name, blob.sha256, blob.data);
      else await receiveBlob(ctx, user.name, blob.sha256, blob.data.length, [blob.data]);
    }
    const view: CacheResultsView = { results: await storeResults(ctx, user.name, body.results) };
    return view;
  });

  app.post<{ Params: { direct: string } }>(
    '/api/v1/cache/manifests/:direct',
    async (request, reply) => {
      const user = requireBuilder(request, ctx);
      const direct = parse(sha256Hex, request.params.direct, 'direct key');
      const body = parse(putManifestLineBody, request.body, 'manifest line');
      requireClientResults(ctx);
      const added = store.cache.putManifestLine({
        direct,
        includes: body.includes,
        entry: body.entry,
        createdBy: user.name,
      });
      const view: ManifestLineAddedView = { added };
      return reply.code(added ? 201 : 200).send(view);
    },
  );
}

/** A page of the direct keys as GET /cache/directs answers it. */
export function directsView(page: DirectKeysPage): CacheDirectsView {
  const prefixes = Buffer.alloc(page.prefixes.length * 4);
  page.prefixes.forEach((prefix, i) => prefixes.write(prefix, i * 4, 'hex'));
  return {
    epoch: page.epoch,
    reset: page.reset,
    prefixes: prefixes.toString('base64'),
    next: page.next,
    more: page.more,
    count: page.count,
  };
}

/** The inline blobs' base64 (4/3 of their bytes), the rows' JSON, and the frame around them. */
const RESULTS_BODY_LIMIT =
  Math.ceil((CACHE_RESULTS_LIMITS.inlineBytes * 4) / 3) +
  CACHE_RESULTS_LIMITS.rowBytes +
  CACHE_RESULTS_LIMITS.blobs * 128;

/** Inline blobs up to this size are written with direct system calls (receiveBlobNow). */
const WRITE_NOW_BYTES = 256 * 1024;

type CacheResult = CacheResultsBody['results'][number];

/**
 * A batch's rows, in one transaction: each result's entry and manifest line in a savepoint of
 * their own, so that one the store refuses (a blob it lacks, a conflicting row) leaves the others.
 */
function storeResults(
  ctx: ApiContext,
  user: string,
  results: CacheResult[],
): Promise<CacheResultView[]> {
  const buildUids = new Map<number, string | null>();
  const buildUid = (id: number | undefined): string | null => {
    if (id === undefined) return null;
    let uid = buildUids.get(id);
    if (uid === undefined) {
      uid = ctx.store.getBuild(id)?.uid ?? null;
      buildUids.set(id, uid);
    }
    return uid;
  };
  return withBlobs(
    ctx,
    results.flatMap((result) => blobsOf(result.entry)),
    (sizeOf) =>
      ctx.store.transaction(() =>
        results.map((result): CacheResultView => {
          try {
            const created = ctx.store.transaction(() => {
              const stored = ctx.store.cache.putEntry(
                entryRow(result.key, result.entry, user, buildUid(result.entry.buildId)),
                sizeOf,
              );
              if (result.manifest !== undefined)
                ctx.store.cache.putManifestLine({
                  direct: result.manifest.direct,
                  includes: result.manifest.includes,
                  entry: result.key,
                  createdBy: user,
                });
              return stored.created;
            });
            return { key: result.key, stored: true, created };
          } catch (err) {
            if (!(err instanceof MusterError)) throw err;
            return {
              key: result.key,
              stored: false,
              error: { code: err.code, message: err.message },
            };
          }
        }),
      ),
    (views) =>
      results.flatMap((result, i) => (views[i]?.stored === true ? blobsOf(result.entry) : [])),
  );
}

/** The blobs a result names: its outputs and its stderr. */
function blobsOf(body: z.infer<typeof putCacheEntryBody>): string[] {
  return [...body.outputs.map((o) => o.sha256), ...(body.stderr ? [body.stderr.sha256] : [])];
}

function entryRow(
  key: string,
  body: z.infer<typeof putCacheEntryBody>,
  user: string,
  buildUid: string | null,
): NewCacheEntry {
  return {
    key,
    kind: 'compile',
    outputs: body.outputs,
    stderr: body.stderr,
    exitCode: body.exitCode,
    toolchain: body.toolchain,
    source: 'client',
    buildUid,
    createdBy: user,
  };
}

/** A client's compile result as a cache entry (its blobs must be in the store). */
function storeEntry(
  ctx: ApiContext,
  user: string,
  key: string,
  body: z.infer<typeof putCacheEntryBody>,
): Promise<ReturnType<ApiContext['store']['cache']['putEntry']>> {
  const buildUid =
    body.buildId === undefined ? null : (ctx.store.getBuild(body.buildId)?.uid ?? null);
  return withBlobs(ctx, blobsOf(body), (sizeOf) =>
    ctx.store.cache.putEntry(entryRow(key, body, user, buildUid), sizeOf),
  );
}

function requireClientResults(ctx: ApiContext): void {
  if (!acceptsClientResults(ctx.store.getSetting(CACHE_ACCEPT_CLIENT_RESULTS_SETTING)))
    throw new MusterError(
      'CACHE_CLIENT_RESULTS_REFUSED',
      `this coordinator stores only results it obtained from its agents (${CACHE_ACCEPT_CLIENT_RESULTS_SETTING} is false)`,
    );
}
