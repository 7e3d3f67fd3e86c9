/** Builds the coordinator's Fastify app (apart from listen(), so tests can inject()). */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { registerAgentRoutes } from './agent-routes.js';
import { registerAuth } from './auth-routes.js';
import { registerBlobRoutes } from './blob-routes.js';
import { registerBuildRoutes } from './build-routes.js';
import { registerCertificateRoutes } from './certificate-routes.js';
import type { ApiContext } from './context.js';
import { registerEventRoutes } from './event-routes.js';
import { registerExtensionRoutes } from './extension-routes.js';
import { registerHaRoutes } from './ha-routes.js';
import { errorHandler, sendError } from './http-errors.js';
import { registerSettingsRoutes } from './settings-routes.js';
import { registerSystemRoutes } from './system-routes.js';
import { registerUserRoutes } from './user-routes.js';
import { MusterError } from '../../protocol/errors.js';

export function buildServer(
  ctx: ApiContext,
  log: Logger,
  onSettingChange: (key: string) => void,
): FastifyInstance {
  const tls = ctx.options.tls;
  const app = Fastify({
    loggerInstance: log,
    // Request lines would drown the log at thousands of tasks a second; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024 * 1024,
    trustProxy: false,
    ...(tls ? { https: { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } } : {}),
  }) as unknown as FastifyInstance;
  app.setErrorHandler(errorHandler);
  void app.register(fastifyCookie);
  const web = webRoot();
  if (web) {
    // The web UI (built by `npm run build` into dist/web): files as they are, and index.html for
    // the UI's own paths (/login, /agents, /builds/12), which the page routes itself.
    void app.register(fastifyStatic, { root: web, prefix: '/', wildcard: false, index: false });
  }
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (web && request.method === 'GET' && !path.startsWith('/api/') && !path.includes('.')) {
      return reply.header('cache-control', 'no-cache').sendFile('index.html');
    }
    return sendError(reply, new MusterError('NOT_FOUND', `no route ${request.method} ${path}`));
  });
  registerAuth(app, ctx);
  registerSystemRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerBlobRoutes(app, ctx);
  registerBuildRoutes(app, ctx);
  registerExtensionRoutes(app, ctx);
  registerSettingsRoutes(app, ctx, onSettingChange);
  registerUserRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerHaRoutes(app, ctx);
  registerCertificateRoutes(app, ctx);
  // Clients learn the selected backup from the primary, to switch to it when the primary is away.
  app.addHook('onSend', async (request, reply) => {
    if (!request.user) return;
    const backup = ctx.ha.primary?.selected();
    if (backup && request.url.startsWith('/api/v1/') && !request.url.startsWith('/api/v1/ha/'))
      void reply.header('x-muster-backup', backup.url);
  });
  return app;
}

/** Where the built web UI is (dist/web), or undefined when it was not built. */
function webRoot(): string | undefined {
  const dir = fileURLToPath(new URL('../../../web/', import.meta.url));
  return existsSync(`${dir}index.html`) ? dir : undefined;
}
