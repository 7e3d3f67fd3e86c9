/**
 * A backup (--backup-of): it stands by, copying its primary's state, and takes the cluster over
 * only when the primary is unreachable; all of that is its side of high availability
 * (ha/backup-side.ts), which starts and stops the engine. Its users, settings and instance id
 * come from its primary.
 */
import type { StatusView } from '../../api/views/status.js';
import type { Engine } from '../engine.js';
import { BackupSide } from '../ha/backup-side.js';
import type { HaSample } from '../metrics.js';
import { createEngine, type Services } from '../services.js';
import type { Role } from './role.js';

export class BackupRole implements Role {
  readonly side: BackupSide;
  readonly engine: Engine;
  readonly generatedAdminPassword = undefined;
  readonly ha: Role['ha'];
  readonly haSample: HaSample;

  private readonly primaryUrl: string | undefined;

  constructor(
    services: Services,
    /** Where the primary and clients reach this backup: --advertise-url, else where it listens. */
    advertisedUrl: () => string,
  ) {
    const { store, blobs, log, options, tls } = services;
    // A backup outbids a lease whenever it may connect at all, and releases at once.
    this.engine = createEngine(services, { mayOutbid: () => true });
    const side = new BackupSide(store, blobs, this.engine, log, {
      primaryUrl: options.backupOf ?? '',
      name: options.backupName,
      url: advertisedUrl,
      fingerprint: tls.fingerprint,
      certificate: tls.certificate,
      primaryCa: tls.peerCa,
      joinToken: options.joinToken,
      failoverTimeoutMs: options.failoverTimeoutMs,
      heartbeatMs: options.haHeartbeatMs,
      dataDir: options.dataDir,
      secretKey: services.secretKey,
    });
    this.side = side;
    this.ha = { primary: undefined, backup: side };
    this.haSample = {
      backups: () => [],
      replication: () => ({
        failing: side.replicationError !== undefined,
        lagSeconds: side.statusView().lagSeconds,
      }),
    };
    this.primaryUrl = options.backupOf;
  }

  role(): StatusView['role'] {
    return this.side.role;
  }

  term(): number {
    return this.side.term();
  }

  ready(): boolean {
    return this.side.hasState;
  }

  logFields(): Record<string, unknown> {
    return { primary: this.primaryUrl };
  }

  async start(): Promise<void> {
    await this.side.start();
  }

  quiesce(): void {}

  async stop(): Promise<void> {
    await this.side.stop();
    await this.engine.stop(false);
  }
}
