/**
 * The agent daemon. Lifecycle: created -> starting -> running -> draining -> stopped.
 * `start()` loads its identity and state and listens; `stop()` (idempotent) stops accepting,
 * lets running tasks finish for the drain timeout, cancels the rest, stops hosts and closes.
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { MusterError } from '../protocol/errors.js';
import { LeaseTable } from './leases.js';
import { Pins } from './pins.js';
import { BlobStore } from '../protocol/blob-store.js';
import { HostSupervisor } from './host-supervisor.js';
import { type AgentIdentity, loadOrCreateIdentity } from './identity.js';
import { InstanceRegistry } from './instances.js';
import type { CompiledAgentOptions } from './options.js';
import { AgentSession } from './session.js';
import { TaskService } from './tasks.js';
import { VersionStore } from './version-store.js';
import { collectGarbage } from './garbage-collector.js';
import { ControlRequests, type ControlAnswer, type ControlRequest } from './control.js';
import { TaskUsers } from './task-users.js';

export type AgentState = 'created' | 'starting' | 'running' | 'draining' | 'stopped';

export class Agent {
  state: AgentState = 'created';
  identity: AgentIdentity | undefined;
  private server: Server | undefined;
  private readonly sessions = new Set<AgentSession>();
  private readonly blobs: BlobStore;
  private readonly versions: VersionStore;
  private readonly instances: InstanceRegistry;
  private readonly hosts: HostSupervisor;
  private readonly tasks: TaskService;
  private readonly pins = new Pins();
  private readonly versionPins = new Pins();
  private readonly leases: LeaseTable;
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
    this.leases = new LeaseTable(options.dataDir, options.leaseTtlMs);
    this.control = new ControlRequests(options.dataDir, (request) => this.onControl(request));
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
    this.state = 'starting';
    // Task users must not read what the agent writes (leases.json, records, manifests…): what
    // they need is opened up explicitly (task-users.ts). The process-wide umask is the one way
    // to cover every file, present and future; host processes get 022 back.
    if (this.users) process.umask(0o077);
    this.identity = await loadOrCreateIdentity(this.options);
    await this.blobs.init();
    await this.users?.init(this.identity.agentId);
    await this.instances.load();
    await this.leases.load();
    for (const instance of this.instances.list()) await this.versions.cleanPartial(instance);
    await this.control.start();
    const identity = this.identity;
    const onConnection = (socket: Socket): void => this.accept(socket);
    this.server = identity.tls
      ? createTlsServer(
          { cert: identity.tls.cert, key: identity.tls.key, minVersion: 'TLSv1.2' },
          onConnection,
        )
      : createTcpServer(onConnection);
    // A failed TLS handshake is one bad peer, not an agent problem.
    this.server.on('tlsClientError', (err: Error) =>
      this.log.warn({ err: err.message }, 'TLS handshake failed'),
    );
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.port, this.options.host, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
    this.timers.push(
      setInterval(() => void this.tasks.sweep(), Math.min(60_000, this.options.taskGraceMs)),
    );
    this.timers.push(setInterval(() => void this.collect(), this.options.gcIntervalMs));
    for (const t of this.timers) t.unref();
    void this.collect();
    this.state = 'running';
  }

  /** Removes unused versions and blobs now. */
  async collect(): Promise<{ versions: number; blobs: number }> {
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

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'created') {
      this.state = 'stopped';
      return;
    }
    this.state = 'draining';
    this.log.info({ running: this.tasks.runningCount }, 'draining');
    for (const t of this.timers) clearInterval(t);
    this.control.stop();
    const closed = new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    if (!(await this.tasks.idle(this.options.drainTimeoutMs))) {
      this.log.warn(
        { running: this.tasks.runningCount },
        'drain timeout: cancelling running tasks',
      );
      this.tasks.cancelAll();
      await this.tasks.idle(5000);
    }
    for (const session of this.sessions) session.close(new MusterError('AGENT_SHUTTING_DOWN'));
    await this.hosts.stopAll();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
    await Promise.all(this.instances.list().map((i) => i.save().catch(() => undefined)));
    this.state = 'stopped';
    this.log.info('stopped');
  }

  /** An agent admin's request (see control.ts), logged as such. */
  private async onControl(request: ControlRequest): Promise<ControlAnswer> {
    if (request.action === 'unbind-instance') {
      const done = await this.instances.unbind(request.key);
      if (done) this.log.warn({ instance: request.key }, 'instance unbound by an agent admin');
      return done
        ? {
            ok: true,
            message: `instance ${request.key} is unbound: the next coordinator to claim it binds it`,
          }
        : { ok: false, message: `no bound instance ${request.key} (see muster agent instances)` };
    }
    const done = this.leases.reset(request.cluster);
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

  private accept(socket: Socket): void {
    if (this.state !== 'running') {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const session = new AgentSession(socket, {
      options: this.options,
      identity: this.identity!,
      log: this.log,
      blobs: this.blobs,
      versions: this.versions,
      instances: this.instances,
      tasks: this.tasks,
      pins: this.pins,
      versionPins: this.versionPins,
      leases: this.leases,
      isDraining: () => this.state !== 'running',
      onSessionClosed: (s) => this.sessions.delete(s),
    });
    this.sessions.add(session);
  }
}
