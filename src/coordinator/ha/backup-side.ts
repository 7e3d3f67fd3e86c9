/**
 * A backup's half of high availability: it watches its primary (registration and heartbeat),
 * takes over when the primary has been unreachable for the failover timeout, and hands the
 * history back when the primary returns. Its states and the moves between them are in
 * backup-states.ts; every change of state goes through transition(). The parts it composes:
 * its identity file (identity-file.ts), the primary's pinned certificates (primary-pins.ts) and
 * the copy of the primary's state it keeps while standing by and selected (replicator.ts).
 */
import type { Logger } from 'pino';
import type { BlobStore } from '../../common/blob-store.js';
import { MusterError, toMusterError } from '../../protocol/errors.js';
import type { StatusView } from '../../api/views/status.js';
import { sameSecret } from '../auth/passwords.js';
import { type TakeoverRecord } from '../store/ha-state.js';
import { LOCAL_TOKEN_BASE } from '../store/replication.js';
import type { Store } from '../store/store.js';
import { MAX_REPORTED_ERROR } from './backup-health.js';
import { nextBackupState, type BackupEvent, type BackupState } from './backup-states.js';
import type { EnginePort } from './engine-port.js';
import { IdentityFile } from './identity-file.js';
import { PeerClient, type PeerTls } from './peer-client.js';
import { PrimaryPins } from './primary-pins.js';
import type { HeartbeatView } from './primary-side.js';
import { Replicator, type SecretsKeyHolder } from './replicator.js';
import { Sleeper } from './sleeper.js';
import { SupervisedLoop } from '../supervised-loop.js';

export interface BackupSideOptions {
  primaryUrl: string;
  name: string;
  /** Where the primary and clients reach this backup (its own base URL). */
  url: () => string;
  fingerprint: string | null;
  certificate: string | null;
  /** Extra trusted certificate for the primary (PEM), e.g. its self-signed one. */
  primaryCa: string | undefined;
  joinToken: string | undefined;
  failoverTimeoutMs: number;
  heartbeatMs: number;
  dataDir: string;
  /** Where the primary's secrets key is kept once received (see replicator.ts). */
  secretKey?: SecretsKeyHolder;
  /** Makes the client for calling the primary (a PeerClient unless given). */
  connect?: (
    url: string,
    secret: () => string,
    tls: () => PeerTls,
    headers: Record<string, string>,
  ) => PeerClient;
}

/** Answers that mean the primary is up but will not talk to this backup as it is. */
const REFUSALS = new Set([
  'TLS_FINGERPRINT_MISMATCH',
  'UNAUTHORIZED',
  'CONFLICT',
  'VALIDATION_FAILED',
]);

/** A backup leaves this many build ids free for builds its primary accepted just before dying. */
export const BUILD_ID_GAP = 1000;

/** A transition's log line (the messages users alert on: docs/high-availability.md). */
interface TransitionLog {
  level: 'info' | 'warn';
  msg: string;
  fields?: Record<string, unknown>;
}

