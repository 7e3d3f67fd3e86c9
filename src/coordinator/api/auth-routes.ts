/**
 * Login (rate-limited), logout, whoami, and the hook that authenticates every other route.
 * Two kinds of credentials: a bearer token (the CLI) or the web UI's session cookie (HttpOnly,
 * SameSite=Strict, Secure over TLS) holding a token of the same kind. A request authenticated by
 * the cookie that changes something must also carry the session's CSRF token in x-csrf-token.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { hashToken, newToken, sameSecret, verifyPassword } from '../auth/passwords.js';
import { requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { FailureLimiter } from './rate-limiter.js';
import { loginBody, type LoginView, type SessionView } from './schemas.js';

/** The web UI's session cookie. */
export const SESSION_COOKIE = 'muster_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The CSRF token of a session: derived from its token, which the page's script cannot read. */
export function csrfOf(token: string): string {
  return createHash('sha256').update(`csrf:${token}`).digest('base64url');
}

/** Routes anyone may call. */
const PUBLIC = new Set([
  '/api/v1/login',
  '/api/v1/session/login',
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
  app.decorateRequest('credentials', undefined);

  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? '';
    // Coordinators authenticate each other with a backup's secret (see ha-routes.ts).
    if (PUBLIC.has(path) || !path.startsWith('/api/') || path.startsWith('/api/v1/ha/')) return;
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const cookie = bearer === undefined ? request.cookies[SESSION_COOKIE] : undefined;
    const token = bearer ?? cookie;
    if (!token)
      throw new MusterError(
        'UNAUTHORIZED',
        'no credentials: log in with "muster login URL" or send a bearer token',
      );
    if (cookie !== undefined && !SAFE_METHODS.has(request.method)) {
      const sent = request.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !sameSecret(sent, csrfOf(cookie)))
        throw new MusterError('FORBIDDEN', 'missing or wrong CSRF token: reload the page');
    }
    const tokenHash = hashToken(token);
    const found = ctx.store.useToken(tokenHash, new Date().toISOString());
    if (!found)
      throw new MusterError('UNAUTHORIZED', 'the token is invalid or expired: log in again');
    request.user = found.user;
    request.credentials = { tokenHash, cookie };
  });

  /** Checks the credentials (rate-limited) and creates a token. */
  const logIn = async (request: FastifyRequest, reply: FastifyReply): Promise<LoginView> => {
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
    return { token, expiresAt, user: { name: user.name, role: user.role } };
  };

  app.post('/api/v1/login', async (request, reply) => {
    const view = await logIn(request, reply);
    return reply.code(200).send(view);
  });

  // The web UI: the token goes into an HttpOnly cookie, never to the page's script.
  app.post('/api/v1/session/login', async (request, reply) => {
    const view = await logIn(request, reply);
    void reply.setCookie(SESSION_COOKIE, view.token, {
      httpOnly: true,
      sameSite: 'strict',
      secure: ctx.options.tls !== false,
      path: '/',
      expires: new Date(view.expiresAt),
    });
    const session: SessionView = {
      user: view.user,
      csrf: csrfOf(view.token),
      expiresAt: view.expiresAt,
    };
    return reply.code(200).send(session);
  });

  app.get('/api/v1/session', async (request) => {
    const user = requireUser(request);
    const cookie = request.credentials?.cookie;
    if (cookie === undefined)
      throw new MusterError('UNAUTHORIZED', 'no session: log in on the login page');
    const session: SessionView = {
      user: { name: user.name, role: user.role },
      csrf: csrfOf(cookie),
      expiresAt: null,
    };
    return session;
  });

  app.post('/api/v1/session/logout', async (request, reply) => {
    requireUser(request);
    if (request.credentials?.cookie !== undefined)
      ctx.store.deleteToken(request.credentials.tokenHash);
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.code(204).send();
  });

  app.post('/api/v1/logout', async (request, reply) => {
    requireUser(request);
    if (request.credentials) ctx.store.deleteToken(request.credentials.tokenHash);
    return reply.code(204).send();
  });

  app.get('/api/v1/whoami', async (request) => {
    const user = requireUser(request);
    return { name: user.name, role: user.role };
  });
}
