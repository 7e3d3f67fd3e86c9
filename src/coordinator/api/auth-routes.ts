/** Login (rate-limited), logout, whoami, and the hook that authenticates every other route. */
import type { FastifyInstance } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { hashToken, newToken, verifyPassword } from '../auth/passwords.js';
import { requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { FailureLimiter } from './rate-limiter.js';
import { loginBody, type LoginView } from './schemas.js';

/** Routes anyone may call. */
const PUBLIC = new Set([
  '/api/v1/login',
  '/api/v1/openapi.json',
  '/healthz',
  '/readyz',
  '/metrics',
]);

export function registerAuth(app: FastifyInstance, ctx: ApiContext): void {
  // Per user and address: 10 failures a minute. Per address: 50, so one user's typos behind a
  // shared NAT do not lock everyone else out, while guessing across many names is still capped.
  const limiter = new FailureLimiter(10, 60_000);
  const addressLimiter = new FailureLimiter(50, 60_000);
  app.decorateRequest('user', undefined);

  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? '';
    // Coordinators authenticate each other with a backup's secret (see ha-routes.ts).
    if (PUBLIC.has(path) || !path.startsWith('/api/') || path.startsWith('/api/v1/ha/')) return;
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    if (!token)
      throw new MusterError(
        'UNAUTHORIZED',
        'no credentials: log in with "muster login URL" or send a bearer token',
      );
    const found = ctx.store.useToken(hashToken(token), new Date().toISOString());
    if (!found)
      throw new MusterError('UNAUTHORIZED', 'the token is invalid or expired: log in again');
    request.user = found.user;
  });

  app.post('/api/v1/login', async (request, reply) => {
    const body = parse(loginBody, request.body, 'login');
    const key = `${request.ip}|${body.user}`;
    const wait = Math.max(limiter.retryAfter(key), addressLimiter.retryAfter(request.ip));
    if (wait > 0) {
      void reply.header('retry-after', Math.ceil(wait / 1000));
      throw new MusterError(
        'RATE_LIMITED',
        `too many failed logins; try again in ${Math.ceil(wait / 1000)} s`,
      );
    }
    const user = ctx.store.getUser(body.user);
    const ok = user !== undefined && (await verifyPassword(body.password, user.passwordHash));
    if (!user || !ok) {
      limiter.fail(key);
      addressLimiter.fail(request.ip);
      ctx.metrics.loginFailures.inc();
      request.log.warn({ user: body.user, ip: request.ip }, 'login failed');
      throw new MusterError('UNAUTHORIZED', 'wrong user name or password');
    }
    limiter.succeed(key);
    const { token, hash } = newToken();
    const expiresAt = new Date(Date.now() + ctx.options.tokenTtlMs).toISOString();
    ctx.store.createToken(user.id, hash, expiresAt);
    const view: LoginView = { token, expiresAt, user: { name: user.name, role: user.role } };
    return reply.code(200).send(view);
  });

  app.post('/api/v1/logout', async (request, reply) => {
    requireUser(request);
    const header = request.headers.authorization ?? '';
    ctx.store.deleteToken(hashToken(header.slice(7).trim()));
    return reply.code(204).send();
  });

  app.get('/api/v1/whoami', async (request) => {
    const user = requireUser(request);
    return { name: user.name, role: user.role };
  });
}
