/** Health, readiness, metrics, status, the OpenAPI document and its page (/api/docs). */
import type { FastifyInstance } from 'fastify';
import { requireUser, type ApiContext } from './context.js';
import { apiReferencePage } from './api-reference-page.js';
import { openApiDocument } from './openapi.js';
import type { BannerView, StatusView } from '../../api/views/status.js';

/** Health and metrics are for load balancers and Prometheus, which do not log in. */
const open = { config: { access: 'public' as const } };

export function registerSystemRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/healthz', open, async () => ({ ok: true }));

  app.get('/readyz', open, async (_request, reply) => {
    const ready = ctx.isReady();
    return reply.code(ready ? 200 : 503).send({ ready, role: ctx.ha.role() });
  });

  app.get('/metrics', open, async (_request, reply) => {
    return reply
      .header('content-type', ctx.metrics.registry.contentType)
      .send(await ctx.metrics.registry.metrics());
  });

  // The document and its readable page are the same whoever asks: made once.
  const document = openApiDocument(ctx.version);
  const page = apiReferencePage(document);
  app.get('/api/v1/openapi.json', open, async () => document);
  app.get('/api/docs', open, async (_request, reply) =>
    reply.header('content-type', 'text/html; charset=utf-8').send(page),
  );

  // The backup banner on the login page, before anyone has logged in (schemas.ts, BannerView).
  app.get('/api/v1/banner', open, async (): Promise<BannerView> => {
    const role = ctx.ha.role();
    if (!ctx.ha.backup) return { role };
    const primary = ctx.ha.backup.statusView();
    return { role, primary: { url: primary.url, activeSince: primary.activeSince } };
  });

  app.get('/api/v1/status', async (request): Promise<StatusView> => {
    const user = requireUser(request);
    const agents = ctx.agents.snapshots();

    const view: StatusView = {
      role: ctx.ha.role(),
      version: ctx.version,
      // What another coordinator would need to claim this one's instance: admins only.
      ...(user.role === 'admin' ? { instanceId: ctx.instanceId() } : {}),
      term: ctx.ha.term(),
      agents: {
        total: agents.length,
        connected: agents.filter((a) => a.status === 'connected' || a.status === 'busy').length,
      },
      builds: ctx.store.countActiveBuilds(),
    };
    if (ctx.ha.primary) {
      const selected = ctx.ha.primary.list().find((b) => b.selected);
      view.backup = selected
        ? {
            name: selected.name,
            url: selected.url,
            health: selected.health,
            healthReason: selected.healthReason,
            lastContact: selected.lastContact,
            lagSeconds: selected.lagSeconds,
          }
        : null;
      if (!selected) view.lastDeselected = ctx.ha.primary.lastDeselection();
    }
    if (ctx.ha.backup) view.primary = ctx.ha.backup.statusView();
    return view;
  });
}
