/**
 * The part of a coordinator that runs the cluster: the agent pool and the scheduler. A primary
 * runs it from start to stop (stopping it only while it takes the cluster back from a backup); a
 * backup runs it only while it takes over. Lifecycle: stopped -> pool (connected to the agents
 * under a lease term) -> scheduling -> stopped.
 */
import type { Logger } from 'pino';
import type { BlobStore } from '../common/blob-store.js';
import type { Bundle } from '../protocol/client/bundle.js';
import type { EventBus } from './events.js';
import { adoptOrphans } from './ha/adopt.js';
import type { EnginePort, LeaseSummary } from './ha/engine-port.js';
import type { AgentConnection, Identity } from './pool/agent-connection.js';
import { AgentPool } from './pool/pool.js';
import { cancelRequestedFields } from './scheduler/cancel-request.js';
import type { JobHandle, NewCompileJob } from './scheduler/compile-jobs.js';
import { Scheduler } from './scheduler/scheduler.js';
import { TaskCache } from './scheduler/task-cache.js';
import type { KeyedFile } from './scheduler/task-cache-key.js';
import type { SecretValues } from './scheduler/secret-mask.js';
import type { Store } from './store/store.js';
import type { BuildRow, CompileSessionEnd } from './store/types.js';

export interface EngineContext {
  store: Store;
  blobs: BlobStore;
  events: EventBus;
  log: Logger;
  /** The values of the secrets a task names, opened at its dispatch. */
  secrets?: SecretValues;
  identity(): Omit<Identity, 'leaseTerm'>;
  bundle(): Promise<Bundle>;
  /**
   * See TaskCacheContext.extensionFiles and hostFiles; without them `cache: true` tasks always
   * run.
   */
  bundleFiles?: {
    extensionFiles(name: string): readonly KeyedFile[] | undefined;
    hostFiles(): readonly KeyedFile[] | undefined;
  };
  heartbeatIntervalMs: number;
  agentLossGraceMs: number;
  /** May a connection outbid an expired lease of a higher term (see AgentConnection)? */
  mayOutbid(): boolean;
  /** A lease was granted with this term (it may be above the coordinator's, see termToAsk). */
  onTermHeld?: (term: number) => void;
  /** See SchedulerContext.deferRelease. */
  deferRelease?: (release: () => void) => void;
}

/** What the API asks of the scheduler, answered even while the engine is stopped. */
export interface BuildControl {
  submit(row: BuildRow): void;
  cancel(buildId: number): void;
  schedule(): void;
  /** Ends an open build (a compile session); see Scheduler.close. */
  close(buildId: number, end: CompileSessionEnd): BuildRow;
  /** Runs a remote compile job in an open build; see Scheduler.addJob. */
  addJob(buildId: number, job: NewCompileJob): JobHandle;
}

export class Engine implements EnginePort, BuildControl {
  private poolRunning = false;
  private scheduler: Scheduler | undefined;
  private term = 0;
  private readonly livePool: AgentPool;

  constructor(private readonly ctx: EngineContext) {
    this.livePool = new AgentPool({
      identity: () => ({ ...ctx.identity(), leaseTerm: this.term }),
      bundle: () => ctx.bundle(),
      heartbeatIntervalMs: ctx.heartbeatIntervalMs,
      log: ctx.log,
      onReady: (c) => {
        this.noteCores(c);
        this.scheduler?.onAgentReady(c);
      },
      onLost: (c) => this.scheduler?.onAgentLost(c),
      onChange: (agent) => ctx.events.emit('agent', agent),
      mayOutbid: () => ctx.mayOutbid(),
      // An agent may grant a term above this.term (an expired lease outbid): the status says so.
      // The base term stays: raising it would fence this coordinator off the agents whose
      // lease it holds, live, with the lower one, until those expire.
      onLease: (_connection, lease) => {
        if (lease.held && lease.term > this.term) ctx.onTermHeld?.(lease.term);
      },
    });
  }

  /** Keeps the agent's cores in the store (replicated): what a standby backup shows as slots. */
  private noteCores(connection: AgentConnection): void {
    const cores = connection.client?.cores;
    if (cores === undefined || connection.row.cores === cores) return;
    try {
      connection.row = this.ctx.store.updateAgent(connection.name, { cores });
    } catch (err) {
      this.ctx.log.warn({ agent: connection.name, err }, 'could not record the agent cores');
    }
  }

