/** Extensions: list the set shipped to agents; add a new one (or a new version) from uploaded blobs. */
import type { FastifyInstance } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { checkRelativePath } from '../../protocol/paths.js';
import { recordAudit } from './audit.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { addExtensionBody } from '../../api/requests.js';
import { BUILT_IN_EXTENSIONS } from '../../protocol/client/bundle.js';
import type { ExtensionView } from '../../api/views/extensions.js';
import type { ExtensionRow } from '../store/types.js';

const addedView = (e: ExtensionRow): ExtensionView => ({
  name: e.name,
  version: e.version,
  files: e.files.length,
  bytes: e.files.reduce((n, f) => n + f.size, 0),
  addedAt: e.addedAt,
  builtIn: false,
});

export function registerExtensionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const list = async (): Promise<ExtensionView[]> => {
    const bundle = await ctx.bundles.get();
    return [
      ...BUILT_IN_EXTENSIONS.map((name) => {
        const files = bundle.manifest.files.filter((f) => f.path.startsWith(`extensions/${name}/`));
        return {
          name,
          version: ctx.version,
          files: files.length,
          bytes: files.reduce((n, f) => n + f.size, 0),
          addedAt: '',
          builtIn: true,
        };
      }),
      ...ctx.store.listExtensions().map(addedView),
    ];
  };

  app.get('/api/v1/extensions', async (request): Promise<ExtensionView[]> => {
    requireUser(request);
    return list();
  });

  app.post('/api/v1/extensions', async (request, reply) => {
    requireAdmin(request, ctx);
    const body = parse(addExtensionBody, request.body, 'extension');
    if (BUILT_IN_EXTENSIONS.includes(body.name))
      throw new MusterError('CONFLICT', `${body.name} is built in and cannot be replaced`);
    for (const file of body.files) checkRelativePath(file.path, 'extension file');
    if (!body.files.some((f) => f.path === 'muster-extension.json')) {
      throw new MusterError('VALIDATION_FAILED', 'an extension needs its muster-extension.json');
    }
    const hashes = body.files.map((f) => f.sha256);
    // No sweep deletes a file between this check and the extension row that references it.
    const release = ctx.uploads.hold(hashes);
    let view: ExtensionView | undefined;
    try {
      const missing = await ctx.blobs.missing(hashes);
      if (missing.length > 0) {
        throw new MusterError(
          'BLOB_NOT_FOUND',
          `${missing.length} file(s) were not uploaded first`,
          { missing },
        );
      }
      // The answer is the row as committed: an admin removing it right after cannot turn this
      // add into a 404.
      view = ctx.store.transaction(() => {
        ctx.store.putExtension({ name: body.name, version: body.version, files: body.files });
        recordAudit(ctx, request, 'extension.add', body.name, {
          version: body.version,
          files: body.files.length,
        });
        const added = ctx.store.listExtensions().find((e) => e.name === body.name);
        return added && addedView(added);
      });
      ctx.uploads.referenced(hashes);
    } finally {
      release();
    }
    ctx.bundles.invalidate();
    await ctx.bundles.get();
    void ctx.agents.resyncAll();
    request.log.info({ extension: body.name, version: body.version }, 'extension added');
    if (!view)
      throw new Error(`extension ${body.name} is not among those stored right after its put`);
    return reply.code(201).send(view);
  });

  app.delete<{ Params: { name: string } }>('/api/v1/extensions/:name', async (request, reply) => {
    requireAdmin(request, ctx);
    ctx.store.transaction(() => {
      if (!ctx.store.removeExtension(request.params.name)) {
        throw new MusterError('NOT_FOUND', `no extension named ${request.params.name}`);
      }
      recordAudit(ctx, request, 'extension.remove', request.params.name);
    });
    ctx.bundles.invalidate();
    void ctx.agents.resyncAll();
    return reply.code(204).send();
  });
}
