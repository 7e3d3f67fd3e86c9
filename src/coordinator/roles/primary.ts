/**
 * The primary: it makes sure there is an admin and an instance id (bootstrap.ts), and once the
 * server listens it takes the cluster back from its backup if that one ran it meanwhile
 * (ha/failback.ts), then connects the agents and resumes unfinished builds. Its side of high
 * availability (ha/primary-side.ts) registers backups and feeds the selected one.
 */
import { join } from 'node:path';
import { bootstrapPrimary } from '../bootstrap.js';
import type { Engine } from '../engine.js';
import { Failback } from '../ha/failback.js';
import { PeerClient } from '../ha/peer-client.js';
import { PrimarySide } from '../ha/primary-side.js';
import { Sleeper } from '../ha/sleeper.js';
import { instanceIdSetting } from '../identity.js';
import type { HaSample } from '../metrics.js';
import { createEngine, type Services } from '../services.js';
import { SupervisedLoop } from '../supervised-loop.js';
import type { Role } from './role.js';

/** How long a silent backup that ran the cluster keeps its agents from a returning primary. */
const PRESUME_BACKUP_DEAD_MS = 30_000;

export class PrimaryRole implements Role {
  readonly side: PrimarySide;
  readonly engine: Engine;
  readonly ha: Role['ha'];
  readonly haSample: HaSample;
  /**
   * Made at start(), before the engine first runs (its clock of an unreachable backup starts
   * then); until then no agent is connected, so nothing asks whether to outbid.
   */
  private failback: Failback | undefined;
  /** Asks the backup now and then whether it runs the cluster (and takes it back if so). */
  private failbackChecks: SupervisedLoop | undefined;
  private readonly checkPause = new Sleeper();

  private constructor(
    private readonly services: Services,
    readonly generatedAdminPassword: string | undefined,
  ) {
    const { store, log, options, tls } = services;
    const side = new PrimarySide(
      store,
      log,
      {
        deselectAfterMs: options.deselectAfterMs,
        joinToken: options.joinToken,
        healthyWithinMs: Math.max(options.haHeartbeatMs * 5, 5000),
        tmpDir: join(options.dataDir, 'tmp'),
        secretsKey: () => services.secretKey.exportKey(),
        certificates: () => tls.certificates?.announced() ?? [],
        // The backup's certificate as it registered it (its own root when self-signed) and
        // --peer-ca, and its fingerprint pinned.
        peerFor: (backup) =>
          new PeerClient(
            backup.url,
            () => backup.secret,
            () => ({
              ca: [backup.certificate, tls.peerCa].filter((c) => c != null).join('\n') || undefined,
              fingerprint: backup.fingerprint ?? undefined,
            }),
          ),
      },
      () => instanceIdSetting(store),
    );
    this.side = side;
    this.engine = createEngine(services, {
      // A primary takes an agent its backup last held only once it knows the backup has nothing
      // to hand back, or the backup has been silent for 30 s (see Failback.mayOutbid).
      mayOutbid: () => this.failback?.mayOutbid(PRESUME_BACKUP_DEAD_MS) ?? true,
      deferRelease: (release) => side.deferRelease(release),
    });
    this.ha = { primary: side, backup: undefined };
    this.haSample = {
      // The selected backup (and any owed its history): names anyone may register stay off
      // this page, which needs no login.
      backups: () => {
        const trusted = new Set(side.trusted().map((b) => b.name));
        return side.list().filter((b) => trusted.has(b.name));
      },
      replication: () => undefined,
    };
  }

  /** A primary's first start makes its admin and instance id (a backup gets them replicated). */
  static async open(services: Services): Promise<PrimaryRole> {
    const password = await bootstrapPrimary(services.store, services.options);
    return new PrimaryRole(services, password);
  }

  role(): 'primary' {
    return 'primary';
  }

  term(): number {
    return this.side.term();
  }

  ready(): boolean {
    return true;
  }

  logFields(): Record<string, unknown> {
    return { instanceId: instanceIdSetting(this.services.store) };
  }

  async start(): Promise<void> {
    const { store, blobs, log, options } = this.services;
    this.side.start();
    const failback = new Failback(store, blobs, this.engine, this.side, log, options.tokenTtlMs);
    this.failback = failback;
    // Before running anything: if the backup ran the cluster meanwhile, take it back first.
    await failback.check(Math.min(options.haHeartbeatMs * 3, 5000));
    // A stop that came meanwhile (quiesce) wins: nothing more is started on a closing store.
    if (this.checkPause.stopped) return;
    if (!this.engine.running) {
      this.engine.startPool(this.side.term());
      this.engine.startScheduler();
    }
    const pause = this.checkPause;
    this.failbackChecks = new SupervisedLoop(
      'failback check',
      async () => {
        while (!pause.stopped) {
          await pause.sleep(options.haHeartbeatMs);
          if (pause.stopped) return;
          await failback.check(Math.max(options.haHeartbeatMs * 2, 2000));
        }
      },
      { log },
    ).start();
  }

  quiesce(): void {
    this.checkPause.stop();
    // The backup's long poll returns at once instead of holding the server's close.
    this.side.stop();
  }

  async stop(): Promise<void> {
    // A failback under way ends before the engine it hands agents to stops.
    await this.failbackChecks?.stop();
    await this.engine.stop(false);
  }
}
