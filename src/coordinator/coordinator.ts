/**
 * The coordinator daemon. Lifecycle: created -> starting -> running -> stopping -> stopped.
 * start() opens the store (migrating it); a primary makes sure there is an admin and an
 * instance id, listens, takes the cluster back from its backup if that one ran it meanwhile,
 * then connects the agents and resumes unfinished builds. A backup (--backup-of) listens and
 * stands by: it copies its primary's state and takes over only when the primary is unreachable
 * (ha/backup-side.ts). stop() is idempotent and ordered: stop accepting requests, stop the
 * high-availability loops, stop scheduling, drop agent connections (tasks keep running on the
 * agents and are re-attached at the next start), close the store.
 */
import { createPublicKey, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BlobStore } from '../common/blob-store.js';
import { certificateFingerprint, readConfigFile } from '../common/config-file.js';
import { MusterError } from '../protocol/errors.js';
import { writeAtomic } from '../common/atomic-file.js';
import type { ApiContext } from './api/context.js';
import { buildServer } from './api/server.js';
import type { StatusView } from '../api/views/status.js';
import { generatePassword, hashPassword } from './auth/passwords.js';
import { BlobSweeper } from './blob-sweeper.js';
import { BundleManager } from './bundles.js';
import { restrictFiles, secureDataDir } from './data-dir.js';
import { EventBus, type CoordinatorEventMap } from './events.js';
import { Metrics } from './metrics.js';
import type { CompiledCoordinatorOptions } from './options.js';
import { Engine } from './engine.js';
import { BackupSide } from './ha/backup-side.js';
import { Failback } from './ha/failback.js';
import { PeerClient } from './ha/peer-client.js';
import { PrimarySide } from './ha/primary-side.js';
import { CertificateManager } from './tls/certificate-manager.js';
import { ensureGeneratedCertificate } from './tls/generated-certificate.js';
import { openSqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { MUSTER_VERSION } from '../common/version.js';
import { instanceKeyFingerprint, newInstanceKey } from '../protocol/handshake.js';
import { loadOrCreateHolderId } from './holder-id.js';

export type CoordinatorState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export const PRODUCT = 'muster';
/** How long a silent backup that ran the cluster keeps its agents from a returning primary. */
const PRESUME_BACKUP_DEAD_MS = 30_000;
export const INSTANCE_ID_SETTING = 'Agent.InstanceId';
/**
 * The private key (Ed25519, PEM) that binds this coordinator's instance (and cluster) on every
 * agent. Replicated to the selected backup like the other settings; never shown by the API.
 */
export const INSTANCE_KEY_SETTING = 'Agent.InstanceKey';

/**
 * The cluster id of a coordinator without an instance id: from its instance key, which its
 * backup shares (replicated), so both still work under one lease.
 */
function keyClusterId(instanceKeyPem: string): string {
  try {
    const spki = createPublicKey(instanceKeyPem).export({ format: 'der', type: 'spki' });
    return `key-${instanceKeyFingerprint(spki.toString('base64')).slice('sha256:'.length)}`;
  } catch {
    return 'key-unknown'; // No key: its claims fail anyway (INSTANCE_CLAIM_INVALID).
  }
}

function stringSetting(store: Store, key: string): string {
  const value = store.getSetting(key);
  return typeof value === 'string' ? value : '';
}

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
  state: CoordinatorState = 'created';
  private store: Store | undefined;
  private app: FastifyInstance | undefined;
  private engine: Engine | undefined;
  private primarySide: PrimarySide | undefined;
  private backupSide: BackupSide | undefined;
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
    const isBackup = options.backupOf !== undefined;
    await secureDataDir(options.dataDir);
    const store = openSqliteStore(join(options.dataDir, 'muster.db'));
    this.store = store;
    // SQLite makes muster.db (and its -wal, -shm) with the umask's mode on a first start.
    await restrictFiles(options.dataDir);
    // A backup's users, settings and instance id all come from its primary.
    const generatedAdminPassword = isBackup ? undefined : await this.bootstrap(store);
    const blobs = new BlobStore(join(options.dataDir, 'blobs'));
    await blobs.init();
    const uploads = new BlobSweeper(
      store,
      blobs,
      {
        quotaBytes: options.uploadQuotaBytes,
        perUserQuotaBytes: options.uploadQuotaPerUserBytes,
        retentionMs: options.blobRetentionMs,
      },
      log,
    );
    const events = new EventBus();
    const bundles = new BundleManager(store, blobs, {
      hostDir: options.hostDir,
      label: `${PRODUCT} ${MUSTER_VERSION}`,
    });
    const holderId = await loadOrCreateHolderId(options.dataDir);
    const identity = () => {
      const instanceKey = stringSetting(store, INSTANCE_KEY_SETTING);
      // Cleared (""): agents key this coordinator by its address.
      const instanceId = stringSetting(store, INSTANCE_ID_SETTING) || undefined;
      return {
        product: PRODUCT,
        productVersion: MUSTER_VERSION,
        instanceId,
        clusterId: instanceId ?? keyClusterId(instanceKey),
        instanceKey,
        holderId,
      };
    };
    /** What the API and the primary's heartbeat show: "" when the id is cleared. */
    const instanceIdSetting = () => stringSetting(store, INSTANCE_ID_SETTING);
    let failback: Failback | undefined;
    const engine = new Engine({
      store,
      blobs,
      events,
      log,
      identity,
      bundle: () => bundles.get(),
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      agentLossGraceMs: options.agentLossGraceMs,
      // A primary takes an agent its backup last held only once it knows the backup has nothing
      // to hand back, or the backup has been silent for 30 s (see Failback.mayOutbid).
      mayOutbid: () => !failback || failback.mayOutbid(PRESUME_BACKUP_DEAD_MS),
      onTermHeld: (term) => {
        if (term > store.ha.term()) store.ha.setTerm(term);
      },
      deferRelease: (release) => {
        if (this.primarySide) this.primarySide.deferRelease(release);
        else release();
      },
    });
    this.engine = engine;
    const metrics = new Metrics({
      agentsByStatus: () => {
        const counts: Record<string, number> = {};
        for (const agent of engine.pool.snapshots())
          counts[agent.status] = (counts[agent.status] ?? 0) + 1;
        return counts;
      },
      runningAttempts: () => engine.runningCount,
      ha: {
        // The selected backup (and any owed its history): names anyone may register stay off
        // this page, which needs no login.
        backups: () => {
          const side = this.primarySide;
          if (!side) return [];
          const trusted = new Set(side.trusted().map((b) => b.name));
          return side.list().filter((b) => trusted.has(b.name));
        },
        replication: () => {
          const side = this.backupSide;
          if (!side) return undefined;
          return {
            failing: side.replicationError !== undefined,
            lagSeconds: side.statusView().lagSeconds,
          };
        },
      },
    });
    events.subscribe((event, data) => {
      if (event !== 'build') return;
      const status = (data as CoordinatorEventMap['build']).build.status;
      if (status === 'succeeded' || status === 'failed' || status === 'cancelled')
        metrics.buildsFinished.inc({ status });
    });
    const createdCertificate =
      options.tls && options.tls.generated
        ? await ensureGeneratedCertificate(options.tls, options.host)
        : false;
    const certificate = options.tls
      ? await readConfigFile(options.tls.certFile, '--tls-cert')
      : null;
    const fingerprint = certificate ? certificateFingerprint(certificate, '--tls-cert') : null;
    const certificates =
      options.tls && certificate
        ? CertificateManager.load(options.tls, certificate, log)
        : undefined;
    const peerCa =
      options.peerCaFile === undefined
        ? undefined
        : await readConfigFile(options.peerCaFile, '--peer-ca');
    if (peerCa !== undefined) certificateFingerprint(peerCa, '--peer-ca');
    const primarySide = isBackup
      ? undefined
      : new PrimarySide(
          store,
          log,
          {
            deselectAfterMs: options.deselectAfterMs,
            joinToken: options.joinToken,
            healthyWithinMs: Math.max(options.haHeartbeatMs * 5, 5000),
            tmpDir: join(options.dataDir, 'tmp'),
            certificates: () => certificates?.announced() ?? [],
            // The backup's certificate as it registered it (its own root when self-signed) and
            // --peer-ca, and its fingerprint pinned.
            peerFor: (backup) =>
              new PeerClient(
                backup.url,
                () => backup.secret,
                () => ({
                  ca: [backup.certificate, peerCa].filter((c) => c != null).join('\n') || undefined,
                  fingerprint: backup.fingerprint ?? undefined,
                }),
              ),
          },
          instanceIdSetting,
        );
    this.primarySide = primarySide;
    const backupSide = isBackup
      ? new BackupSide(store, blobs, engine, log, {
          primaryUrl: options.backupOf ?? '',
          name: options.backupName,
          url: () => this.advertisedUrl(),
          fingerprint,
          certificate,
          primaryCa: peerCa,
          joinToken: options.joinToken,
          failoverTimeoutMs: options.failoverTimeoutMs,
          heartbeatMs: options.haHeartbeatMs,
          dataDir: options.dataDir,
        })
      : undefined;
    this.backupSide = backupSide;
    const ctx: ApiContext = {
      store,
      get pool() {
        return engine.pool;
      },
      scheduler: engine,
      blobs,
      uploads,
      events,
      bundles,
      metrics,
      options,
      version: MUSTER_VERSION,
      role: (): StatusView['role'] => backupSide?.role ?? 'primary',
      ha: { primary: primarySide, backup: backupSide },
      term: () => backupSide?.term() ?? primarySide?.term() ?? 1,
      instanceId: instanceIdSetting,
      // A backup is ready once it holds a copy of its primary's state (users included).
      isReady: () => this.state === 'running' && (!backupSide || backupSide.hasState),
      certificates,
    };
    this.app = buildServer(ctx, log, (key) => {
      if (key === INSTANCE_ID_SETTING && engine.running) engine.pool.reconnectAll();
    });
    await bundles.get();
    await this.app.listen({ host: options.host, port: options.port });
    if (primarySide) {
      primarySide.start();
      failback = new Failback(store, blobs, engine, primarySide, log, options.tokenTtlMs);
      // Before running anything: if the backup ran the cluster meanwhile, take it back first.
      await failback.check(Math.min(options.haHeartbeatMs * 3, 5000));
      if (!engine.running) {
        engine.startPool(primarySide.term());
        engine.startScheduler();
      }
      const check = failback;
      const timer = setInterval(
        () => void check.check(Math.max(options.haHeartbeatMs * 2, 2000)),
        options.haHeartbeatMs,
      );
      timer.unref();
      this.timers.push(timer);
    }
    this.state = 'running';
    if (backupSide) await backupSide.start();
    const sweep = setInterval(() => store.deleteExpiredTokens(new Date().toISOString()), 3_600_000);
    sweep.unref();
    this.timers.push(sweep);
    // The first blob sweep counts what is unreferenced now (the quota starts from it); then one
    // every half retention (at most every 10 minutes).
    const sweepBlobs = (): void =>
      void uploads.sweep().catch((err: unknown) => log.warn({ err }, 'sweeping blobs failed'));
    sweepBlobs();
    const blobSweep = setInterval(
      sweepBlobs,
      Math.min(600_000, Math.max(1000, Math.floor(options.blobRetentionMs / 2))),
    );
    blobSweep.unref();
    this.timers.push(blobSweep);
    const url = this.listenUrl();
    log.info(
      {
        url,
        version: MUSTER_VERSION,
        dataDir: options.dataDir,
        role: ctx.role(),
        tls: options.tls !== false,
        ...(options.tls
          ? { fingerprint: certificates?.fingerprint, certFile: options.tls.certFile }
          : { plainHttp: options.plainHttp }),
        ...(isBackup ? { primary: options.backupOf } : { instanceId: instanceIdSetting() }),
      },
      'listening',
    );
    return {
      url,
      generatedAdminPassword,
      fingerprint: certificates?.fingerprint ?? null,
      createdCertificate,
    };
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
    // First: the backup's long poll returns at once instead of holding the server's close.
    this.primarySide?.stop();
    await this.app?.close().catch((err: unknown) => this.log.warn({ err }, 'closing the server'));
    await this.backupSide?.stop();
    await this.engine?.stop(false);
    this.store?.close();
    this.state = 'stopped';
    this.log.info('stopped');
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

  /** First start: the admin user and this coordinator's instance id and key. */
  private async bootstrap(store: Store): Promise<string | undefined> {
    if (store.getSetting(INSTANCE_ID_SETTING) === undefined)
      store.setSetting(INSTANCE_ID_SETTING, randomUUID());
    if (store.getSetting(INSTANCE_KEY_SETTING) === undefined)
      store.setSetting(INSTANCE_KEY_SETTING, newInstanceKey());
    if (store.listUsers().length > 0) return undefined;
    const given = process.env.MUSTER_ADMIN_PASSWORD;
    const password = given !== undefined && given !== '' ? given : generatePassword();
    store.createUser(
      'admin',
      'admin',
      await hashPassword(password, { log2N: this.options.passwordCost }),
    );
    if (given !== undefined && given !== '') return undefined;
    await writeAtomic(join(this.options.dataDir, 'admin-password'), `${password}\n`, 0o600);
    return password;
  }
}
