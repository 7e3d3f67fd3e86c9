/**
 * Compiler toolchains (issue 13, design §3 and §9): registered by whoever may run builds (their
 * files uploaded as blobs first), shipped to agents in the bundle while in use (bundles.ts), read
 * by any user, listed and removed by an admin.
 *
 * Any builder may register one, whatever Cache.AcceptClientResults says: the id is recomputed
 * from the files, and a toolchain only runs for jobs that name its id (clients whose compiler
 * hashes to it), so nobody puts programs under someone else's compiler. Rows are capped per user
 * and in all (store/cache.ts TOOLCHAIN_ROWS: TOO_MANY_TOOLCHAINS).
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { z } from 'zod';
import { putToolchainBody } from '../../api/requests.js';
import type { ToolchainView } from '../../api/views/compile.js';
import { GLIBC_VERSION, toolchainIdOf } from '../../common/toolchain-id.js';
import { MusterError } from '../../protocol/errors.js';
import { sha256Hex } from '../../protocol/manifest.js';
import { shippedToolchain } from '../bundles.js';
import { TOOLCHAIN_ROWS, TOOLCHAIN_USE_STAMP_MS } from '../store/cache.js';
import type { ToolchainSummary } from '../store/types.js';
import { recordAudit } from './audit.js';
import { requireAdmin, requireBuilder, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { toolchainView } from './views.js';
import { withBlobs } from './with-blobs.js';

export function registerToolchainRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  const viewOf = (toolchain: ToolchainSummary): ToolchainView =>
    toolchainView(toolchain, ctx.agents.snapshots(), ctx.bundles.shippedToolchains());
  const view = (id: string): ToolchainView | undefined => {
    const toolchain = store.cache.toolchainSummaries().find((t) => t.id === id);
    return toolchain && viewOf(toolchain);
  };

  app.put<{ Params: { id: string } }>('/api/v1/toolchains/:id', async (request, reply) => {
    const user = requireBuilder(request, ctx);
    const id = parse(sha256Hex, request.params.id, 'toolchain id');
    const body = parse(putToolchainBody, request.body, 'toolchain');
    checkToolchainId(id, body);
    // Refused now rather than stored and never shipped (it would hold a place among those shipped).
    if (shippedToolchain({ id, files: body.files, info: body.info }) === undefined)
      throw new MusterError(
        'VALIDATION_FAILED',
        'agents could not lay this toolchain out: a path too long, or a file that is also a directory',
        { id },
      );
    const { created, summary } = await withBlobs(
      ctx,
      body.files.map((f) => f.sha256),
      (sizeOf) => {
        const put = store.cache.putToolchain(
          { id, files: body.files, info: body.info, createdBy: user.name },
          sizeOf,
          undefined,
          TOOLCHAIN_ROWS,
        );
        // The answer is the row as committed: an admin removing it while the bundle is made
        // cannot turn this registration into a 404.
        return { ...put, summary: store.cache.toolchainSummaries().find((t) => t.id === id) };
      },
    );
    if (created) {
      // Agents get it with the next bundle: computed now, pushed to those connected.
      ctx.bundles.invalidate();
      await ctx.bundles.get();
      void ctx.agents.resyncAll();
      request.log.info({ toolchain: id, user: user.name }, 'toolchain registered');
    } else {
      // Registered again: a use, which may bring it back among those shipped.
      await resyncIfChanged(ctx, request.log);
    }
    if (!summary) throw new Error(`toolchain ${id} is not among those stored right after its put`);
    return reply.code(created ? 201 : 200).send(viewOf(summary));
  });

  app.get<{ Params: { id: string } }>(
    '/api/v1/toolchains/:id',
    async (request): Promise<ToolchainView> => {
      requireUser(request);
      const id = parse(sha256Hex, request.params.id, 'toolchain id');
      const found = view(id);
      if (!found) throw new MusterError('NOT_FOUND', `no toolchain ${id}`);
      return found;
    },
  );

  app.get('/api/v1/toolchains', async (request): Promise<ToolchainView[]> => {
    // A read: answered by a backup too (its copy), unlike the removal.
    const user = requireUser(request);
    if (user.role !== 'admin')
      throw new MusterError(
        'FORBIDDEN',
        `${user.name} is not an admin; listing toolchains needs one`,
      );
    const agents = ctx.agents.snapshots();
    const shipped = ctx.bundles.shippedToolchains();
    return store.cache.toolchainSummaries().map((t) => toolchainView(t, agents, shipped));
  });

  app.delete<{ Params: { id: string } }>('/api/v1/toolchains/:id', async (request, reply) => {
    const admin = requireAdmin(request, ctx);
    const id = parse(sha256Hex, request.params.id, 'toolchain id');
    store.transaction(() => {
      if (!store.cache.removeToolchain(id))
        throw new MusterError('NOT_FOUND', `no toolchain ${id}`);
      recordAudit(ctx, request, 'toolchain.remove', id);
    });
    request.log.info({ toolchain: id, by: admin.name }, 'toolchain removed');
    // Agents get a bundle without it (a task already running keeps its own copy).
    ctx.bundles.invalidate();
    await ctx.bundles.get();
    void ctx.agents.resyncAll();
    return reply.code(204).send();
  });
}

/**
 * A compile job named a toolchain: its last use is stamped (at most every 10 minutes while it is
 * shipped; one that is not, every 10 s: its use must count at once). When that brings it among
 * those shipped (it was not, for want of room), agents get a new bundle; this job itself is
 * answered at once (toolchain-not-on-agents) and the next ones go.
 */
export function noteToolchainUse(ctx: ApiContext, id: string, log: FastifyBaseLogger): void {
  const shipped = ctx.bundles.shippedToolchains().has(id);
  const gapMs = shipped ? TOOLCHAIN_USE_STAMP_MS : UNSHIPPED_USE_STAMP_MS;
  if (ctx.store.cache.touchToolchain(id, undefined, gapMs)) void resyncIfChanged(ctx, log);
}

/** How often the last use of a toolchain that is not shipped is rewritten (a replicated write). */
const UNSHIPPED_USE_STAMP_MS = 10_000;

/** Computes a new bundle and pushes it to the connected agents when what it carries changed. */
async function resyncIfChanged(ctx: ApiContext, log: FastifyBaseLogger): Promise<void> {
  if (!ctx.bundles.stale()) return;
  try {
    await ctx.bundles.get();
    void ctx.agents.resyncAll();
  } catch (err) {
    log.warn({ err }, 'could not compute the bundle after a toolchain was used');
  }
}

const toolchainInfo = z.object({
  driver: z.string().min(1).max(4096),
  triple: z.string().min(1).max(256),
  version: z.string().min(1).max(256),
  glibc: z.string().regex(GLIBC_VERSION),
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
