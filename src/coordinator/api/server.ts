/** Builds the coordinator's Fastify app (apart from listen(), so tests can inject()). */
import { existsSync, readFileSync } from 'node:fs';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { registerAgentRoutes } from './agent-routes.js';
import { registerJoinTokenRoutes } from './join-token-routes.js';
import { registerAuditRoutes } from './audit-routes.js';
import { isApiPath, registerAuth } from './auth-routes.js';
import { registerBlobRoutes } from './blob-routes.js';
import { registerBuildRoutes } from './build-routes.js';
import { registerCacheRoutes } from './cache-routes.js';
import { registerCertificateRoutes } from './certificate-routes.js';
import { registerCompileRoutes } from './compile-routes.js';
import { BodyDeadlines } from './body-deadline.js';
import type { ApiContext } from './context.js';
import { registerEventRoutes } from './event-routes.js';
import { registerExtensionRoutes } from './extension-routes.js';
import { registerHaRoutes } from './ha-routes.js';
import { errorHandler, sendError } from './http-errors.js';
import { registerPlanSchemaRoutes } from './plan-schema-routes.js';
import { registerSecretRoutes } from './secret-routes.js';
import { registerSettingsRoutes } from './settings-routes.js';
import { registerSystemRoutes } from './system-routes.js';
import { registerToolchainRoutes } from './toolchain-routes.js';
import { registerUserRoutes } from './user-routes.js';
import { packagePath } from '../../protocol/client/package-root.js';
import { MusterError } from '../../protocol/errors.js';

export interface RegisteredRoute {
  method: string;
  url: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered (HEAD ones included), in order. */
    registeredRoutes: readonly RegisteredRoute[];
  }
}

/** Sent with every response, the web UI's pages and the API's answers alike. */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  [
    'content-security-policy',
    // The built UI is one module script and one stylesheet from /assets, no inline code; it
    // talks to its own origin only (fetch, EventSource).
    [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "font-src 'self'",
      "connect-src 'self'",
      "object-src 'none'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'self'",
    ].join('; '),
  ],
  ['x-frame-options', 'DENY'],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'no-referrer'],
];

export function buildServer(
  ctx: ApiContext,
  log: Logger,
  onSettingChange: (key: string) => void,
): FastifyInstance {
  const { tls, requestTimeoutMs, idleTimeoutMs, keepAliveTimeoutMs } = ctx.options;
  // Node cuts a connection whose request head has not arrived in headersTimeout, checked every
  // connectionsCheckingInterval; the body is timed per request (BodyDeadlines), not by Node's
  // requestTimeout, which would cut large uploads too.
  const nodeServer = {
    headersTimeout: requestTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(requestTimeoutMs / 4))),
  };
  const app = Fastify({
    loggerInstance: log,
    // Request lines would drown the log at thousands of tasks a second; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024 * 1024,
    trustProxy: false,
    // A socket silent in both directions this long is closed (the event stream sends a comment
    // every 15 s, the backups' long poll answers within 30 s).
    connectionTimeout: idleTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    ...(tls
      ? {
          https: {
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
            handshakeTimeout: requestTimeoutMs,
            ...nodeServer,
          },
        }
      : { http: nodeServer }),
  }) as unknown as FastifyInstance;
  // What was registered, method and URL, for the test that each route is in the OpenAPI document.
  const registered: RegisteredRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) registered.push({ method, url: route.url });
  });
  app.decorate('registeredRoutes', registered);
  app.setErrorHandler(errorHandler);
  const deadlines = new BodyDeadlines(requestTimeoutMs);
  // First of all hooks, so that refusals (401, 404, 413) carry them too; on the raw response, so
  // that hijacked replies (the event stream) do as well.
  app.addHook('onRequest', async (request, reply) => {
    for (const [name, value] of SECURITY_HEADERS) reply.raw.setHeader(name, value);
    deadlines.start(request.raw);
  });
  void app.register(fastifyCookie);
  const web = webRoot();
  if (web) {
    // The web UI (built by `npm run build` into dist/web): files as they are, and index.html for
    // the UI's own paths (/login, /agents, /builds/12), which the page routes itself. Every
    // route the static plugin adds is public (the auth hook denies routes not marked so).
    void app.register(async (scope) => {
      scope.addHook('onRoute', (route) => {
        route.config = { ...route.config, access: 'public' };
      });
      await scope.register(fastifyStatic, {
        root: web,
        prefix: '/',
        wildcard: false,
        index: false,
      });
    });
  }
  // Read once, like the file list the static plugin makes at start (wildcard: false).
  const indexHtml = web ? readFileSync(`${web}index.html`) : undefined;
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (indexHtml && request.method === 'GET' && !isApiPath(path) && !path.includes('.')) {
      return reply
        .header('cache-control', 'no-cache')
        .header('content-type', 'text/html; charset=utf-8')
        .send(indexHtml);
    }
    return sendError(reply, new MusterError('NOT_FOUND', `no route ${request.method} ${path}`));
  });
  registerAuth(app, ctx, deadlines);
  registerSystemRoutes(app, ctx);
  registerPlanSchemaRoutes(app);
  registerJoinTokenRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerBlobRoutes(app, ctx);
  registerBuildRoutes(app, ctx);
  registerCompileRoutes(app, ctx);
  registerCacheRoutes(app, ctx);
  registerToolchainRoutes(app, ctx);
  registerExtensionRoutes(app, ctx);
  registerSettingsRoutes(app, ctx, onSettingChange);
  registerUserRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerHaRoutes(app, ctx);
  registerCertificateRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerSecretRoutes(app, ctx);
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
  const dir = packagePath('dist', 'web/');
  return existsSync(`${dir}index.html`) ? dir : undefined;
}
