/**
 * The coordinator daemon. Lifecycle: created -> starting -> running -> stopping -> stopped.
 * start() opens the store (migrating it), makes sure there is an admin and an instance id,
 * listens, then connects the agents and resumes unfinished builds. stop() is idempotent and
 * ordered: stop accepting requests, stop scheduling, drop agent connections (tasks keep running
 * on the agents and are re-attached at the next start), close the store.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BlobStore } from '../protocol/blob-store.js';
import { MusterError } from '../protocol/errors.js';
import { writeAtomic } from '../protocol/atomic-file.js';
import type { ApiContext } from './api/context.js';
import { buildServer } from './api/server.js';
import type { StatusView } from './api/schemas.js';
import { generatePassword, hashPassword } from './auth/passwords.js';
import { BundleManager } from './bundles.js';
import { EventBus } from './events.js';
import { Metrics } from './metrics.js';
import type { CompiledCoordinatorOptions } from './options.js';
import { AgentPool } from './pool/pool.js';
import { Scheduler } from './scheduler/scheduler.js';
import { openSqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { MUSTER_VERSION } from '../protocol/version.js';

export type CoordinatorState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export const PRODUCT = 'muster';
export const INSTANCE_ID_SETTING = 'Agent.InstanceId';

export interface StartedInfo {
  url: string;
  /** Set when the admin password was generated on this start: print it once. */
  generatedAdminPassword: string | undefined;
}

export class Coordinator {
  state: CoordinatorState = 'created';
  private store: Store | undefined;
  private app: FastifyInstance | undefined;
  private pool: AgentPool | undefined;
  private scheduler: Scheduler | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    readonly options: CompiledCoordinatorOptions,
    private readonly log: Logger,
  ) {}

  get address(): { host: string; port: number } {
    const address = this.app?.server.address();
    if (!address || typeof address === 'string')
      throw new MusterError('INTERNAL', 'the coordinator is not listening');
    return { host: address.address, port: address.port };
  }

  async start(): Promise<StartedInfo> {
    if (this.state !== 'created')
      throw new MusterError('INTERNAL', `cannot start a coordinator that is ${this.state}`);
    this.state = 'starting';
    const { options, log } = this;
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const store = openSqliteStore(join(options.dataDir, 'muster.db'));
    this.store = store;
    const generatedAdminPassword = await this.bootstrap(store);
    const blobs = new BlobStore(join(options.dataDir, 'blobs'));
    await blobs.init();
    const events = new EventBus();
    const bundles = new BundleManager(store, blobs, {
      hostDir: options.hostDir,
      label: `${PRODUCT} ${MUSTER_VERSION}`,
    });
    const identity = () => ({
      product: PRODUCT,
      productVersion: MUSTER_VERSION,
      instanceId: String(store.getSetting(INSTANCE_ID_SETTING)),
    });
    const pool = new AgentPool({
      identity,
      bundle: () => bundles.get(),
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      log,
      onReady: (c) => this.scheduler?.onAgentReady(c),
      onLost: (c) => this.scheduler?.onAgentLost(c),
      onChange: (view) => events.emit('agent', view),
    });
    this.pool = pool;
    const scheduler = new Scheduler({
      store,
      pool,
      blobs,
      events,
      log,
      agentLossGraceMs: options.agentLossGraceMs,
    });
    this.scheduler = scheduler;
    const metrics = new Metrics({
      agentsByStatus: () => {
        const counts: Record<string, number> = {};
        for (const view of pool.views()) counts[view.status] = (counts[view.status] ?? 0) + 1;
        return counts;
      },
      runningAttempts: () => scheduler.runningCount,
    });
    events.subscribe((event, data) => {
      if (event !== 'build') return;
      const status = (data as { status: string }).status;
      if (status === 'succeeded' || status === 'failed' || status === 'cancelled')
        metrics.buildsFinished.inc({ status });
    });
    const role = (): StatusView['role'] => 'primary';
    const ctx: ApiContext = {
      store,
      pool,
      scheduler,
      blobs,
      events,
      bundles,
      metrics,
      options,
      version: MUSTER_VERSION,
      role,
      instanceId: () => identity().instanceId,
      isReady: () => this.state === 'running',
    };
    this.app = buildServer(ctx, log, (key) => {
      if (key === INSTANCE_ID_SETTING) pool.reconnectAll();
    });
    await bundles.get();
    await this.app.listen({ host: options.host, port: options.port });
    pool.start(store.listAgents());
    scheduler.start();
    const sweep = setInterval(() => store.deleteExpiredTokens(new Date().toISOString()), 3_600_000);
    sweep.unref();
    this.timers.push(sweep);
    this.state = 'running';
    const { host, port } = this.address;
    const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    log.info(
      { url, version: MUSTER_VERSION, dataDir: options.dataDir, instanceId: identity().instanceId },
      'listening',
    );
    return { url, generatedAdminPassword };
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'created') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    for (const t of this.timers) clearInterval(t);
    await this.app?.close().catch((err: unknown) => this.log.warn({ err }, 'closing the server'));
    this.scheduler?.stop();
    this.pool?.stop();
    this.store?.close();
    this.state = 'stopped';
    this.log.info('stopped');
  }

  /** First start: the admin user and this coordinator's instance id. */
  private async bootstrap(store: Store): Promise<string | undefined> {
    if (store.getSetting(INSTANCE_ID_SETTING) === undefined)
      store.setSetting(INSTANCE_ID_SETTING, randomUUID());
    if (store.listUsers().length > 0) return undefined;
    const given = process.env.MUSTER_ADMIN_PASSWORD;
    const password = given !== undefined && given !== '' ? given : generatePassword();
    store.createUser('admin', 'admin', await hashPassword(password));
    if (given !== undefined && given !== '') return undefined;
    await writeAtomic(join(this.options.dataDir, 'admin-password'), `${password}\n`, 0o600);
    return password;
  }
}