  get running(): boolean {
    return this.poolRunning;
  }

  get scheduling(): boolean {
    return this.scheduler !== undefined;
  }

  get runningCount(): number {
    return this.scheduler?.runningCount ?? 0;
  }

  /** Ready tasks waiting for a slot (0 while not scheduling). */
  get queuedCount(): number {
    return this.scheduler?.queuedCount ?? 0;
  }

  /** Builds being scheduled (0 while not scheduling). */
  get activeBuilds(): number {
    return this.scheduler?.activeBuilds ?? 0;
  }

  /** The pool; while stopped, the registered agents as they are in the store (not connected). */
  get pool(): AgentPool {
    if (!this.poolRunning) this.livePool.load(this.ctx.store.listAgents());
    return this.livePool;
  }

  startPool(term: number): void {
    if (this.poolRunning) return;
    this.term = term;
    this.poolRunning = true;
    this.livePool.load(this.ctx.store.listAgents());
    this.livePool.start();
  }

  startScheduler(): void {
    if (this.scheduler || !this.poolRunning) return;
    const scheduler = new Scheduler({
      store: this.ctx.store,
      pool: this.livePool,
      blobs: this.ctx.blobs,
      events: this.ctx.events,
      log: this.ctx.log,
      agentLossGraceMs: this.ctx.agentLossGraceMs,
      ...(this.ctx.secrets ? { secrets: this.ctx.secrets } : {}),
      ...(this.ctx.deferRelease ? { deferRelease: this.ctx.deferRelease } : {}),
      ...(this.ctx.bundleFiles
        ? {
            taskCache: new TaskCache({
              store: this.ctx.store,
              blobs: this.ctx.blobs,
              log: this.ctx.log,
              extensionFiles: (name) => this.ctx.bundleFiles?.extensionFiles(name),
              hostFiles: () => this.ctx.bundleFiles?.hostFiles(),
            }),
          }
        : {}),
    });
    this.scheduler = scheduler;
    scheduler.start();
    for (const connection of this.livePool.ready()) scheduler.onAgentReady(connection);
  }

  async stop(release: boolean): Promise<void> {
    this.scheduler?.stop();
    this.scheduler = undefined;
    if (!this.poolRunning) return;
    this.poolRunning = false;
    if (release) await this.livePool.release();
    else this.livePool.stop();
  }

  leaseSummary(): LeaseSummary {
    const all = this.livePool.all();
    return {
      total: all.length,
      held: all.filter((c) => c.isReady).length,
      liveElsewhere: all.filter(
        (c) => c.status === 'fenced' && c.lease !== undefined && c.lease.expiresInMs > 0,
      ).length,
    };
  }

  adoptOrphans(): Promise<number> {
    const sources = this.livePool.ready().flatMap((c) => {
      const client = c.client;
      return client ? [{ name: c.name, listTasks: () => client.listTasks() }] : [];
    });
    return adoptOrphans(this.ctx.store, sources, this.ctx.log);
  }

  // ---- BuildControl -------------------------------------------------------------------------

  submit(row: BuildRow): void {
    // Without a scheduler the build waits in the store; the next one to start loads it.
    this.scheduler?.submit(row);
  }

  cancel(buildId: number): void {
    if (this.scheduler) {
      this.scheduler.cancel(buildId);
      return;
    }
    const build = this.ctx.store.getBuild(buildId);
    if (build) this.ctx.store.setBuildStatus(buildId, build.status, cancelRequestedFields);
  }

  schedule(): void {
    this.scheduler?.schedule();
  }

  close(buildId: number, end: CompileSessionEnd): BuildRow {
    // Without a scheduler the build is only in the store.
    return this.scheduler?.close(buildId, end) ?? this.ctx.store.closeBuild(buildId, end);
  }

  addJob(buildId: number, job: NewCompileJob): JobHandle {
    if (this.scheduler) return this.scheduler.addJob(buildId, job);
    // Nothing runs here now: the job is recorded as not started, and its client compiles it.
    const row = this.ctx.store.appendJobTask(buildId, {
      label: job.label,
      spec: JSON.stringify(job.spec),
      status: 'skipped',
      error: 'not started: this coordinator is not scheduling',
      fallback: 'no-agent-slot',
    });
    const end = { status: 'not-started', reason: 'no-agent-slot', row, result: undefined } as const;
    return { task: row.name, ended: Promise.resolve(end), cancel: () => {} };
  }
}
