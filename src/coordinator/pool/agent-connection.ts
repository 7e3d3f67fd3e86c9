/**
 * The coordinator's link to one agent: connect, authenticate, push this coordinator's bundle,
 * then keep the connection alive with heartbeats; on any failure, reconnect with backoff and
 * jitter. Its status says where it is and, when it cannot get there, why in words.
 */
import type { Logger } from 'pino';
import { AgentClient } from '../../protocol/client/agent-client.js';
import type { Bundle } from '../../protocol/client/bundle.js';
import { MusterError } from '../../protocol/errors.js';
import type { AgentStatus } from '../api/schemas.js';
import type { AgentRow } from '../store/types.js';
import { Backoff } from './backoff.js';

export interface Identity {
  product: string;
  productVersion: string;
  instanceId: string;
}

export interface AgentConnectionContext {
  identity(): Identity;
  bundle(): Promise<Bundle>;
  heartbeatIntervalMs: number;
  log: Logger;
  onReady(connection: AgentConnection): void;
  onLost(connection: AgentConnection, err: MusterError): void;
  onStatus(connection: AgentConnection): void;
}

/** Errors that retrying will not fix: the agent is refused until its settings change. */
const REFUSALS = new Set(['AUTH_FAILED', 'TLS_FINGERPRINT_MISMATCH', 'UNSUPPORTED_PROTOCOL']);

export class AgentConnection {
  status: AgentStatus = 'connecting';
  lastError: string | null = null;
  lastConnectedAt: string | null = null;
  busySlots = 0;
  client: AgentClient | undefined;
  private syncedVersion: string | undefined;
  private readonly backoff = new Backoff();
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopped = false;
  private connecting = false;

  constructor(
    public row: AgentRow,
    private readonly ctx: AgentConnectionContext,
  ) {}

  get name(): string {
    return this.row.name;
  }

  /** Slots this coordinator may use: configured, or the agent's cores, or 1 until known. */
  get slots(): number {
    return this.row.slots ?? this.client?.cores ?? 1;
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

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
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
    this.syncedVersion = bundle.versionId;
  }

  noteBusy(delta: number): void {
    this.busySlots = Math.max(0, this.busySlots + delta);
    if (this.isReady) this.setStatus(this.busySlots > 0 ? 'busy' : 'connected');
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    const { host, port } = this.row;
    this.setStatus('connecting');
    let client: AgentClient | undefined;
    try {
      const identity = this.ctx.identity();
      client = await AgentClient.connect({
        host,
        port,
        accessKey: this.row.accessKey,
        tls: this.row.tls ? { fingerprint: this.row.fingerprint ?? '' } : false,
        product: identity.product,
        productVersion: identity.productVersion,
        instanceId: identity.instanceId,
        connectTimeoutMs: 10_000,
      });
      if (this.stopped) {
        client.close();
        return;
      }
      this.setStatus('syncing');
      const bundle = await this.ctx.bundle();
      await client.sync(bundle);
      this.syncedVersion = bundle.versionId;
      if (this.stopped) {
        client.close();
        return;
      }
      this.client = client;
      this.backoff.reset();
      this.lastError = null;
      this.lastConnectedAt = new Date().toISOString();
      this.busySlots = 0;
      const connected = client;
      connected.onClose((err) => this.onClose(connected, err));
      this.startHeartbeat(connected);
      this.setStatus('connected');
      this.ctx.log.info({ agent: this.name, instance: connected.instance.key }, 'agent connected');
      this.ctx.onReady(this);
    } catch (err) {
      client?.close();
      const error = err instanceof MusterError ? err : new MusterError('INTERNAL', String(err));
      this.lastError = describe(error);
      if (REFUSALS.has(error.code)) {
        this.setStatus('refused');
        this.ctx.log.warn(
          { agent: this.name, code: error.code },
          `agent refused: ${error.message}`,
        );
        // Still retried, slowly: the agent may be re-keyed or the setting corrected.
        this.schedule(60_000);
      } else {
        this.setStatus('unreachable');
        this.schedule(this.backoff.next());
      }
    } finally {
      this.connecting = false;
    }
  }

  private onClose(client: AgentClient, err: MusterError): void {
    if (this.client !== client) return;
    clearInterval(this.heartbeat);
    this.client = undefined;
    this.busySlots = 0;
    if (this.stopped) return;
    this.lastError = describe(err);
    this.setStatus('unreachable');
    this.ctx.log.warn({ agent: this.name, code: err.code }, 'agent connection lost');
    this.ctx.onLost(this, err);
    this.schedule(this.backoff.next());
  }

  private startHeartbeat(client: AgentClient): void {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      const timeout = setTimeout(() => client.close(), this.ctx.heartbeatIntervalMs * 2);
      client
        .ping()
        .catch(() => client.close())
        .finally(() => clearTimeout(timeout));
    }, this.ctx.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
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

function describe(err: MusterError): string {
  switch (err.code) {
    case 'AUTH_FAILED':
      return 'wrong access key: the agent and this coordinator do not share the key';
    case 'TLS_FINGERPRINT_MISMATCH':
      return `the agent's certificate does not match the pinned fingerprint (${err.message})`;
    case 'UNSUPPORTED_PROTOCOL':
      return `the agent speaks another protocol version: ${err.message}`;
    default:
      return err.message;
  }
}
