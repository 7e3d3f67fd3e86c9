/**
 * What the API's routes need from the coordinator: ports (ports.ts), narrow, so route tests pass
 * fakes. Built by the coordinator from its services and its role (coordinator.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import type { User } from '../store/types.js';
import type {
  AgentDirectory,
  ApiMetrics,
  ApiOptions,
  ApiStore,
  BlobAccess,
  BuildService,
  BundleSource,
  CompileSessionService,
  EventSource,
  HaStatus,
  Scheduling,
  SecretService,
  ServedCertificate,
  UploadQuota,
} from './ports.js';

export interface ApiContext {
  store: ApiStore;
  /** The agents as the pool sees them. */
  agents: AgentDirectory;
  /** Submitting, cancelling and reading builds. */
  builds: BuildService;
  /** Compile sessions: open builds of `muster build`'s jobs. */
  compile: CompileSessionService;
  /** Secrets: set, list and delete (values never leave). */
  secrets: SecretService;
  /** Scheduling again once an agent changed. */
  scheduler: Scheduling;
  blobs: BlobAccess;
  uploads: UploadQuota;
  events: EventSource;
  bundles: BundleSource;
  metrics: ApiMetrics;
  options: ApiOptions;
  /** Hashes a new password (scrypt at the coordinator's --password-cost). */
  hashPassword(password: string): Promise<string>;
  version: string;
  /** The role, the term, and the primary's or the backup's side of high availability. */
  ha: HaStatus;
  instanceId(): string;
  isReady(): boolean;
  /** The certificate this coordinator serves; undefined over plain HTTP. */
  certificates: ServedCertificate | undefined;
}

/** How a request authenticated (set by the auth hook): its token's hash, and the session cookie's
 * token when the cookie was the credential (the CSRF token derives from it). */
export interface RequestCredentials {
  tokenHash: string;
  cookie: string | undefined;
}

/**
 * Who may call a route (its `config.access`), decided from the route the request matched, never
 * from its URL text: `user` (the default: a token or the session cookie), `public` (anyone:
 * login, health, the web UI's files) or `peer` (another coordinator, which the route itself
 * authenticates with the secret of a registered backup).
 */
export type RouteAccess = 'user' | 'public' | 'peer';

declare module 'fastify' {
  interface FastifyRequest {
    user: User | undefined;
    credentials: RequestCredentials | undefined;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

/** Anonymous routes take small bodies only (a login, a registration). */
export const ANONYMOUS_BODY_LIMIT = 64 * 1024;

export function requireUser(request: FastifyRequest): User {
  if (!request.user) throw new MusterError('UNAUTHORIZED');
  return request.user;
}

/**
 * Running and cancelling builds: admins only (viewers look). Unlike administration this is
 * allowed on an active backup, which keeps builds going while the primary is away.
 */
export function requireBuilder(request: FastifyRequest, ctx: ApiContext): User {
  const user = requireUser(request);
  if (ctx.ha.role() === 'backup-standby') {
    const primary = ctx.ha.backup?.statusView().url;
    throw new MusterError(
      'STANDBY',
      `this is a backup coordinator standing by: run builds on the primary${primary ? ` (${primary})` : ''}; the backup takes them once the primary is unreachable`,
    );
  }
  if (user.role !== 'admin')
    throw new MusterError('FORBIDDEN', `${user.name} is a viewer; running builds needs an admin`);
  return user;
}

/** Refuses with READ_ONLY on a backup: what the primary replicates is changed on the primary. */
export function requirePrimary(ctx: ApiContext): void {
  if (ctx.ha.role() === 'primary') return;
  const primary = ctx.ha.backup?.statusView().url;
  throw new MusterError(
    'READ_ONLY',
    `this coordinator is a backup: settings, agents, users, passwords, extensions and backups are changed on the primary${primary ? ` (${primary})` : ''}`,
  );
}

/** The user a token (by its hash) logs in now, or UNAUTHORIZED (unknown, expired, revoked). */
export function userOfToken(ctx: ApiContext, tokenHash: string): User {
  const found = ctx.store.useToken(tokenHash, new Date().toISOString());
  if (!found)
    throw new MusterError('UNAUTHORIZED', 'the token is invalid or expired: log in again');
  return found.user;
}

function adminOnly(user: User): User {
  if (user.role !== 'admin')
    throw new MusterError('FORBIDDEN', `${user.name} is a viewer; this needs an admin`);
  return user;
}

/** Admin only; on a backup, changes are refused outright (they belong on the primary). */
export function requireAdmin(request: FastifyRequest, ctx: ApiContext): User {
  const user = requireUser(request);
  requirePrimary(ctx);
  return adminOnly(user);
}

/**
 * requireAdmin again, for a change committed after an await (a password hash): inside its
 * transaction, the caller's token must still be valid, its user still an admin and this
 * coordinator still the primary — an admin demoted, deleted or logged out meanwhile changes
 * nothing.
 */
export function recheckAdmin(request: FastifyRequest, ctx: ApiContext): User {
  const caller = requireUser(request);
  requirePrimary(ctx);
  const user = userOfToken(ctx, request.credentials?.tokenHash ?? '');
  // A token stays with its user (deleted with it): another id cannot come back.
  if (user.id !== caller.id) throw new Error('a token changed users');
  return adminOnly(user);
}

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
