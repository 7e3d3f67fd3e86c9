/** What the API's routes need from the coordinator; narrow, so route tests can pass fakes. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobStore } from '../../common/blob-store.js';
import { MusterError } from '../../protocol/errors.js';
import type { BlobSweeper } from '../blob-sweeper.js';
import type { BundleManager } from '../bundles.js';
import type { Builds } from '../builds/builds.js';
import type { EventBus } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { CompiledCoordinatorOptions } from '../options.js';
import type { AgentPool } from '../pool/pool.js';
import type { BuildControl } from '../engine.js';
import type { Store } from '../store/store.js';
import type { User } from '../store/types.js';
import type { BackupSide } from '../ha/backup-side.js';
import type { PrimarySide } from '../ha/primary-side.js';
import type { CertificateManager } from '../tls/certificate-manager.js';
import type { StatusView } from '../../api/views/status.js';

export interface ApiContext {
  store: Store;
  pool: AgentPool;
  /** Submitting, cancelling and reading builds. */
  builds: Builds;
  /** Scheduling again once an agent changed. */
  scheduler: BuildControl;
  blobs: BlobStore;
  /** The quota on unreferenced uploads, and what keeps blobs a request uses from being swept. */
  uploads: BlobSweeper;
  events: EventBus;
  bundles: BundleManager;
  metrics: Metrics;
  options: CompiledCoordinatorOptions;
  version: string;
  role(): StatusView['role'];
  /** High availability: the primary's side or the backup's (one of them). */
  ha: { primary?: PrimarySide | undefined; backup?: BackupSide | undefined };
  /** The fencing term this coordinator works under. */
  term(): number;
  instanceId(): string;
  isReady(): boolean;
  /** The certificate this coordinator serves; undefined over plain HTTP. */
  certificates: CertificateManager | undefined;
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
  if (ctx.role() === 'backup-standby') {
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
  if (ctx.role() === 'primary') return;
  const primary = ctx.ha.backup?.statusView().url;
  throw new MusterError(
    'READ_ONLY',
    `this coordinator is a backup: settings, agents, users, passwords, extensions and backups are changed on the primary${primary ? ` (${primary})` : ''}`,
  );
}

/** Admin only; on a backup, changes are refused outright (they belong on the primary). */
export function requireAdmin(request: FastifyRequest, ctx: ApiContext): User {
  const user = requireUser(request);
  requirePrimary(ctx);
  if (user.role !== 'admin')
    throw new MusterError('FORBIDDEN', `${user.name} is a viewer; this needs an admin`);
  return user;
}

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
