/**
 * The coordinator's link to one agent: connect, authenticate, push this coordinator's bundle,
 * then keep the connection alive with heartbeats; on any failure, reconnect with backoff and
 * jitter. Its status says where it is and, when it cannot get there, why in words.
 */
import type { Logger } from 'pino';
import {
  AgentClient,
  type AgentClientOptions,
  type LeaseInfo,
} from '../../protocol/client/agent-client.js';
import type { AgentLink } from '../../protocol/client/agent-link.js';
import type { Bundle } from '../../protocol/client/bundle.js';
import { toolchainsOf } from './bundle-toolchains.js';
import { MusterError } from '../../protocol/errors.js';
import type { AgentStatus } from '../../api/status.js';
import type { AgentRow } from '../store/types.js';
import type { SlotsSource } from './agent-snapshot.js';
import { Backoff } from './backoff.js';
import { startHeartbeat } from './heartbeat.js';

export interface Identity {
  product: string;
  productVersion: string;
  /** Undefined when Agent.InstanceId is cleared: agents key this coordinator by its address. */
  instanceId: string | undefined;
  /**
   * The cluster whose lease the connection works under: the instance id, which a primary and its
   * backups share, or without one a name made from the instance key, which they share too.
   */
  clusterId: string;
  /** The instance key (Ed25519 private key, PEM) that proves this coordinator's claim. */
  instanceKey: string;
  /** This coordinator among those of its cluster: a primary and its backup have their own. */
  holderId?: string;
  /**
   * With a term, the connection works under the cluster's lease (the cluster is the instance id,
   * which a primary and its backups share): it is ready only while it holds the lease, and its
   * heartbeat renews it.
   */
  leaseTerm?: number;
}

export interface AgentConnectionContext {
  identity(): Identity;
  bundle(): Promise<Bundle>;
  heartbeatIntervalMs: number;
  log: Logger;
  onReady(connection: AgentConnection): void;
  onLost(connection: AgentConnection, err: MusterError): void;
  onStatus(connection: AgentConnection): void;
  /** What the agent said of the lease at each connect and heartbeat. */
  onLease?(connection: AgentConnection, lease: LeaseInfo): void;
  /**
   * Whether an expired lease last held with a higher term may be taken with a term above it
   * (false while this coordinator knows another of its cluster is running it).
   */
  mayOutbid?(): boolean;
}

/** Errors that retrying will not fix: the agent is refused until its settings change. */
const REFUSALS = new Set([
  'AUTH_FAILED',
  'TLS_FINGERPRINT_MISMATCH',
  'UNSUPPORTED_PROTOCOL',
  'INSTANCE_BOUND',
  'INSTANCE_CLAIM_INVALID',
]);

export class AgentConnection {
  status: AgentStatus = 'disabled';
  lastError: string | null = null;
  lastConnectedAt: string | null = null;
  busySlots = 0;
  client: AgentClient | undefined;
  /** The lease as the agent last described it (lease mode only). */
  lease: LeaseInfo | undefined;
  /** Whether this connection works under the cluster lease (the agent grants leases). */
  private fencing = false;
  private syncedVersion: string | undefined;
  /** The toolchains of the bundle it last synced, and those it refused since (compile jobs). */
  private syncedToolchains: ReadonlySet<string> = new Set();
  private readonly refusedToolchains = new Set<string>();
  private readonly backoff = new Backoff();
  private timer: NodeJS.Timeout | undefined;
  private stopHeartbeat: (() => void) | undefined;
  private stopped = false;
  private connecting = false;
  /** Counts the links taken up: an older one still syncing when a newer came gives way. */
  private attempt = 0;

  constructor(
    public row: AgentRow,
    private readonly ctx: AgentConnectionContext,
  ) {}

  get name(): string {
    return this.row.name;
  }

  /**
   * Slots this coordinator may use: configured, or the agent's cores, or the cores it reported
   * when it last connected (to this coordinator or, replicated, to the primary), or 1 until known.
   */
  get slots(): number {
    return this.row.slots ?? this.client?.cores ?? this.row.cores ?? 1;
  }

