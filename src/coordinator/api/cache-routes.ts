/**
 * The shared compile cache (issue 13) over the store's cache (store/cache.ts): look up a direct
 * key's manifest and entries in one round trip, store a result, a manifest line, a toolchain.
 *
 * Reads: any authenticated user. Writes: whoever may run builds (so not on a backup standing by;
 * an active backup stores them, and they are handed back at failback, ha/cache-handback.ts).
 * Every blob a row names must be in the blob store with its declared size (uploaded first with
 * PUT /blobs); it is kept from the sweep between the check and the row, which then keeps it.
 * With Cache.AcceptClientResults false, clients' results and manifest lines are refused (not
 * toolchains: a toolchain's id is its files' hash, and it only runs for jobs that name it).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { toolchainIdOf } from '../../common/toolchain-id.js';
import {
  CACHE_RESULTS_INLINE_BYTES,
  cacheLookupBody,
  putCacheEntryBody,
  putCacheResultsBody,
  putManifestLineBody,
  putToolchainBody,
} from '../../api/requests.js';
import type {
  CacheLookupView,
  CacheResultView,
  CacheResultsView,
} from '../../api/views/compile.js';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';
import {
  CACHE_ACCEPT_CLIENT_RESULTS_SETTING,
  acceptsClientResults,
  type BlobSizeOf,
} from '../store/cache.js';
import { receiveBlob } from './blob-routes.js';
import { requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { cacheEntryView, toolchainView } from './views.js';

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
    const { entry, created } = await storeEntry(ctx, user.name, key, body);
    return reply.code(created ? 201 : 200).send(cacheEntryView(entry));
  });

  app.post('/api/v1/cache/results', { bodyLimit: RESULTS_BODY_LIMIT }, async (request) => {
    const user = requireBuilder(request, ctx);
    const body = parse(putCacheResultsBody, request.body, 'cache results');
    requireClientResults(ctx);
    // The blobs first, each checked against its hash by the writer; all of them or none.
    const blobs = body.blobs.map((blob) => ({
      sha256: blob.sha256,
      data: Buffer.from(blob.data, 'base64'),
    }));
    const inline = blobs.reduce((sum, blob) => sum + blob.data.length, 0);
    if (inline > CACHE_RESULTS_INLINE_BYTES)
      throw new MusterError(
        'PAYLOAD_TOO_LARGE',
        `at most ${CACHE_RESULTS_INLINE_BYTES} bytes of blobs ride in one request; upload larger ones with PUT /api/v1/blobs/{sha256}`,
      );
    for (const blob of blobs)
      await receiveBlob(ctx, user.name, blob.sha256, blob.data.length, [blob.data]);
    const results: CacheResultView[] = [];
    for (const result of body.results) {
      try {
        const { created } = await storeEntry(ctx, user.name, result.key, result.entry);
        if (result.manifest !== undefined)
          store.cache.putManifestLine({
            direct: result.manifest.direct,
            includes: result.manifest.includes,
            entry: result.key,
            createdBy: user.name,
          });
        results.push({ key: result.key, stored: true, created });
      } catch (err) {
        // One result the store refuses (a blob it lacks, a conflicting row) leaves the others.
        if (!(err instanceof MusterError)) throw err;
        results.push({
          key: result.key,
          stored: false,
          error: { code: err.code, message: err.message },
        });
      }
    }
    const view: CacheResultsView = { results };
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
      return reply.code(added ? 201 : 200).send({ added });
    },
  );

  app.put<{ Params: { id: string } }>('/api/v1/toolchains/:id', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    // Any builder may register one, whatever Cache.AcceptClientResults says: the id is
    // recomputed from the files, and a toolchain only runs for jobs that name its id (clients
    // whose compiler hashes to it), so nobody puts programs under someone else's compiler.
    const id = parse(sha256Hex, request.params.id, 'toolchain id');
    const body = parse(putToolchainBody, request.body, 'toolchain');
    checkToolchainId(id, body);
    const { toolchain, created } = await withBlobs(
      ctx,
      body.files.map((f) => f.sha256),
      (sizeOf) =>
        store.cache.putToolchain(
          { id, files: body.files, info: body.info, createdBy: user.name },
          sizeOf,
        ),
    );
    if (created) {
      // Agents get it with the next bundle: computed now, pushed to those connected.
      ctx.bundles.invalidate();
      await ctx.bundles.get();
      void ctx.agents.resyncAll();
      request.log.info({ toolchain: id, user: user.name }, 'toolchain registered');
    }
    return reply.code(created ? 201 : 200).send(toolchainView(toolchain, ctx.agents.snapshots()));
  });

  app.get<{ Params: { id: string } }>('/api/v1/toolchains/:id', async (request) => {
    requireUser(request);
    const id = parse(sha256Hex, request.params.id, 'toolchain id');
    const toolchain = store.cache.getToolchain(id);
    if (!toolchain) throw new MusterError('NOT_FOUND', `no toolchain ${id}`);
    return toolchainView(toolchain, ctx.agents.snapshots());
  });
}

/** The inline blobs' base64 (4/3 of their bytes) and the rows' JSON around them. */
const RESULTS_BODY_LIMIT = Math.ceil((CACHE_RESULTS_INLINE_BYTES * 4) / 3) + 4 * 1024 * 1024;

