/**
 * The coordinator daemon, and the one place it is wired: options, data dir, store, what every
 * role shares (services.ts), then one role (roles/primary.ts, or roles/backup.ts with
 * --backup-of), the metrics and the API server around them.
 *
 * Lifecycle (STATE_MOVES): created -> starting -> running -> stopping -> stopped; a stop before
 * any start goes straight to stopped, and a stop during the start wins (the start does not move
 * to running). start() opens the store (migrating it), builds the server and listens, then starts
 * the role. stop() is idempotent and ordered: stop accepting requests (the role quiesces first,
 * so no long poll holds the close), stop the role's loops and scheduling, drop agent connections
 * (tasks keep running on the agents and are re-attached at the next start), close the store.
 */
import type { Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { changedOptions } from '../common/options-diff.js';
import { MUSTER_VERSION } from '../common/version.js';
import { hashPassword } from './auth/passwords.js';
import { MusterError } from '../protocol/errors.js';
import type { ApiContext } from './api/context.js';
import { buildServer } from './api/server.js';
import { clusterPeers } from './pool/cluster-peers.js';
import { OutboundAgents } from './pool/outbound-agents.js';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Builds } from './builds/builds.js';
import { CompileSessions, capacityAgents } from './compile/sessions.js';
import { restrictFiles, secureDataDir } from './data-dir.js';
import { BuildRetention } from './builds/retention.js';
import { DiskUsage } from './disk-usage.js';
import { Housekeeping } from './housekeeping.js';
import { INSTANCE_ID_SETTING, instanceIdSetting } from './identity.js';
import { isEvent } from './events.js';
import { Metrics } from './metrics.js';
import type { CompiledCoordinatorOptions } from './options.js';
import { BackupRole } from './roles/backup.js';
import { PrimaryRole } from './roles/primary.js';
import type { Role } from './roles/role.js';
import { createServices, type Services } from './services.js';
import { openSqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { backupConfirmWaitMs, type CertificateManager } from './tls/certificate-manager.js';

export type CoordinatorState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/** The moves the lifecycle allows; anything else is a bug (INTERNAL). */
const STATE_MOVES: Record<CoordinatorState, readonly CoordinatorState[]> = {
  created: ['starting', 'stopped'],
  starting: ['running', 'stopping'],
  running: ['stopping'],
  stopping: ['stopped'],
  stopped: [],
};

export interface StartedInfo {
  url: string;
  /** Set when the admin password was generated on this start: print it once. */
  generatedAdminPassword: string | undefined;
  /** The served certificate's SHA-256 fingerprint; null over plain HTTP. */
  fingerprint: string | null;
  /** Set when the self-signed certificate was made on this start (no --tls-cert given). */
  createdCertificate: boolean;
}

export class Coordinator {
  private current: CoordinatorState = 'created';
  private store: Store | undefined;
  private app: FastifyInstance | undefined;
  private role: Role | undefined;
  private services: Services | undefined;
  private outbound: OutboundAgents | undefined;
  private housekeeping: Housekeeping | undefined;
  private compile: CompileSessions | undefined;
  private stopping: Promise<void> | undefined;
  /** The served certificate (HTTPS only), for a SIGHUP's reload. */
  private certificates: CertificateManager | undefined;

  constructor(
    readonly options: CompiledCoordinatorOptions,
    private readonly log: Logger,
  ) {}

  get state(): CoordinatorState {
    return this.current;
  }

  get address(): { host: string; port: number } {
    const address = this.app?.server.address();
    if (!address || typeof address === 'string')
      throw new MusterError('INTERNAL', 'the coordinator is not listening');
    return { host: address.address, port: address.port };
  }

  async start(): Promise<StartedInfo> {
    if (this.current !== 'created')
      throw new MusterError('INTERNAL', `cannot start a coordinator that is ${this.current}`);
    this.moveTo('starting');
    const { options, log } = this;
    await secureDataDir(options.dataDir);
    const store = openSqliteStore(join(options.dataDir, 'muster.db'));
    this.store = store;
    // SQLite makes muster.db (and its -wal, -shm) with the umask's mode on a first start.
    await restrictFiles(options.dataDir);
    const services = await createServices(options, log, store);
    this.services = services;
    const role =
      options.backupOf === undefined
        ? await PrimaryRole.open(services)
        : new BackupRole(services, () => this.advertisedUrl());
    this.role = role;
    const compile = new CompileSessions({
      store,
      builds: role.engine,
      blobs: services.blobs,
      uploads: services.uploads,
      events: services.events,
      agents: () => capacityAgents(role.engine.pool.snapshots()),
      writes: () => role.role() !== 'backup-standby',
      log,
      idleTimeoutMs: options.compileIdleTimeoutMs,
    });
    this.compile = compile;
    const app = buildServer(this.apiContext(services, role, compile), log, (key) => {
      if (key === INSTANCE_ID_SETTING && role.engine.running) role.engine.pool.reconnectAll();
    });
    this.app = app;
    const outbound = new OutboundAgents({
      store,
      pool: () => (role.engine.running ? role.engine.pool : undefined),
      peers: () => clusterPeers(store, options.backupOf),
      log,
    });
    this.outbound = outbound;
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      outbound.handleUpgrade(req, socket, head),
    );
    await services.bundles.get();
    await app.listen({ host: options.host, port: options.port });
    await role.start();
    // A stop that came meanwhile wins: it has stopped (or is stopping) what was started.
    if (this.stopping === undefined) {
      this.moveTo('running');
      const retention = new BuildRetention(store, log);
      this.housekeeping = new Housekeeping(
        store,
        services.uploads,
        options.blobRetentionMs,
        log,
        () => role.role() !== 'backup-standby',
        {
          retentionMs: options.toolchainRetentionMs,
          // Agents get a bundle without them.
          removed: () =>
            void services.bundles
              .get()
              .then(() => role.engine.pool.resyncAll())
              .catch((err: unknown) => log.warn({ err }, 'could not resync agents')),
        },
        {
          pass: (keepGoing) => retention.pass(keepGoing),
          // Not a backup, also while it runs the cluster: its deletions would not be handed back.
          applies: () => role.role() === 'primary',
        },
      );
      this.housekeeping.start();
      compile.start();
    }
    const url = this.listenUrl();
    const { certificates, createdCertificate } = services.tls;
    this.certificates = certificates;
    log.info(
      {
        url,
        version: MUSTER_VERSION,
        dataDir: options.dataDir,
        role: role.role(),
        tls: options.tls !== false,
        ...(options.tls
          ? { fingerprint: certificates?.fingerprint, certFile: options.tls.certFile }
          : { plainHttp: options.plainHttp }),
        ...role.logFields(),
      },
      'listening',
    );
    return {
      url,
      generatedAdminPassword: role.generatedAdminPassword,
      fingerprint: certificates?.fingerprint ?? null,
      createdCertificate,
    };
  }

  /**
   * SIGHUP (docs/operations.md, "Configuration"): the log level, the upload quotas, and the
   * certificate of --tls-cert/--tls-key read again (checked as an upload is and announced to the selected
   * backup first: certificate-manager.ts), change now; the other options that differ wait for a
   * restart, and are named. A certificate that does not check changes nothing and throws.
   */
  async reload(
    next: CompiledCoordinatorOptions,
  ): Promise<{ applied: string[]; restart: string[] }> {
    if (this.current !== 'running')
      throw new MusterError('CONFLICT', `the coordinator is ${this.current}: nothing reloaded`);
    const applied: string[] = [];
    const handled = new Set<keyof CompiledCoordinatorOptions>(['logLevel']);
    const { app, role } = this;
    const certificates = this.certificates;
    const running = this.options.tls;
    if (
      certificates !== undefined &&
      app !== undefined &&
      role !== undefined &&
      running !== false &&
      next.tls !== false &&
      next.tls.certFile === running.certFile &&
      next.tls.keyFile === running.keyFile
    ) {
      handled.add('tls');
      const waitMs = backupConfirmWaitMs(this.options.haHeartbeatMs);
      const reloaded = await certificates.reloadFiles(reloadHostnames(this.options), {
        confirmBackup: async (fingerprint) =>
          (await role.ha.primary?.awaitPin(fingerprint, waitMs)) ?? null,
        swap: (cert, key) => (app.server as unknown as HttpsServer).setSecureContext({ cert, key }),
      });
      if (reloaded !== undefined) {
        applied.push(`TLS certificate ${reloaded.certificate.fingerprint256}`);
        // A standby backup's store is its primary's copy: it records nothing of its own.
        if (role.role() !== 'backup-standby')
          this.store?.audit.record({
            actor: 'system',
            actorKind: 'system',
            ip: null,
            action: 'certificate.reload',
            target: 'coordinator',
            details: { fingerprint: reloaded.certificate.fingerprint256, by: 'SIGHUP' },
          });
      }
    }
    if (this.log.level !== next.logLevel) {
      this.log.level = next.logLevel;
      applied.push(`log-level ${next.logLevel}`);
    }
    const uploads = this.services?.uploads;
    if (uploads !== undefined) {
      handled.add('uploadQuotaBytes');
      handled.add('uploadQuotaPerUserBytes');
      const { quotaBytes, perUserQuotaBytes } = uploads.options;
      if (
        quotaBytes !== next.uploadQuotaBytes ||
        perUserQuotaBytes !== next.uploadQuotaPerUserBytes
      ) {
        uploads.setQuotas({
          quotaBytes: next.uploadQuotaBytes,
          perUserQuotaBytes: next.uploadQuotaPerUserBytes,
        });
        applied.push(
          `upload-quota ${next.uploadQuotaBytes}, per user ${next.uploadQuotaPerUserBytes}`,
        );
      }
    }
    return { applied, restart: changedOptions(this.options, next, handled) };
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.current === 'created') {
      this.moveTo('stopped');
      return;
    }
    this.moveTo('stopping');
    this.housekeeping?.stop();
    await this.compile?.stop();
    this.role?.quiesce();
    this.outbound?.stop();
    await this.app?.close().catch((err: unknown) => this.log.warn({ err }, 'closing the server'));
    await this.role?.stop();
    this.store?.close();
    this.moveTo('stopped');
    this.log.info('stopped');
  }

  private moveTo(next: CoordinatorState): void {
    if (!STATE_MOVES[this.current].includes(next))
      throw new MusterError('INTERNAL', `a coordinator cannot go from ${this.current} to ${next}`);
    this.current = next;
  }

  /** What the API's routes see of this coordinator. */
  private apiContext(services: Services, role: Role, compile: CompileSessions): ApiContext {
    const { store, blobs, uploads, events, bundles, options, tls, secrets } = services;
    const engine = role.engine;
    const disk = new DiskUsage(options.dataDir, () => uploads.storedBytes());
    const metrics = new Metrics({
      agentsByStatus: () => {
        const counts: Record<string, number> = {};
        for (const agent of engine.pool.snapshots())
          counts[agent.status] = (counts[agent.status] ?? 0) + 1;
        return counts;
      },
      runningAttempts: () => engine.runningCount,
      queuedTasks: () => engine.queuedCount,
      activeBuilds: () => engine.activeBuilds,
      cache: () => store.cache.totals(),
      disk: () => disk.sample(),
      ha: role.haSample,
    });
    events.subscribe((event, data) => {
      if (!isEvent('build', event, data)) return;
      const status = data.build.status;
      if (status === 'succeeded' || status === 'failed' || status === 'cancelled')
        metrics.buildsFinished.inc({ status });
    });
    return {
      store,
      // While the engine is stopped, the registered agents as they are in the store.
      get agents() {
        return engine.pool;
      },
      builds: new Builds({
        store,
        blobs,
        uploads,
        secrets,
        scheduler: engine,
        onSubmitted: () => metrics.buildsSubmitted.inc(),
      }),
      secrets,
      compile,
      scheduler: engine,
      blobs,
      uploads,
      events,
      bundles,
      metrics,
      options,
      hashPassword: (password) => hashPassword(password, { log2N: options.passwordCost }),
      version: MUSTER_VERSION,
      ha: {
        role: () => role.role(),
        term: () => role.term(),
        primary: role.ha.primary,
        backup: role.ha.backup,
      },
      instanceId: () => instanceIdSetting(store),
      // A backup is ready once it holds a copy of its primary's state (users included).
      isReady: () => this.current === 'running' && role.ready(),
      certificates: tls.certificates,
    };
  }

  private listenUrl(): string {
    const { host, port } = this.address;
    return `${this.options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** The URL a backup gives its primary: --advertise-url, else its listen address. */
  private advertisedUrl(): string {
    if (this.options.advertiseUrl) return this.options.advertiseUrl;
    const { host, port } = this.address;
    const name = host === '0.0.0.0' || host === '::' ? hostname() : host;
    return `${this.options.tls ? 'https' : 'http'}://${name.includes(':') ? `[${name}]` : name}:${port}`;
  }
}

/**
 * The names a certificate reloaded at SIGHUP must cover: the host of --advertise-url, and the
 * --listen host unless it is a wildcard (an upload is checked against the Host header instead).
 */
function reloadHostnames(options: CompiledCoordinatorOptions): string[] {
  const names = new Set<string>();
  if (options.advertiseUrl !== undefined) names.add(new URL(options.advertiseUrl).hostname);
  const host = options.host.replace(/^\[(.*)\]$/, '$1');
  if (host !== '' && host !== '0.0.0.0' && host !== '::') names.add(host);
  return [...names].map((n) => n.replace(/^\[(.*)\]$/, '$1'));
}