  /** Where `slots` comes from: a standby backup, with no connections, shows the last known. */
  get slotsFrom(): SlotsSource {
    if (this.row.slots !== null) return 'configured';
    if (this.client?.cores !== undefined) return 'agent';
    return this.row.cores !== null ? 'last-known' : 'unknown';
  }

  /**
   * The machine the agent runs on (hashed kernel boot id) as the live connection reported it;
   * null when not connected or the agent does not say (older agents): another machine.
   */
  get bootId(): string | null {
    return this.client?.bootId ?? null;
  }

  /** Whether compile jobs with this toolchain may go to it now (see SchedulerAgent.provides). */
  provides(toolchain: string): boolean {
    return (
      this.isReady && this.syncedToolchains.has(toolchain) && !this.refusedToolchains.has(toolchain)
    );
  }

  /** It refused the toolchain (cannot run it): no more of its jobs until its bundle changes. */
  refuseToolchain(toolchain: string): void {
    if (this.syncedToolchains.has(toolchain)) this.refusedToolchains.add(toolchain);
  }

  /** The toolchains it can run now (for GET /toolchains/{id}). */
  get toolchains(): string[] {
    if (!this.isReady) return [];
    return [...this.syncedToolchains].filter((id) => !this.refusedToolchains.has(id));
  }

  get freeSlots(): number {
    return this.isReady ? Math.max(0, this.slots - this.busySlots) : 0;
  }

  get isReady(): boolean {
    return (
      (this.status === 'connected' || this.status === 'busy') &&
      this.client !== undefined &&
      !this.client.closed
    );
  }

  /** An agent that dials out (src/protocol/outbound.ts): this coordinator waits for it. */
  get dialsOut(): boolean {
    return this.row.agentId !== null;
  }

  start(): void {
    this.stopped = false;
    if (this.dialsOut) {
      this.lastError = this.row.approved
        ? 'the agent has not connected yet (it dials out to this coordinator)'
        : 'the agent joined and waits for an admin to approve it';
      this.setStatus(this.row.approved ? 'unreachable' : 'pending');
      return;
    }
    void this.connect();
  }

  /**
   * A link an agent that dials out opened and authenticated (outbound-agents.ts): it replaces the
   * connection there is, and goes on as a dialed one would (sync, lease, heartbeat).
   */
  async attach(link: AgentLink, options: AgentClientOptions): Promise<void> {
    if (this.stopped || !this.row.approved) {
      link.conn.close();
      return;
    }
    const previous = this.client;
    if (previous !== undefined) {
      this.onClose(
        previous,
        new MusterError('CONNECTION_CLOSED', 'the agent connected again (a new link replaces it)'),
      );
      previous.close();
    }
    const attempt = ++this.attempt;
    this.connecting = true;
    this.setStatus('connecting');
    try {
      await this.adopt(AgentClient.over(link, options), attempt);
    } finally {
      if (attempt === this.attempt) this.connecting = false;
    }
  }

  /** What a handshake with this agent says: where, with which key, as whom. */
  clientOptions(): AgentClientOptions {
    return clientOptionsFor(this.ctx.identity(), {
      host: this.row.host,
      port: this.row.port,
      accessKey: this.row.accessKey,
      tls: this.row.tls ? { fingerprint: this.row.fingerprint ?? '' } : false,
    });
  }

  /** Gives the lease back at once (so another coordinator need not wait for it to expire), then stops. */
  async release(): Promise<void> {
    const client = this.client;
    this.stopped = true;
    if (client && !client.closed && this.lease?.held) {
      await client.releaseLease().catch((err: unknown) =>
        // Not given back, it expires by itself: the other coordinator only waits longer.
        this.ctx.log.warn({ agent: this.name, err }, 'could not give the lease back'),
      );
    }
    this.stop();
  }

  stop(): void {
    this.stopped = true;
    // A connect still in flight gives way when it ends (see adopt).
    this.attempt++;
    this.connecting = false;
    clearTimeout(this.timer);
    this.stopHeartbeat?.();
    this.client?.close();
    this.client = undefined;
    this.setStatus('disabled');
  }

