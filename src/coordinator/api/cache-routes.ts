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
import { cacheLookupBody, putCacheEntryBody, putManifestLineBody } from '../../api/requests.js';
import type { CacheLookupView } from '../../api/views/compile.js';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';
import { CACHE_ACCEPT_CLIENT_RESULTS_SETTING, acceptsClientResults } from '../store/cache.js';
import { requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
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
    // A lookup is the use an LRU sees (a standby writes nothing: it evicts nothing either).
    if (ctx.ha.role() !== 'backup-standby')
      for (const entry of entries) store.cache.touch(entry.key);
    const view: CacheLookupView = {
      manifest: manifest.map((line) => ({ includes: line.includes, entry: line.entry })),
      entries: entries.map(cacheEntryView),
    };
    return view;
  });

  app.put<{ Params: { key: string } }>('/api/v1/cache/entries/:key', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    const key = parse(sha256Hex, request.params.key, 'key');
    const body = parse(putCacheEntryBody, request.body, 'cache entry');
    requireClientResults(ctx);
    const buildUid =
      body.buildId === undefined ? null : (store.getBuild(body.buildId)?.uid ?? null);
    const hashes = [
      ...body.outputs.map((o) => o.sha256),
      ...(body.stderr ? [body.stderr.sha256] : []),
    ];
    const { entry, created } = await withBlobs(ctx, hashes, (sizeOf) =>
      store.cache.putEntry(
        {
          key,
          kind: 'compile',
          outputs: body.outputs,
          stderr: body.stderr,
          exitCode: body.exitCode,
          toolchain: body.toolchain,
          source: 'client',
          buildUid,
          createdBy: user.name,
        },
        sizeOf,
      ),
    );
    return reply.code(created ? 201 : 200).send(cacheEntryView(entry));
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
      return reply.code(added ? 201 : 200).send({ added });
    },
  );
}

function requireClientResults(ctx: ApiContext): void {
  if (!acceptsClientResults(ctx.store.getSetting(CACHE_ACCEPT_CLIENT_RESULTS_SETTING)))
    throw new MusterError(
      'CACHE_CLIENT_RESULTS_REFUSED',
      `this coordinator stores only results it obtained from its agents (${CACHE_ACCEPT_CLIENT_RESULTS_SETTING} is false)`,
    );
}
