/**
 * The agent daemon. Lifecycle: created -> starting -> running -> draining -> stopped.
 * `start()` loads its identity and state and listens; `stop()` (idempotent) stops accepting,
 * lets running tasks finish for the drain timeout, cancels the rest, stops hosts and closes.
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  Server as TlsServer,
  createSecureContext,
  createServer as createTlsServer,
  type TLSSocket,
} from 'node:tls';
import type { Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { MusterError } from '../protocol/errors.js';
import { LeaseTable } from './leases.js';
import { agentRegistry, serveMetrics } from './metrics.js';
import { Pins } from './pins.js';
import { BlobStore } from '../common/blob-store.js';
import { HostSupervisor } from './host-supervisor.js';
import { type AgentIdentity, loadOrCreateIdentity, readTlsFiles } from './identity.js';
import { changedOptions } from '../common/options-diff.js';
import { InstanceRegistry } from './instances.js';
import type { CompiledAgentOptions } from './options.js';
import { AgentSession, type SessionContext } from './session.js';
import { readFacts } from './facts.js';
import { OutboundLinks, type OutboundLink } from './outbound.js';
import { TaskService } from './tasks.js';
import { ConnectionGate, type GateTicket } from '../common/connection-gate.js';
import { LogLimiter, LogLimiters } from './log-limiter.js';
import { VersionStore } from './version-store.js';
import { collectGarbage } from './garbage-collector.js';
import { ControlRequests, type ControlAnswer, type ControlRequest } from './control.js';
import { TaskUsers } from './task-users.js';
import { checkRuntimeForTaskUsers } from './runtime-access.js';
import {
  idleInstances,
  inUse,
  removeInstance,
  type InstanceRemovalContext,
} from './instance-removal.js';

export type AgentState = 'created' | 'starting' | 'running' | 'draining' | 'stopped';

export class Agent {
  private lifecycle: AgentState = 'created';
  private loadedIdentity: AgentIdentity | undefined;
  private server: Server | undefined;
  /** Dialing out to a coordinator (--connect), if it does. */
  private outbound: OutboundLinks | undefined;
  private readonly sessions = new Set<AgentSession>();
  private metricsServer: HttpServer | undefined;
  private readonly blobs: BlobStore;
  private readonly versions: VersionStore;
  private readonly instances: InstanceRegistry;
  private readonly hosts: HostSupervisor;
  private readonly tasks: TaskService;
  private readonly pins = new Pins();
  private readonly versionPins = new Pins();
  private readonly leases: LeaseTable;
  /** Connections not yet authenticated: capped in all and per source address. */
  private readonly gate: ConnectionGate;
  /** TLS connections admitted by the gate, still in their TLS handshake; by TCP 4-tuple. */
  private readonly inTlsHandshake = new Map<string, GateTicket>();
  private readonly refusedLog: LogLimiter;
  /** Handshake failures of peers not yet authenticated: anyone can cause them. */
  private readonly strangers: LogLimiters;
  private readonly evictedLog: LogLimiter;
  private readonly tlsFailedLog: LogLimiter;
  private timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;
  private readonly control: ControlRequests;
  private readonly users: TaskUsers | undefined;

  constructor(
    readonly options: CompiledAgentOptions,
    private readonly log: Logger,
  ) {
    this.blobs = new BlobStore(join(options.tempDir, 'blobs'));
    this.versions = new VersionStore(this.blobs);
    this.instances = new InstanceRegistry(options.dataDir, options.tempDir);
    // Limited: a coordinator can change its lease at every connect (a full disk fails each write).
    const leasesNotSaved = new LogLimiter(log, 'could not save the cluster leases');
    this.leases = new LeaseTable(options.dataDir, options.leaseTtlMs, Date.now, (err) =>
      leasesNotSaved.warn({ err }),
    );
    this.control = new ControlRequests(options.dataDir, (request) => this.onControl(request));
    this.gate = new ConnectionGate({
      maxTotal: options.maxUnauthenticated,
      maxPerAddress: options.maxUnauthenticatedPerAddress,
    });
    this.refusedLog = new LogLimiter(
      log,
      'connection refused: too many unauthenticated connections from its address',
    );
    this.evictedLog = new LogLimiter(
      log,
      'oldest unauthenticated connection dropped: too many unauthenticated connections',
    );
    this.tlsFailedLog = new LogLimiter(log, 'TLS handshake failed');
    this.strangers = new LogLimiters(log);
    this.users = options.taskUsers
      ? new TaskUsers({
          dataDir: options.dataDir,
          tempDir: options.tempDir,
          blobs: this.blobs,
          log,
        })
      : undefined;
    this.hosts = new HostSupervisor(this.blobs.root, options.hostIdleMs, log, this.users);
    this.tasks = new TaskService(
      this.blobs,
      this.hosts,
      {
        graceMs: options.taskGraceMs,
        memoryBytes: options.taskOutputMemoryBytes,
        maxBytes: options.maxTaskOutputBytes,
      },
      log,
      this.users,
    );
  }

  get state(): AgentState {
    return this.lifecycle;
  }

  /** Loaded by start(): the agent's id, access key and TLS certificate. */
  get identity(): AgentIdentity | undefined {
    return this.loadedIdentity;
  }

  /** Where GET /metrics is served (--metrics-listen; port 0 resolved), if it is. */
  get metricsAddress(): { host: string; port: number } | undefined {
    const address = this.metricsServer?.address();
    if (address === null || address === undefined || typeof address === 'string') return undefined;
    return { host: address.address, port: address.port };
  }

  /** The address actually listened on (port 0 resolves here). */
  get address(): { host: string; port: number } {
    const address = this.server?.address();
    if (address === null || address === undefined || typeof address === 'string') {
      throw new MusterError('INTERNAL', 'the agent is not listening');
    }
    return { host: address.address, port: address.port };
  }

  async start(): Promise<void> {
    if (this.state !== 'created')
      throw new MusterError('INTERNAL', `cannot start an agent that is ${this.state}`);
    this.lifecycle = 'starting';
    // Task users must not read what the agent writes (leases.json, records, manifests…): what
    // they need is opened up explicitly (task-users.ts). The process-wide umask is the one way
    // to cover every file, present and future; host processes get 022 back.
    if (this.users) {
      process.umask(0o077);
      // Its task users run hosts with this Node: refuse to start if they cannot.
      const { warning } = await checkRuntimeForTaskUsers();
      if (warning !== undefined) this.log.warn(warning);
    }
    const identity = await loadOrCreateIdentity(this.options);
    this.loadedIdentity = identity;
    await this.blobs.init();
    await this.users?.init(identity.agentId);
    await this.instances.load();
    await this.leases.load();
    for (const instance of this.instances.list()) await this.versions.cleanPartial(instance);
    await this.control.start();
    if (this.options.listens) await this.listen(identity);
    if (this.options.connect !== undefined) {
      const connect = this.options.connect;
      this.outbound = new OutboundLinks({
        url: connect.url,
        joinToken: connect.joinToken,
        joinTokenFile: connect.joinTokenFile,
        dataDir: this.options.dataDir,
        agentId: identity.agentId,
        facts: await readFacts(),
        maxFrameBytes: this.options.maxFrameBytes,
        log: this.log,
        serve: (link) => this.serveOutbound(link),
      });
      await this.outbound.start();
    }
    if (this.options.metrics !== undefined) {
      const registry = agentRegistry({
        sessions: () => this.sessions.size,
        unauthenticated: () => this.gate.size,
        tasksRunning: () => this.tasks.runningCount,
        tasksKept: () => this.tasks.keptCount,
        instances: () => this.instances.list().length,
        hostProcesses: () => this.hosts.count,
      });
      this.metricsServer = await serveMetrics(
        registry,
        this.options.metrics.host,
        this.options.metrics.port,
        this.log,
      );
    }
    this.timers.push(
      setInterval(() => void this.tasks.sweep(), Math.min(60_000, this.options.taskGraceMs)),
    );
    this.timers.push(setInterval(() => void this.collect(), this.options.gcIntervalMs));
    for (const t of this.timers) t.unref();
    void this.collect();
    this.lifecycle = 'running';
  }

  /** Listens for coordinators that dial this agent (unless it only dials out). */
  private async listen(identity: AgentIdentity): Promise<void> {
    if (identity.tls) {
      const server = createTlsServer(
        {
          cert: identity.tls.cert,
          key: identity.tls.key,
          minVersion: 'TLSv1.2',
          // A TCP connection that never starts TLS, or stalls in it, is dropped after this.
          handshakeTimeout: this.options.handshakeTimeoutMs,
        },
        (socket) => this.acceptTls(socket),
      );
      // Every TCP connection passes the gate before its TLS handshake starts.
      server.on('connection', (raw: Socket) => {
        const ticket = this.admit(raw);
        if (ticket === undefined) return;
        const key = tupleKey(raw);
        this.inTlsHandshake.set(key, ticket);
        raw.once('close', () => {
          if (this.inTlsHandshake.get(key) === ticket) this.inTlsHandshake.delete(key);
        });
      });
      // A failed TLS handshake is one bad peer, not an agent problem. Node leaves the socket of
      // a timed-out handshake open when this event has a listener, so it is destroyed here.
      server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
        socket.destroy();
        this.tlsFailedLog.warn({ err: err.message });
      });
      this.server = server;
    } else {
      // No TLS: the session's handshake timer drops a peer that never says hello.
      this.server = createTcpServer((socket) => {
        const ticket = this.admit(socket);
        if (ticket !== undefined) this.accept(socket, ticket);
      });
    }
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.port, this.options.host, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  /**
   * SIGHUP (docs/operations.md, "Configuration"): takes over what can change while it runs —
   * the log level, the limits on unauthenticated connections, and the certificate of
   * --tls-cert/--tls-key read again (new connections get it; coordinators that pinned the old
   * fingerprint need the new one) — and says which other options differ and wait for a restart.
   * A certificate that cannot be read or does not match its key changes nothing and throws.
   */
  async reload(next: CompiledAgentOptions): Promise<{ applied: string[]; restart: string[] }> {
    if (this.state !== 'running')
      throw new MusterError('CONFLICT', `the agent is ${this.state}: nothing reloaded`);
    const applied: string[] = [];
    const handled = new Set<keyof CompiledAgentOptions>([
      'logLevel',
      'maxUnauthenticated',
      'maxUnauthenticatedPerAddress',
    ]);
    let tls: { cert: string; key: string; fingerprint: string } | undefined;
    const server = this.server;
    if (
      typeof next.tls === 'object' &&
      typeof this.options.tls === 'object' &&
      server instanceof TlsServer
    ) {
      handled.add('tls');
      tls = await readTlsFiles(next.tls);
      // Refuses a key that is not the certificate's before anything changes.
      createSecureContext({ cert: tls.cert, key: tls.key });
    }
    if (this.log.level !== next.logLevel) {
      this.log.level = next.logLevel;
      applied.push(`log-level ${next.logLevel}`);
    }
    const limits = this.gate.currentLimits;
    if (
      limits.maxTotal !== next.maxUnauthenticated ||
      limits.maxPerAddress !== next.maxUnauthenticatedPerAddress
    ) {
      this.gate.setLimits({
        maxTotal: next.maxUnauthenticated,
        maxPerAddress: next.maxUnauthenticatedPerAddress,
      });
      applied.push(
        `max-unauthenticated ${next.maxUnauthenticated}, per address ${next.maxUnauthenticatedPerAddress}`,
      );
    }
    const identity = this.loadedIdentity;
    if (tls !== undefined && server instanceof TlsServer && identity?.tls !== undefined) {
      if (tls.fingerprint !== identity.tls.fingerprint || tls.key !== identity.tls.key) {
        server.setSecureContext({ cert: tls.cert, key: tls.key });
        identity.tls = { ...tls, createdCert: false };
        applied.push(`TLS certificate ${tls.fingerprint}`);
      }
    }
    return { applied, restart: changedOptions(this.options, next, handled) };
  }

  /** Removes idle instances, then unused versions and blobs, now (every --gc-interval). */
  private async collect(): Promise<{ versions: number; blobs: number }> {
    await this.removeIdleInstances();
    try {
      return await collectGarbage({
        instances: this.instances.list(),
        versions: this.versions,
        blobs: this.blobs,
        hosts: this.hosts,
        pins: this.pins,
        versionPins: this.versionPins,
        tasks: this.tasks,
        versionRetentionMs: this.options.versionRetentionMs,
        blobMinAgeMs: this.options.blobRetentionMs,
        log: this.log,
        ...(this.users ? { users: this.users } : {}),
      });
    } catch (err) {
      this.log.error({ err }, 'garbage collection failed');
      return { versions: 0, blobs: 0 };
    }
  }

  private async removeIdleInstances(): Promise<void> {
    const ttl = this.options.instanceIdleTtlMs;
    if (ttl <= 0 || this.state !== 'running') return;
    for (const instance of idleInstances(this.instances.list(), ttl)) {
      try {
        await removeInstance(
          this.removal,
          instance,
          `idle (no connection, no task) for longer than --instance-idle-ttl ${formatTtl(ttl)}`,
        );
      } catch (err) {
        this.log.error({ err, instance: instance.key }, 'could not remove an idle instance');
      }
    }
  }

  private get removal(): InstanceRemovalContext {
    return { instances: this.instances, hosts: this.hosts, users: this.users, log: this.log };
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'created') {
      this.lifecycle = 'stopped';
      return;
    }
    this.lifecycle = 'draining';
    this.log.info({ running: this.tasks.runningCount }, 'draining');
    for (const t of this.timers) clearInterval(t);
    this.control.stop();
    this.outbound?.stop();
    const closed = new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.metricsServer?.close();
    this.metricsServer?.closeAllConnections();
    if (!(await this.tasks.idle(this.options.drainTimeoutMs))) {
      this.log.warn(
        { running: this.tasks.runningCount },
        'drain timeout: cancelling running tasks',
      );
      this.tasks.cancelAll();
      await this.tasks.idle(5000);
    }
    this.gate.evictAll();
    for (const session of this.sessions) session.close(new MusterError('AGENT_SHUTTING_DOWN'));
    await this.hosts.stopAll();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
    const saving = this.instances.list().map(async (instance) => {
      try {
        await instance.save();
      } catch (err) {
        this.log.warn({ err, instance: instance.key }, 'could not save an instance record');
      }
    });
    await Promise.all(saving);
    this.lifecycle = 'stopped';
    this.log.info('stopped');
  }

  /** An agent admin's request (see control.ts), logged as such. */
  private async onControl(request: ControlRequest): Promise<ControlAnswer> {
    // Whoever holds the instance or the cluster now is cut off: its next connection must claim
    // them again, and the next claim binds them.
    const evict = (matches: (session: AgentSession) => boolean): void => {
      for (const session of this.sessions)
        if (matches(session))
          session.close(new MusterError('INSTANCE_BOUND', 'an agent admin reset this binding'));
    };
    if (request.action === 'list-instances') {
      return {
        ok: true,
        message: 'the instances as they are now',
        instances: this.instances.list().map((i) => {
          const running = [...i.tasks.values()].filter((t) => t.state === 'running').length;
          return { key: i.key, connections: i.connections, running, ended: i.tasks.size - running };
        }),
      };
    }
    if (request.action === 'remove-instance') {
      const instance = this.instances.get(request.key);
      if (instance === undefined) {
        return { ok: false, message: `no instance ${request.key} (see muster agent instances)` };
      }
      const busy = inUse(instance);
      if (busy !== undefined) {
        return {
          ok: false,
          code: 'INSTANCE_IN_USE',
          message: `instance ${request.key} is in use, so it stays: ${busy}`,
        };
      }
      const hadUser = instance.record.taskUser !== null;
      await removeInstance(this.removal, instance, 'removed by an agent admin');
      return {
        ok: true,
        message: `instance ${request.key} is removed: its files, record${hadUser ? ', task user' : ''} and binding are gone`,
      };
    }
    if (request.action === 'unbind-instance') {
      const done = await this.instances.unbind(request.key);
      evict((session) => session.instanceKey === request.key);
      if (done) this.log.warn({ instance: request.key }, 'instance unbound by an agent admin');
      return done
        ? {
            ok: true,
            message: `instance ${request.key} is unbound: the next coordinator to claim it binds it`,
          }
        : { ok: false, message: `no bound instance ${request.key} (see muster agent instances)` };
    }
    const done = this.leases.reset(request.cluster);
    evict((session) => session.clusterId === request.cluster);
    await this.leases.flush();
    if (done) this.log.warn({ cluster: request.cluster }, 'cluster lease reset by an agent admin');
    return done
      ? {
          ok: true,
          message: `cluster ${request.cluster}'s lease, term and key are reset: the next coordinator to claim it binds it`,
        }
      : {
          ok: false,
          message: `this agent knows no cluster ${request.cluster} (see muster agent leases)`,
        };
  }

  /** A new TCP connection: takes its place in the gate, or is closed at once. */
  private admit(raw: Socket): GateTicket | undefined {
    const address = raw.remoteAddress;
    if (this.state !== 'running' || address === undefined) {
      raw.destroy();
      return undefined;
    }
    const admission = this.gate.admit(address, () => raw.destroy());
    if ('refused' in admission) {
      raw.destroy();
      this.refusedLog.warn({ peer: address, limit: this.gate.currentLimits.maxPerAddress });
      return undefined;
    }
    if (admission.evicted !== undefined) {
      this.evictedLog.warn({ peer: admission.evicted, limit: this.gate.currentLimits.maxTotal });
    }
    const ticket = admission.admitted;
    raw.once('close', () => ticket.release());
    return ticket;
  }

  private acceptTls(socket: TLSSocket): void {
    const key = tupleKey(socket);
    const ticket = this.inTlsHandshake.get(key);
    this.inTlsHandshake.delete(key);
    if (ticket === undefined) {
      // Dropped from the gate while its TLS handshake finished.
      socket.destroy();
      return;
    }
    socket.once('close', () => ticket.release());
    this.accept(socket, ticket);
  }

  private accept(socket: Socket, ticket: GateTicket): void {
    if (this.state !== 'running') {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.serve(socket, { onAuthenticated: () => ticket.release() });
  }

  /** A link this agent dialed (outbound.ts): the same session, with that coordinator's key. */
  private serveOutbound(link: OutboundLink): void {
    if (this.state !== 'running') {
      link.stream.destroy();
      return;
    }
    this.serve(link.stream, {
      onAuthenticated: () => undefined,
      outbound: {
        accessKeys: link.accessKeys,
        binding: link.binding,
        authenticated: (accessKey, rekeyed, holderId) =>
          link.authenticated(accessKey, rekeyed, holderId),
      },
    });
  }

  private serve(
    socket: Duplex & { remoteAddress?: string; remotePort?: number },
    how: Pick<SessionContext, 'onAuthenticated' | 'outbound'>,
  ): void {
    const session = new AgentSession(socket, {
      options: this.options,
      identity: this.loadedIdentity!,
      log: this.log,
      blobs: this.blobs,
      versions: this.versions,
      instances: this.instances,
      tasks: this.tasks,
      pins: this.pins,
      versionPins: this.versionPins,
      leases: this.leases,
      isDraining: () => this.state !== 'running',
      ...how,
      strangers: this.strangers,
      onSessionClosed: (s) => this.sessions.delete(s),
    });
    this.sessions.add(session);
  }
}

/** A TCP connection's identity while it is open: the TLS socket and its raw socket share it. */
function tupleKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}

function formatTtl(ms: number): string {
  const day = 86_400_000;
  if (ms % day === 0) return `${ms / day}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