  /** Re-pushes the bundle if it changed (an extension was added) since the last sync. */
  async resync(): Promise<void> {
    const client = this.client;
    if (!client || client.closed) return;
    const bundle = await this.ctx.bundle();
    if (bundle.versionId === this.syncedVersion) return;
    await client.sync(bundle);
    this.synced(bundle);
  }

  private synced(bundle: Bundle): void {
    if (bundle.versionId === this.syncedVersion) return;
    this.syncedVersion = bundle.versionId;
    this.syncedToolchains = toolchainsOf(bundle);
    this.refusedToolchains.clear();
  }

  noteBusy(delta: number): void {
    this.busySlots = Math.max(0, this.busySlots + delta);
    if (this.isReady) this.setStatus(this.busySlots > 0 ? 'busy' : 'connected');
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.connecting) return;
    const attempt = ++this.attempt;
    this.connecting = true;
    this.setStatus('connecting');
    try {
      await this.adopt(await AgentClient.connect(this.clientOptions()), attempt);
    } catch (err) {
      if (attempt === this.attempt) this.failed(err);
    } finally {
      if (attempt === this.attempt) this.connecting = false;
    }
  }

  /** A client that completed its handshake: sync the bundle, take the lease, go to work. */
  private async adopt(client: AgentClient, attempt: number): Promise<void> {
    const superseded = (): boolean => this.stopped || attempt !== this.attempt;
    try {
      const identity = this.ctx.identity();
      if (superseded()) {
        client.close();
        return;
      }
      this.setStatus('syncing');
      const bundle = await this.ctx.bundle();
      await client.sync(bundle);
      if (superseded()) {
        client.close();
        return;
      }
      this.synced(bundle);
      this.client = client;
      this.backoff.reset();
      this.lastError = null;
      this.lastConnectedAt = new Date().toISOString();
      this.busySlots = 0;
      const connected = client;
      connected.onClose((err) => this.onClose(connected, err));
      this.startHeartbeat(connected);
      // An agent that answers a cluster id without a lease does not fence (it predates leases):
      // it works, unfenced, with plain pings as its heartbeat.
      this.fencing = identity.leaseTerm !== undefined && connected.lease !== undefined;
      if (identity.leaseTerm !== undefined && !this.fencing) {
        this.ctx.log.warn(
          { agent: this.name, version: connected.agentVersion },
          'the agent does not grant leases (an older agent): a backup cannot be fenced off it',
        );
      }
      if (this.fencing) {
        this.lease = connected.lease ?? { held: false, term: 0, expiresInMs: 0 };
        this.ctx.onLease?.(this, this.lease);
        if (!this.lease.held) {
          this.fence(this.lease);
          // An expired lease may be ours to take at once with a higher term.
          if (this.termToAsk(identity.leaseTerm ?? 0) !== identity.leaseTerm) this.retryLease();
          return;
        }
      }
      this.setStatus('connected');
      this.ctx.log.info({ agent: this.name, instance: connected.instance.key }, 'agent connected');
      this.ctx.onReady(this);
    } catch (err) {
      client.close();
      if (superseded()) return;
      if (this.dialsOut) this.failed(err);
      else throw err;
    }
  }

  private failed(err: unknown): void {
    const error = err instanceof MusterError ? err : new MusterError('INTERNAL', String(err));
    this.lastError = describe(error);
    if (REFUSALS.has(error.code)) {
      this.setStatus('refused');
      this.ctx.log.warn({ agent: this.name, code: error.code }, `agent refused: ${error.message}`);
      // Still retried, slowly: the agent may be re-keyed or the setting corrected.
      this.schedule(60_000);
    } else {
      this.setStatus('unreachable');
      this.schedule(this.backoff.next());
    }
  }

  private onClose(client: AgentClient, err: MusterError): void {
    if (this.client !== client) return;
    this.stopHeartbeat?.();
    this.client = undefined;
    this.busySlots = 0;
    if (this.stopped) return;
    this.lastError = describe(err);
    this.setStatus('unreachable');
    this.ctx.log.warn({ agent: this.name, code: err.code }, 'agent connection lost');
    this.ctx.onLost(this, err);
    this.schedule(this.backoff.next());
  }

  /** Connected but without the lease: not ready; the heartbeat keeps asking for it. */
  private fence(lease: LeaseInfo): void {
    const wasReady = this.isReady;
    this.lastError =
      lease.expiresInMs > 0
        ? `another coordinator of this cluster holds the agent's lease (term ${lease.term})`
        : `the agent's lease was last held with term ${lease.term}, above this coordinator's`;
    this.setStatus('fenced');
    if (wasReady) {
      this.busySlots = 0;
      this.ctx.onLost(this, new MusterError('LEASE_NOT_HELD', this.lastError));
    }
  }

  /**
   * The term to ask with: the one held (renewing); for an expired lease the next term (agents
   * grant one higher only): above a higher term when allowed, and towards this coordinator's own
   * one step at a time on an agent that missed terms (it was away while they were taken); else
   * this coordinator's.
   */
  private termToAsk(base: number): number {
    const lease = this.lease;
    if (!lease) return base;
    if (lease.held) return lease.term;
    // No term on the agent yet (term 0 is never taken): any term is granted.
    if (lease.expiresInMs > 0 || lease.term === 0) return base;
    if (lease.term >= base) return (this.ctx.mayOutbid?.() ?? true) ? lease.term + 1 : base;
    return Math.min(base, lease.term + 1);
  }

  /** Pings, or with a lease renews it (which also proves the connection alive). */
  private beat(client: AgentClient): Promise<void> {
    const base = this.ctx.identity().leaseTerm;
    if (base === undefined || !this.fencing) return client.ping();
    const term = this.termToAsk(base);
    return client.acquireLease(term).then((lease) => {
      if (this.client !== client) return;
      this.lease = lease;
      this.ctx.onLease?.(this, lease);
      if (!lease.held) {
        this.fence(lease);
        return;
      }
      if (this.status === 'fenced') {
        this.lastError = null;
        this.setStatus('connected');
        this.ctx.log.info({ agent: this.name, term }, 'agent lease acquired');
        this.ctx.onReady(this);
      }
    });
  }

  private startHeartbeat(client: AgentClient): void {
    this.stopHeartbeat?.();
    this.stopHeartbeat = startHeartbeat({
      intervalMs: this.ctx.heartbeatIntervalMs,
      beat: () => this.beat(client),
      progress: () => client.progress,
      close: () => client.close(),
    });
  }

  /** Asks for the lease now instead of at the next heartbeat (a term changed). */
  retryLease(): void {
    const client = this.client;
    if (client && !client.closed) void this.beat(client).catch(() => client.close());
  }

  private schedule(delayMs: number): void {
    // An agent that dials out comes back by itself.
    if (this.stopped || this.dialsOut) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), delayMs);
    this.timer.unref();
  }

  private setStatus(status: AgentStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.ctx.onStatus(this);
  }
}