export class BackupSide {
  private current: BackupState = 'standby';
  private isSelected = false;
  private reachable = false;
  private lastContact: number | undefined;
  private activeAt: string | undefined;
  private readonly identity: IdentityFile;
  private readonly pins: PrimaryPins;
  private peer!: PeerClient;
  private replicator!: Replicator;
  private readonly sleeper = new Sleeper();
  private readonly startedAt = Date.now();
  /** How the primary last judged this backup (its heartbeat answer). */
  private seenByPrimary: NonNullable<StatusView['primary']>['seenByPrimary'] = null;
  private loops: SupervisedLoop[] = [];
  private takeoverStartedAt = 0;
  private lastFailureLog = 0;
  private lastRefusalLog = 0;
  private handbackStartedAt = 0;
  /** The takeover record before this attempt (restored when the attempt is abandoned). */
  private previousTakeover: TakeoverRecord | undefined;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly engine: EnginePort,
    private readonly log: Logger,
    private readonly options: BackupSideOptions,
  ) {
    this.identity = new IdentityFile(options.dataDir);
    this.pins = new PrimaryPins(this.identity, options.primaryCa, log);
  }

  get state(): BackupState {
    return this.current;
  }

  /** Whether the primary last said this backup is the selected one. */
  get selected(): boolean {
    return this.isSelected;
  }

  /** Whether the primary answered the last heartbeat. */
  get primaryReachable(): boolean {
    return this.reachable;
  }

  /** When the primary last answered (ms since the epoch), or counted as up. */
  get lastPrimaryContact(): number | undefined {
    return this.lastContact;
  }

  /** Since when this backup runs the cluster (ISO), kept until a failback completes. */
  get activeSince(): string | undefined {
    return this.activeAt;
  }

  get role(): StatusView['role'] {
    return this.current === 'active' ? 'backup-active' : 'backup-standby';
  }

  /** Whether this backup holds a copy of its primary's state (it may take over). */
  get hasState(): boolean {
    return this.store.replication.position().at !== null;
  }

  get secret(): string {
    return this.identity.value.secret;
  }

  async start(): Promise<void> {
    const identity = await this.identity.load(this.options.name, this.options.primaryUrl);
    this.store.replication.reserveIds('api_tokens', LOCAL_TOKEN_BASE);
    // Until the primary says otherwise: what it said last (a backup deselected while it was
    // away from the primary would otherwise still think it is selected).
    this.isSelected = identity.selected ?? false;
    const connect =
      this.options.connect ??
      ((url, secret, tls, headers) => new PeerClient(url, secret, tls, headers));
    this.peer = connect(
      this.options.primaryUrl,
      () => this.identity.value.secret,
      () => this.pins.tls(),
      { 'x-muster-backup': identity.name },
    );
    this.replicator = new Replicator(
      this.store,
      this.blobs,
      this.peer,
      this.log,
      this.sleeper,
      {
        mayReplicate: () =>
          this.current === 'standby' &&
          this.isSelected &&
          this.reachable &&
          this.takeoverRecord() === undefined,
        standingBy: () => this.current === 'standby',
        mayFetchBlobs: () => this.isSelected && this.reachable,
        deselected: () => this.noteSelected(false),
        heardFromPrimary: () => {
          this.lastContact = Date.now();
        },
      },
      {
        dataDir: this.options.dataDir,
        heartbeatMs: this.options.heartbeatMs,
        ...(this.options.secretKey ? { secretKey: this.options.secretKey } : {}),
      },
    );
    // Each under a supervisor: a loop that throws is logged and restarted, never lost.
    const replicator = this.replicator;
    this.loops = [
      new SupervisedLoop('backup heartbeat', () => this.watchLoop(), { log: this.log }),
      new SupervisedLoop('replication', () => replicator.run(), { log: this.log }),
      new SupervisedLoop('missing-blob sweep', () => replicator.sweepBlobs(), { log: this.log }),
    ].map((loop) => loop.start());
  }

  async stop(): Promise<void> {
    this.sleeper.stop();
    await Promise.all(this.loops.map((loop) => loop.stop()));
  }

  statusView(): NonNullable<StatusView['primary']> {
    return {
      url: this.options.primaryUrl,
      reachable: this.reachable,
      lastContact: this.lastContact === undefined ? null : new Date(this.lastContact).toISOString(),
      lagSeconds: this.replicator.lagSeconds(this.current === 'standby'),
      selected: this.isSelected,
      state: this.current,
      activeSince: this.activeAt ?? null,
      replicationError: this.replicationError ?? null,
      seenByPrimary: this.seenByPrimary,
    };
  }

  /** The error replication keeps failing with (`replication failing: …`), once it repeats. */
  get replicationError(): string | undefined {
    return this.replicator.error;
  }

  /** The primary, asking before its failback: where this backup is. */
  stateView(): { state: BackupState; term: number; history: boolean } {
    return {
      state: this.current,
      term: this.term(),
      history: this.takeoverRecord() !== undefined,
    };
  }

  /** The primary's secret check (it registered this backup with the secret). */
  authenticatePrimary(secret: string | undefined): void {
    if (secret === undefined || !sameSecret(secret, this.identity.value.secret))
      throw new MusterError('UNAUTHORIZED', 'not this backup’s primary');
  }

  /** Step 1 of failback: stop running the cluster, give the leases back, list the history. */
  async beginHandback(): Promise<{
    term: number;
    builds: number[];
    takeover: TakeoverRecord | null;
  }> {
    const takeover = this.takeoverRecord();
    this.handbackStartedAt = Date.now();
    if (this.current === 'active' || this.current === 'taking-over') {
      this.transition('handback', {
        level: 'info',
        msg: 'the primary is back and takes over: stopping, giving the leases back',
      });
      await this.engine.stop(true);
    } else if (this.current === 'standby' && takeover) {
      this.transition('handback', {
        level: 'info',
        msg: 'the primary takes back the history kept here',
      });
    }
    if (!takeover) return { term: this.term(), builds: [], takeover: null };
    const builds = new Set(takeover.activeBuildIds);
    for (const id of this.store.replication.buildIdsAbove(takeover.maxBuildId)) builds.add(id);
    return { term: takeover.term, builds: [...builds].sort((a, b) => a - b), takeover };
  }

  /**
   * Step 2 of failback (the primary has everything): back to standby, with a new snapshot. Also
   * from standby (the primary was lost during the handback, then finished it). Refused while
   * taking over or active: the primary begins the handback again, which stops the engine.
   */
  endHandback(): void {
    const done: TransitionLog = { level: 'info', msg: 'failback complete: standing by again' };
    if (this.current === 'standby') this.log.info(done.msg);
    else this.transition('handback-done', done);
    this.store.ha.setTakeover(undefined);
    this.store.replication.resetPosition();
    this.activeAt = undefined;
    this.lastContact = Date.now();
    this.sleeper.wake();
  }

  takeoverRecord(): TakeoverRecord | undefined {
    return this.store.ha.takeover();
  }

  term(): number {
    return this.store.ha.term();
  }

  /** The one way to change state: allowed by the table in backup-states.ts, logged once. */
  private transition(event: BackupEvent, line: TransitionLog): void {
    const from = this.current;
    const to = nextBackupState(from, event);
    if (to === undefined)
      throw new MusterError('CONFLICT', `this backup is ${from}: it cannot ${event}`);
    this.current = to;
    this.log[line.level]({ ...line.fields, from, to }, line.msg);
  }

  // ---- watching the primary -----------------------------------------------------------------

  private async watchLoop(): Promise<void> {
    while (!this.sleeper.stopped) {
      await this.beat().catch((err: unknown) => this.log.error({ err }, 'backup heartbeat failed'));
      await this.sleeper.sleep(this.options.heartbeatMs);
    }
  }

  private async beat(): Promise<void> {
    const reached = await this.contactPrimary();
    const now = Date.now();
    if (this.current === 'standby') {
      const since = this.lastContact ?? this.startedAt;
      if (
        !reached &&
        this.isSelected &&
        this.hasState &&
        now - since >= this.options.failoverTimeoutMs
      ) {
        this.beginTakeover();
      }
      return;
    }
    if (this.current === 'handing-back') {
      // The primary died (or gave up) during failback: the history is still here, and a takeover
      // may be needed again.
      const since = Math.max(this.lastContact ?? 0, this.handbackStartedAt);
      if (!reached && now - since >= this.options.failoverTimeoutMs) {
        this.transition('primary-lost', {
          level: 'warn',
          msg: 'the primary went away during failback: standing by with the history kept',
        });
      }
      return;
    }
    if (this.current === 'taking-over') {
      if (reached) {
        await this.abandonTakeover();
        return;
      }
      const leases = this.engine.leaseSummary();
      if (leases.liveElsewhere > 0) {
        if (now - this.takeoverStartedAt > this.options.failoverTimeoutMs * 2) {
          this.log.warn(
            { agents: leases.liveElsewhere },
            'the primary cannot be reached from here but still holds agents: waiting, not taking over',
          );
          this.takeoverStartedAt = now;
        }
        return;
      }
      if (leases.held > 0 || leases.total === 0) await this.activate();
    }
  }

  /** Registers (idempotent) and asks for a heartbeat; true when the primary answered. */
  private async contactPrimary(): Promise<boolean> {
    try {
      const identity = this.identity.value;
      const registered = await this.peer.json<{ selected: boolean }>('/api/v1/ha/register', {
        method: 'POST',
        body: {
          name: identity.name,
          url: this.options.url(),
          fingerprint: this.options.fingerprint,
          certificate: this.options.certificate,
          secret: identity.secret,
          ...(this.options.joinToken === undefined ? {} : { joinToken: this.options.joinToken }),
        },
        timeoutMs: Math.max(2000, this.options.heartbeatMs * 2),
      });
      await this.pins.pin(registered.fingerprint);
      const heartbeat = await this.peer.json<HeartbeatView>('/api/v1/ha/heartbeat', {
        query: {
          pins: this.pins.accepted()?.join(','),
          replication: this.replicationError?.slice(0, MAX_REPORTED_ERROR),
        },
        timeoutMs: Math.max(2000, this.options.heartbeatMs * 2),
      });
      const body = heartbeat.body;
      this.seenByPrimary = body.selected ? (body.health ?? null) : null;
      await this.pins.follow(heartbeat.fingerprint, body.certificates);
      await this.noteSelected(body.selected);
      this.reachable = true;
      this.lastContact = Date.now();
      return true;
    } catch (err) {
      const error = toMusterError(err);
      const now = Date.now();
      this.seenByPrimary = null;
      // Said when it starts failing, and every 5 minutes while it does (a backup that never
      // reached its primary would otherwise be silent: untrusted certificate, token, name).
      if (this.reachable || now - this.lastFailureLog > 300_000) {
        this.lastFailureLog = now;
        this.log.warn({ code: error.code }, `cannot reach the primary: ${error.message}`);
      }
      this.reachable = false;
      // The primary's host answers with another certificate (or refuses this backup): that is a
      // configuration to fix, not a primary that is down; taking over would be wrong.
      if (REFUSALS.has(error.code)) {
        if (now - this.lastRefusalLog > 60_000) {
          this.lastRefusalLog = now;
          const fix =
            error.code === 'TLS_FINGERPRINT_MISMATCH'
              ? ": if the primary's certificate was replaced on purpose, re-pin this backup (stop it, remove primaryFingerprint from <data>/ha.json, start it; docs/high-availability.md, Re-pinning by hand)"
              : '';
          this.log.error(
            { code: error.code },
            `the primary refuses this backup or presents an unexpected certificate; not counting it as down: ${error.message}${fix}`,
          );
        }
        this.lastContact = now;
        return true;
      }
      return false;
    }
  }

  /**
   * What the primary says about the selection (a heartbeat, or a change request it refused):
   * logged and kept in ha.json when it changes; a newly selected backup replicates at once.
   */
  private async noteSelected(selected: boolean): Promise<void> {
    if (selected === this.isSelected && selected === this.identity.value.selected) return;
    if (selected !== this.isSelected) {
      this.log.info(
        { selected },
        selected ? 'this backup is selected' : 'this backup is not selected',
      );
      if (selected) this.sleeper.wake();
    }
    this.isSelected = selected;
    await this.identity.update({ selected });
  }

  // ---- takeover -----------------------------------------------------------------------------

  private beginTakeover(): void {
    const previous = this.takeoverRecord();
    this.previousTakeover = previous;
    const term = Math.max(this.term(), previous?.term ?? 0) + 1;
    const replication = this.store.replication;
    const active = this.store.listActiveBuilds().map((b) => b.id);
    // A takeover whose history was never handed back keeps its starting point.
    const record: TakeoverRecord = previous
      ? {
          ...previous,
          term,
          activeBuildIds: [...new Set([...previous.activeBuildIds, ...active])],
        }
      : {
          term,
          at: new Date().toISOString(),
          activeBuildIds: active,
          maxBuildId: replication.maxId('builds'),
          maxLogId: replication.maxId('log_chunks'),
          maxTokenId: replication.maxId('api_tokens'),
        };
    this.store.transaction(() => {
      this.store.ha.setTerm(term);
      this.store.ha.setTakeover(record);
      replication.reserveIds('builds', record.maxBuildId + BUILD_ID_GAP + 1);
    });
    this.takeoverStartedAt = Date.now();
    this.transition('takeover', {
      level: 'warn',
      msg: 'the primary has been unreachable for the failover timeout: taking over the agents',
      fields: { term, failoverTimeoutMs: this.options.failoverTimeoutMs },
    });
    this.engine.startPool(term);
  }

  /** Never became active: nothing was run, so there is no new history to hand back. */
  private async abandonTakeover(): Promise<void> {
    this.transition('abandon', {
      level: 'info',
      msg: 'the primary answers again: not taking over',
    });
    await this.engine.stop(true);
    this.store.ha.setTakeover(this.previousTakeover);
  }

  private async activate(): Promise<void> {
    const adopted = await this.engine.adoptOrphans();
    // The primary may have come back (and begun a failback) while the agents were listed.
    if (this.current !== 'taking-over' || !this.engine.running) return;
    this.engine.startScheduler();
    this.activeAt = new Date().toISOString();
    // Handed back to the primary at failback with the rest of what happened here.
    this.store.audit.record({
      actor: this.options.name,
      actorKind: 'backup',
      ip: null,
      action: 'ha.takeover',
      target: this.options.name,
      details: { term: this.term(), primary: this.options.primaryUrl },
    });
    this.transition('activate', {
      level: 'warn',
      msg: 'this backup is active: it runs the builds until the primary returns',
      fields: { term: this.term(), adopted, agents: this.engine.leaseSummary() },
    });
  }
}
