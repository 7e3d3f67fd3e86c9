/**
 * Login (rate-limited), logout, whoami, and the hook that authenticates every other route.
 * Two kinds of credentials: a bearer token (the CLI) or the web UI's session cookie (HttpOnly,
 * SameSite=Strict, Secure over TLS) holding a token of the same kind. A request authenticated by
 * the cookie that changes something must also carry the session's CSRF token in x-csrf-token.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import {
  DummyPassword,
  hashPassword,
  hashToken,
  needsRehash,
  newToken,
  sameSecret,
  verifyPassword,
} from '../auth/passwords.js';
import type { BodyDeadlines } from './body-deadline.js';
import { requireUser, userOfToken, type ApiContext, type RouteAccess } from './context.js';
import { parse } from './http-errors.js';
import { addressBlock } from '../../common/addresses.js';
import { FailureLimiter } from './rate-limiter.js';
import { loginBody } from '../../api/requests.js';
import type { CurrentUserView, LoginView, SessionView } from '../../api/views/users.js';

/** The web UI's session cookie. */
export const SESSION_COOKIE = 'muster_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** A login body is a name and a password: 16 KiB is plenty. */
const LOGIN_BODY_LIMIT = 16 * 1024;

/** The CSRF token of a session: derived from its token, which the page's script cannot read. */
export function csrfOf(token: string): string {
  return createHash('sha256').update(`csrf:${token}`).digest('base64url');
}

/** Logins checked at once per address (each is a scrypt run). */
const MAX_LOGINS_IN_FLIGHT_PER_ADDRESS = 8;