/** The handshake's options for an agent at `target` under this coordinator's identity. */
export function clientOptionsFor(
  identity: Identity,
  target: Pick<AgentClientOptions, 'host' | 'port' | 'accessKey' | 'tls'>,
): AgentClientOptions {
  return {
    ...target,
    product: identity.product,
    productVersion: identity.productVersion,
    ...(identity.instanceId === undefined ? {} : { instanceId: identity.instanceId }),
    instanceKey: identity.instanceKey,
    ...(identity.holderId === undefined ? {} : { holderId: identity.holderId }),
    ...(identity.leaseTerm === undefined
      ? {}
      : { clusterId: identity.clusterId, leaseTerm: identity.leaseTerm }),
    connectTimeoutMs: 10_000,
  };
}

function describe(err: MusterError): string {
  switch (err.code) {
    case 'AUTH_FAILED':
      return 'wrong access key: the agent and this coordinator do not share the key';
    case 'TLS_FINGERPRINT_MISMATCH':
      return `the agent's certificate does not match the pinned fingerprint (${err.message})`;
    case 'UNSUPPORTED_PROTOCOL':
      return `the agent speaks another protocol version: ${err.message}`;
    case 'INSTANCE_BOUND':
      return `the agent refuses this coordinator's instance: ${err.message}`;
    default:
      return err.message;
  }
}
