/** What the API's routes need from the coordinator; narrow, so route tests can pass fakes. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobStore } from '../../protocol/blob-store.js';
import { MusterError } from '../../protocol/errors.js';
import type { BundleManager } from '../bundles.js';
import type { EventBus } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { CompiledCoordinatorOptions } from '../options.js';
import type { AgentPool } from '../pool/pool.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { Store } from '../store/store.js';
import type { User } from '../store/types.js';
import type { StatusView } from './schemas.js';

export interface ApiContext {
  store: Store;
  pool: AgentPool;
  scheduler: Scheduler;
  blobs: BlobStore;
  events: EventBus;
  bundles: BundleManager;
  metrics: Metrics;
  options: CompiledCoordinatorOptions;
  version: string;
  role(): StatusView['role'];
  instanceId(): string;
  isReady(): boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    user: User | undefined;
  }
}

export function requireUser(request: FastifyRequest): User {
  if (!request.user) throw new MusterError('UNAUTHORIZED');
  return request.user;
}

/**
 * Running and cancelling builds: admins only (viewers look). Unlike administration this is
 * allowed on an active backup, which keeps builds going while the primary is away.
 */
export function requireBuilder(request: FastifyRequest): User {
  const user = requireUser(request);
  if (user.role !== 'admin')
    throw new MusterError('FORBIDDEN', `${user.name} is a viewer; running builds needs an admin`);
  return user;
}

/** Admin only; on a backup, changes are refused outright (they belong on the primary). */
export function requireAdmin(request: FastifyRequest, ctx: ApiContext): User {
  const user = requireUser(request);
  if (ctx.role() !== 'primary') throw new MusterError('READ_ONLY');
  if (user.role !== 'admin')
    throw new MusterError('FORBIDDEN', `${user.name} is a viewer; this needs an admin`);
  return user;
}

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