/** A client's compile result as a cache entry (its blobs must be in the store). */
function storeEntry(
  ctx: ApiContext,
  user: string,
  key: string,
  body: z.infer<typeof putCacheEntryBody>,
): Promise<ReturnType<ApiContext['store']['cache']['putEntry']>> {
  const buildUid =
    body.buildId === undefined ? null : (ctx.store.getBuild(body.buildId)?.uid ?? null);
  const hashes = [
    ...body.outputs.map((o) => o.sha256),
    ...(body.stderr ? [body.stderr.sha256] : []),
  ];
  return withBlobs(ctx, hashes, (sizeOf) =>
    ctx.store.cache.putEntry(
      {
        key,
        kind: 'compile',
        outputs: body.outputs,
        stderr: body.stderr,
        exitCode: body.exitCode,
        toolchain: body.toolchain,
        source: 'client',
        buildUid,
        createdBy: user,
      },
      sizeOf,
    ),
  );
}

const toolchainInfo = z.object({
  driver: z.string().min(1).max(4096),
  triple: z.string().min(1).max(256),
  version: z.string().min(1).max(256),
  glibc: z.string().regex(/^2\.\d{1,4}$/),
});

/** The id must be the hash of the description (common/toolchain-id.ts), recomputed here. */
function checkToolchainId(id: string, body: z.infer<typeof putToolchainBody>): void {
  const info = parse(toolchainInfo, body.info, 'toolchain description');
  if (toolchainIdOf({ ...info, files: body.files }) !== id)
    throw new MusterError(
      'VALIDATION_FAILED',
      'the toolchain id is not the hash of its description and files',
      { id },
    );
}

function requireClientResults(ctx: ApiContext): void {
  if (!acceptsClientResults(ctx.store.getSetting(CACHE_ACCEPT_CLIENT_RESULTS_SETTING)))
    throw new MusterError(
      'CACHE_CLIENT_RESULTS_REFUSED',
      `this coordinator stores only results it obtained from its agents (${CACHE_ACCEPT_CLIENT_RESULTS_SETTING} is false)`,
    );
}

/**
 * Runs `write` with the blob store's sizes of `hashes`, those blobs held from the sweep until
 * the row that names them is written (then it keeps them, and they count as used).
 */
async function withBlobs<T>(
  ctx: ApiContext,
  hashes: string[],
  write: (sizeOf: BlobSizeOf) => T,
): Promise<T> {
  const release = ctx.uploads.hold(hashes);
  try {
    const unique = [...new Set(hashes)];
    const sizes = new Map<string, number>();
    for (const hash of unique) {
      const size = await ctx.blobs.sizeOf(hash);
      if (size !== undefined) sizes.set(hash, size);
    }
    const result = write((hash) => sizes.get(hash));
    ctx.uploads.referenced(unique);
    return result;
  } finally {
    release();
  }
}
