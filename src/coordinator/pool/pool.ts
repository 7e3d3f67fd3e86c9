/** The agent pool: one AgentConnection per registered agent, and snapshots of them to report. */
import type { Logger } from 'pino';
import type { LeaseInfo } from '../../protocol/client/agent-client.js';
import type { Bundle } from '../../protocol/client/bundle.js';
import type { MusterError } from '../../protocol/errors.js';
import type { AgentRow } from '../store/types.js';
import { AgentConnection, type Identity } from './agent-connection.js';
import { snapshotOf, type AgentSnapshot } from './agent-snapshot.js';

export interface PoolContext {
  identity(): Identity;
  bundle(): Promise<Bundle>;
  heartbeatIntervalMs: number;
  log: Logger;
  onReady(connection: AgentConnection): void;
  onLost(connection: AgentConnection, err: MusterError): void;
  onChange(agent: AgentSnapshot): void;
  onLease?(connection: AgentConnection, lease: LeaseInfo): void;
  mayOutbid?(): boolean;
}

export class AgentPool {
  private readonly connections = new Map<string, AgentConnection>();
  private started = false;

  constructor(private readonly ctx: PoolContext) {}

  /** Who this coordinator is to agents now (the handshake of an agent that dials out uses it). */
  identity(): Identity {
    return this.ctx.identity();
  }

  /** Starts connecting to every agent loaded (see load). */
  start(): void {
    this.started = true;
    for (const c of this.connections.values()) c.start();
  }

  /** Replaces the agents with these rows, not connected (stops any connection first). */
  load(rows: AgentRow[]): void {
    for (const c of this.connections.values()) c.stop();
    this.connections.clear();
    this.started = false;
    for (const row of rows) this.add(row);
  }

  add(row: AgentRow): AgentConnection {
    const connection = new AgentConnection(row, {
      identity: () => this.ctx.identity(),
      bundle: () => this.ctx.bundle(),
      heartbeatIntervalMs: this.ctx.heartbeatIntervalMs,
      log: this.ctx.log,
      onReady: (c) => this.ctx.onReady(c),
      onLost: (c, err) => this.ctx.onLost(c, err),
      onStatus: (c) => this.ctx.onChange(snapshotOf(c)),
      onLease: (c, lease) => this.ctx.onLease?.(c, lease),
      mayOutbid: () => this.ctx.mayOutbid?.() ?? true,
    });
    this.connections.set(row.name, connection);
    if (this.started) connection.start();
    return connection;
  }

  remove(name: string): void {
    this.connections.get(name)?.stop();
    this.connections.delete(name);
  }

  update(row: AgentRow): void {
    const connection = this.connections.get(row.name);
    if (connection) {
      connection.row = row;
      // An agent that dials out, approved now: waiting for it, no longer for an admin.
      if (connection.dialsOut && row.approved && connection.status === 'pending') {
        connection.start();
        return;
      }
      this.ctx.onChange(snapshotOf(connection));
    }
  }

  get(name: string): AgentConnection | undefined {
    return this.connections.get(name);
  }

  all(): AgentConnection[] {
    return [...this.connections.values()];
  }

  ready(): AgentConnection[] {
    return this.all().filter((c) => c.isReady);
  }

  /** Pushes the current bundle to every connected agent (after an extension changed). */
  async resyncAll(): Promise<void> {
    await Promise.all(
      this.ready().map((c) =>
        c
          .resync()
          .catch((err: unknown) => this.ctx.log.warn({ agent: c.name, err }, 'resync failed')),
      ),
    );
  }

  /** Every agent, by name. */
  snapshots(): AgentSnapshot[] {
    return this.all()
      .map(snapshotOf)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  snapshot(name: string): AgentSnapshot | undefined {
    const c = this.connections.get(name);
    return c ? snapshotOf(c) : undefined;
  }

  /** Reconnects every agent (the identity sent to agents changed). */
  reconnectAll(): void {
    for (const c of this.connections.values()) {
      c.stop();
      c.start();
    }
  }

  stop(): void {
    for (const c of this.connections.values()) c.stop();
  }

  /** Stops, giving every lease back first (bounded: a silent agent's lease just expires). */
  async release(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.all().map((c) => c.release())),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.stop();
  }
}
