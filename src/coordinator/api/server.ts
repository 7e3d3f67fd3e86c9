/** Builds the coordinator's Fastify app (apart from listen(), so tests can inject()). */
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { registerAgentRoutes } from './agent-routes.js';
import { registerAuth } from './auth-routes.js';
import { registerBlobRoutes } from './blob-routes.js';
import { registerBuildRoutes } from './build-routes.js';
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
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new MusterError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`),
    ),
  );
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
  // Clients learn the selected backup from the primary, to switch to it when the primary is away.
  app.addHook('onSend', async (request, reply) => {
    if (!request.user) return;
    const backup = ctx.ha.primary?.selected();
    if (backup && request.url.startsWith('/api/v1/') && !request.url.startsWith('/api/v1/ha/'))
      void reply.header('x-muster-backup', backup.url);
  });
  return app;
}