export function registerAuth(
  app: FastifyInstance,
  ctx: ApiContext,
  deadlines: BodyDeadlines,
): void {
  // Failed logins, each limit in a sliding window: per user and address 10 a minute; per
  // address 50, so one user's typos behind a shared NAT do not lock everyone else out while
  // guessing across many names is still capped; per address block (/24, /64) 100, for one
  // machine with many addresses; per user name 20 in 10 minutes from anywhere, for guessing one
  // password from many machines.
  const limits: { limiter: FailureLimiter; key: (ip: string, user: string) => string }[] = [
    { limiter: new FailureLimiter(10, 60_000), key: (ip, user) => `${ip}|${user}` },
    { limiter: new FailureLimiter(50, 60_000), key: (ip) => ip },
    { limiter: new FailureLimiter(100, 60_000), key: (ip) => addressBlock(ip) },
    { limiter: new FailureLimiter(20, 600_000), key: (_ip, user) => user },
  ];
  const cost = { log2N: ctx.options.passwordCost };
  const dummy = new DummyPassword(cost);
  app.decorateRequest('user', undefined);
  app.decorateRequest('credentials', undefined);

  app.addHook('onRequest', async (request) => {
    if (accessOf(request) !== 'user') return;
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
    const user = userOfToken(ctx, tokenHash);
    request.user = user;
    request.credentials = { tokenHash, cookie };
    // Admins upload blobs and submit plans: give a large body the time it needs to arrive.
    if (user.role === 'admin') deadlines.extend(request.raw, announcedBytes(request));
  });

  /** Checks the credentials (rate-limited) and creates a token. */
  const loginsInFlight = new Map<string, number>();
  const logIn = async (request: FastifyRequest, reply: FastifyReply): Promise<LoginView> => {
    // Failures are counted only once checked, so one address could otherwise queue dozens of
    // scrypt runs at once and hold everyone else's logins up: a few at a time per address.
    const running = loginsInFlight.get(request.ip) ?? 0;
    if (running >= MAX_LOGINS_IN_FLIGHT_PER_ADDRESS) {
      void reply.header('retry-after', 1);
      throw new MusterError('RATE_LIMITED', 'too many logins at once from this address; try again');
    }
    loginsInFlight.set(request.ip, running + 1);
    try {
      return await checkLogin(request, reply);
    } finally {
      const left = (loginsInFlight.get(request.ip) ?? 1) - 1;
      if (left > 0) loginsInFlight.set(request.ip, left);
      else loginsInFlight.delete(request.ip);
    }
  };

  const checkLogin = async (request: FastifyRequest, reply: FastifyReply): Promise<LoginView> => {
    const body = parse(loginBody, request.body, 'login');
    const keys = limits.map(({ limiter, key }) => ({ limiter, key: key(request.ip, body.user) }));
    const wait = Math.max(...keys.map(({ limiter, key }) => limiter.retryAfter(key)));
    if (wait > 0) {
      void reply.header('retry-after', Math.ceil(wait / 1000));
      throw new MusterError(
        'RATE_LIMITED',
        `too many failed logins; try again in ${Math.ceil(wait / 1000)} s`,
      );
    }
    const user = ctx.store.getUser(body.user);
    // An unknown name costs one scrypt too, so that timing does not tell which names exist.
    const ok = user
      ? await verifyPassword(body.password, user.passwordHash)
      : await dummy.verify(body.password);
    if (!user || !ok) {
      for (const { limiter, key } of keys) limiter.fail(key);
      ctx.metrics.loginFailures.inc();
      request.log.warn({ user: body.user, ip: request.ip }, 'login failed');
      throw new MusterError('UNAUTHORIZED', 'wrong user name or password');
    }
    keys[0]?.limiter.succeed(keys[0].key);
    // A hash made with an older cost is replaced now that the password is at hand. Users are
    // written on the primary only (a backup's copy is replicated from it).
    // Hashing takes a while: a password changed meanwhile (an admin's reset) must win, so the new
    // hash is stored only over the one verified, and no token is made once it has changed.
    let verified = user.passwordHash;
    if (ctx.ha.role() === 'primary' && needsRehash(user.passwordHash, cost)) {
      const upgraded = await hashPassword(body.password, cost);
      if (ctx.store.getUser(user.name)?.passwordHash === verified) {
        ctx.store.setPassword(user.name, upgraded);
        verified = upgraded;
        request.log.info({ user: user.name, log2N: cost.log2N }, 'password hash upgraded');
      }
    }
    if (ctx.store.getUser(user.name)?.passwordHash !== verified)
      throw new MusterError('UNAUTHORIZED', 'the password was changed meanwhile: log in again');
    const { token, hash } = newToken();
    const expiresAt = new Date(Date.now() + ctx.options.tokenTtlMs).toISOString();
    ctx.store.createToken(user.id, hash, expiresAt);
    return { token, expiresAt, user: { name: user.name, role: user.role } };
  };

  const anonymous = { config: { access: 'public' as const }, bodyLimit: LOGIN_BODY_LIMIT };

  app.post('/api/v1/login', anonymous, async (request, reply) => {
    const view = await logIn(request, reply);
    return reply.code(200).send(view);
  });

  // The web UI: the token goes into an HttpOnly cookie, never to the page's script.
  app.post('/api/v1/session/login', anonymous, async (request, reply) => {
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

  app.get('/api/v1/session', async (request): Promise<SessionView> => {
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

  app.get('/api/v1/whoami', async (request): Promise<CurrentUserView> => {
    const user = requireUser(request);
    return { name: user.name, role: user.role };
  });
}

/**
 * Who may call what the request matched. A matched route says so itself (default: a user); a
 * request that matched nothing gets a 404, for which the API asks for credentials first (so an
 * anonymous caller learns nothing of its routes) and the web UI's pages do not.
 */
function accessOf(request: FastifyRequest): RouteAccess {
  if (request.routeOptions.url !== undefined) return request.routeOptions.config.access ?? 'user';
  return isApiPath(request.url) ? 'user' : 'public';
}

/**
 * Whether a request target (origin form `/api/...`, or absolute form `http://host/api/...`) is
 * under /api/, however it is spelled (percent-encoded, doubled slashes, upper case).
 */
export function isApiPath(target: string): boolean {
  let path = target.split('?')[0] ?? '';
  try {
    if (!path.startsWith('/')) path = new URL(path).pathname;
    path = decodeURIComponent(path);
  } catch {
    return true;
  }
  return path.toLowerCase().replace(/\/+/g, '/').startsWith('/api/');
}

/** The body a request may still send: its Content-Length, else its route's body limit. */
function announcedBytes(request: FastifyRequest): number {
  const length = Number(request.headers['content-length']);
  if (Number.isFinite(length) && length >= 0) return length;
  return request.headers['transfer-encoding'] === undefined
    ? 0
    : (request.routeOptions.bodyLimit ?? 16 * 1024 * 1024);
}
