/**
 * A backup's half of high availability. States:
 *
 *   standby ──primary unreachable for the failover timeout──▶ taking-over
 *   taking-over ──every connected agent's lease is ours (and at least one)──▶ active
 *   taking-over ──primary reachable again, or an agent's lease is still live elsewhere──▶ standby
 *   active ──the primary asks for its history back (handback/begin)──▶ handing-back
 *   handing-back ──handback/done──▶ standby (and a fresh snapshot)
 *
 * While standing by and selected it copies the primary's state: a snapshot, then the change
 * stream, fetching the blobs each page refers to before applying it. Its identity (name and the
 * secret it registered with) and the primary's pinned certificate live in <data>/ha.json.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { sameSecret } from '../auth/passwords.js';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeAtomic } from '../../protocol/atomic-file.js';
import type { BlobStore } from '../../protocol/blob-store.js';
import { MusterError, toMusterError } from '../../protocol/errors.js';
import type { StatusView } from '../api/schemas.js';
import { LOCAL_TOKEN_BASE, type ChangePage } from '../store/replication.js';
import type { Store } from '../store/store.js';
import { MAX_REPORTED_ERROR } from './backup-health.js';
import { blobsOfRow, fetchMissingBlobs, shaList } from './blob-sync.js';
import type { EnginePort } from './engine-port.js';
import { PeerClient } from './peer-client.js';
import { sameFingerprint } from '../../protocol/pinned-tls.js';
import type { HeartbeatView } from './primary-side.js';
import { takeoverSchema, type TakeoverRecord } from '../store/ha-state.js';

export { takeoverSchema, type TakeoverRecord };

export type BackupState = 'standby' | 'taking-over' | 'active' | 'handing-back';

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
}

const identitySchema = z.object({
  name: z.string(),
  secret: z.string(),
  primaryUrl: z.string(),
  /** The certificate last seen on the primary (the pin; without it, the next one is pinned). */
  primaryFingerprint: z.string().optional(),
  /**
   * Every certificate the primary last announced it may present: its current one and, while it
   * replaces it, the next one. Accepted as pins too, and trusted as the primary's certificate.
   */
  primaryPins: z
    .array(z.object({ fingerprint: z.string(), certificate: z.string().optional() }))
    .optional(),
  /** Whether the primary last said this backup is the selected one. */
  selected: z.boolean().optional(),
});
type Identity = z.infer<typeof identitySchema>;

/** Answers that mean the primary is up but will not talk to this backup as it is. */
const REFUSALS = new Set([
  'TLS_FINGERPRINT_MISMATCH',
  'UNAUTHORIZED',
  'CONFLICT',
  'VALIDATION_FAILED',
]);

/** A replication error that comes this many times in a row is a health state. */
const FAILING_AFTER = 2;
/** The longest pause between failing replication rounds. */
const FAILURE_BACKOFF_MAX_MS = 60_000;
/** How long a change request waits on the primary for the next change. */
const CHANGES_WAIT_MS = 10_000;

/** A backup leaves this many build ids free for builds its primary accepted just before dying. */
export const BUILD_ID_GAP = 1000;

export class BackupSide {
  state: BackupState = 'standby';
  selected = false;
  primaryReachable = false;
  lastPrimaryContact: number | undefined;
  activeSince: string | undefined;
  private identity!: Identity;
  private peer!: PeerClient;
  private stopped = false;
  private readonly startedAt = Date.now();
  private caughtUpAt: number | undefined;
  private caughtUp = false;
  /** When a page or snapshot was last applied. */
  private appliedAt: number | undefined;
  /** The replication failures in a row, and the last one (cleared by the next success). */
  private failure: { message: string; since: number; count: number } | undefined;
  /** How the primary last judged this backup (its heartbeat answer). */
  private seenByPrimary: NonNullable<StatusView['primary']>['seenByPrimary'] = null;
  private loops: Promise<void>[] = [];
  private readonly sleepers = new Set<() => void>();
  private takeoverStartedAt = 0;
  private lastFailureLog = 0;
  private lastRefusalLog = 0;
  private lastFailingLog = 0;
  private handbackStartedAt = 0;
  /** The takeover record before this attempt (restored when the attempt is abandoned). */
  private previousTakeover: TakeoverRecord | undefined;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly engine: EnginePort,
    private readonly log: Logger,
    private readonly options: BackupSideOptions,
  ) {}

  get role(): StatusView['role'] {
    return this.state === 'active' ? 'backup-active' : 'backup-standby';
  }

  /** Whether this backup holds a copy of its primary's state (it may take over). */
  get hasState(): boolean {
    return this.store.replication.position().at !== null;
  }

  get secret(): string {
    return this.identity.secret;
  }

  async start(): Promise<void> {
    this.identity = await this.loadIdentity();
    this.store.replication.reserveIds('api_tokens', LOCAL_TOKEN_BASE);
    // Until the primary says otherwise: what it said last (a backup deselected while it was
    // away from the primary would otherwise still think it is selected).
    this.selected = this.identity.selected ?? false;
    this.peer = new PeerClient(
      this.options.primaryUrl,
      () => this.identity.secret,
      () => this.primaryTls(),
      { 'x-muster-backup': this.identity.name },
    );
    this.loops = [this.watchLoop(), this.replicationLoop(), this.sweepBlobs()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await Promise.allSettled(this.loops);
  }

  statusView(): NonNullable<StatusView['primary']> {
    const now = Date.now();
    // Caught up only while pages keep coming (each long poll returns within CHANGES_WAIT_MS)
    // and nothing fails: a copy that stopped applying is behind by the time since it was current.
    const current =
      this.caughtUp &&
      this.state === 'standby' &&
      this.failure === undefined &&
      this.appliedAt !== undefined &&
      now - this.appliedAt <= CHANGES_WAIT_MS * 2;
    return {
      url: this.options.primaryUrl,
      reachable: this.primaryReachable,
      lastContact:
        this.lastPrimaryContact === undefined
          ? null
          : new Date(this.lastPrimaryContact).toISOString(),
      lagSeconds:
        this.caughtUpAt === undefined
          ? null
          : current
            ? 0
            : Math.round((now - this.caughtUpAt) / 100) / 10,
      selected: this.selected,
      state: this.state,
      activeSince: this.activeSince ?? null,
      replicationError: this.replicationError ?? null,
      seenByPrimary: this.seenByPrimary,
    };
  }

  /** The error replication keeps failing with (`replication failing: …`), once it repeats. */
  get replicationError(): string | undefined {
    return this.failure !== undefined && this.failure.count >= FAILING_AFTER
      ? this.failure.message
      : undefined;
  }

  /** The primary, asking before its failback: where this backup is. */
  stateView(): { state: BackupState; term: number; history: boolean } {
    return { state: this.state, term: this.term(), history: this.takeoverRecord() !== undefined };
  }

  /** The primary's secret check (it registered this backup with the secret). */
  authenticatePrimary(secret: string | undefined): void {
    if (secret === undefined || !sameSecret(secret, this.identity.secret))
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
    if (this.state === 'active' || this.state === 'taking-over') {
      this.state = 'handing-back';
      this.log.info('the primary is back and takes over: stopping, giving the leases back');
      await this.engine.stop(true);
    } else if (this.state === 'standby' && takeover) {
      this.state = 'handing-back';
    }
    if (!takeover) return { term: this.term(), builds: [], takeover: null };
    const builds = new Set(takeover.activeBuildIds);
    for (const id of this.store.replication.buildIdsAbove(takeover.maxBuildId)) builds.add(id);
    return { term: takeover.term, builds: [...builds].sort((a, b) => a - b), takeover };
  }

  /** Step 2 of failback (the primary has everything): back to standby, with a new snapshot. */
  endHandback(): void {
    this.store.ha.setTakeover(undefined);
    this.store.replication.resetPosition();
    this.state = 'standby';
    this.activeSince = undefined;
    this.lastPrimaryContact = Date.now();
    this.log.info('failback complete: standing by again');
    this.wake();
  }

  takeoverRecord(): TakeoverRecord | undefined {
    return this.store.ha.takeover();
  }

  // ---- watching the primary -----------------------------------------------------------------

  private async watchLoop(): Promise<void> {
    while (!this.stopped) {
      await this.beat().catch((err: unknown) => this.log.error({ err }, 'backup heartbeat failed'));
      await this.sleep(this.options.heartbeatMs);
    }
  }

  private async beat(): Promise<void> {
    const reached = await this.contactPrimary();
    const now = Date.now();
    if (this.state === 'standby') {
      const since = this.lastPrimaryContact ?? this.startedAt;
      if (
        !reached &&
        this.selected &&
        this.hasState &&
        now - since >= this.options.failoverTimeoutMs
      ) {
        await this.beginTakeover();
      }
      return;
    }
    if (this.state === 'handing-back') {
      // The primary died (or gave up) during failback: the history is still here, and a takeover
      // may be needed again.
      const since = Math.max(this.lastPrimaryContact ?? 0, this.handbackStartedAt);
      if (!reached && now - since >= this.options.failoverTimeoutMs) {
        this.log.warn('the primary went away during failback: standing by with the history kept');
        this.state = 'standby';
      }
      return;
    }
    if (this.state === 'taking-over') {
      if (reached) {
        this.log.info('the primary answers again: not taking over');
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
      const registered = await this.peer.json<{ selected: boolean }>('/api/v1/ha/register', {
        method: 'POST',
        body: {
          name: this.identity.name,
          url: this.options.url(),
          fingerprint: this.options.fingerprint,
          certificate: this.options.certificate,
          secret: this.identity.secret,
          ...(this.options.joinToken === undefined ? {} : { joinToken: this.options.joinToken }),
        },
        timeoutMs: Math.max(2000, this.options.heartbeatMs * 2),
      });
      await this.pinPrimary(registered.fingerprint);
      const heartbeat = await this.peer.json<HeartbeatView>('/api/v1/ha/heartbeat', {
        query: {
          pins: this.acceptedPins()?.join(','),
          replication: this.replicationError?.slice(0, MAX_REPORTED_ERROR),
        },
        timeoutMs: Math.max(2000, this.options.heartbeatMs * 2),
      });
      const body = heartbeat.body;
      this.seenByPrimary = body.selected ? (body.health ?? null) : null;
      await this.followCertificates(heartbeat.fingerprint, body.certificates);
      if (body.selected !== this.selected) {
        this.log.info(
          { selected: body.selected },
          body.selected ? 'this backup is selected' : 'this backup is not selected',
        );
        if (body.selected) this.wake();
        this.identity = { ...this.identity, selected: body.selected };
        await this.saveIdentity();
      }
      this.selected = body.selected;
      this.primaryReachable = true;
      this.lastPrimaryContact = Date.now();
      return true;
    } catch (err) {
      const error = toMusterError(err);
      const now = Date.now();
      this.seenByPrimary = null;
      // Said when it starts failing, and every 5 minutes while it does (a backup that never
      // reached its primary would otherwise be silent: untrusted certificate, token, name).
      if (this.primaryReachable || now - this.lastFailureLog > 300_000) {
        this.lastFailureLog = now;
        this.log.warn({ code: error.code }, `cannot reach the primary: ${error.message}`);
      }
      this.primaryReachable = false;
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
        this.lastPrimaryContact = now;
        return true;
      }
      return false;
    }
  }

  private async pinPrimary(fingerprint: string | undefined): Promise<void> {
    if (fingerprint === undefined || this.identity.primaryFingerprint !== undefined) return;
    this.identity = { ...this.identity, primaryFingerprint: fingerprint };
    await this.saveIdentity();
    this.log.info({ fingerprint }, "pinned the primary's certificate");
  }

  /** The pins (fingerprints) this backup accepts for its primary; undefined before the first. */
  private acceptedPins(): string[] | undefined {
    const pinned = this.identity.primaryFingerprint;
    if (pinned === undefined) return undefined;
    const announced = (this.identity.primaryPins ?? []).map((p) => p.fingerprint);
    return [pinned, ...announced.filter((f) => !sameFingerprint(f, pinned))];
  }

  private primaryTls(): { ca: string | undefined; fingerprint: string[] | undefined } {
    const pins = this.acceptedPins();
    // The primary's announced certificates are trusted only together with the pins, which
    // still name exactly which certificates may answer.
    const announced =
      pins === undefined
        ? []
        : (this.identity.primaryPins ?? []).flatMap((p) => (p.certificate ? [p.certificate] : []));
    const ca = [this.options.primaryCa, ...announced].filter((c) => c !== undefined);
    return { ca: ca.length > 0 ? ca.join('\n') : undefined, fingerprint: pins };
  }

  /**
   * Certificate rollover: the primary, on this pinned connection, lists the certificates it may
   * present. They become the accepted pins (the old one goes once the primary presents the new
   * one), and the next heartbeat tells the primary, which waits for that before it swaps.
   */
  private async followCertificates(
    presented: string | undefined,
    announced: HeartbeatView['certificates'] | undefined,
  ): Promise<void> {
    const pinned = this.identity.primaryFingerprint;
    if (presented === undefined || announced === undefined || pinned === undefined) return;
    if (!announced.some((a) => sameFingerprint(a.fingerprint, presented))) return;
    const current = this.identity.primaryPins ?? [];
    const same =
      sameFingerprint(pinned, presented) &&
      current.length === announced.length &&
      announced.every((a) => current.some((c) => sameFingerprint(c.fingerprint, a.fingerprint)));
    if (same) return;
    const next = announced.filter((a) => !sameFingerprint(a.fingerprint, presented));
    this.identity = {
      ...this.identity,
      primaryFingerprint: presented,
      primaryPins: announced.map((a) => ({
        fingerprint: a.fingerprint,
        certificate: a.certificate,
      })),
    };
    await this.saveIdentity();
    if (!sameFingerprint(pinned, presented))
      this.log.info(
        { fingerprint: presented, previous: pinned },
        'the primary presents its new certificate: pinned it, dropped the old pin',
      );
    for (const a of next)
      this.log.info(
        { fingerprint: a.fingerprint },
        'the primary announced its next certificate: accepting it as well as the current one',
      );
  }

  // ---- takeover -----------------------------------------------------------------------------

  private async beginTakeover(): Promise<void> {
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
    this.state = 'taking-over';
    this.takeoverStartedAt = Date.now();
    this.log.warn(
      { term, failoverTimeoutMs: this.options.failoverTimeoutMs },
      'the primary has been unreachable for the failover timeout: taking over the agents',
    );
    this.engine.startPool(term);
  }

  /** Never became active: nothing was run, so there is no new history to hand back. */
  private async abandonTakeover(): Promise<void> {
    await this.engine.stop(true);
    this.store.ha.setTakeover(this.previousTakeover);
    this.state = 'standby';
  }

  private async activate(): Promise<void> {
    const adopted = await this.engine.adoptOrphans();
    // The primary may have come back (and begun a failback) while the agents were listed.
    if (this.state !== 'taking-over' || !this.engine.running) return;
    this.engine.startScheduler();
    this.state = 'active';
    this.activeSince = new Date().toISOString();
    this.log.warn(
      { term: this.term(), adopted, agents: this.engine.leaseSummary() },
      'this backup is active: it runs the builds until the primary returns',
    );
  }

  // ---- replication --------------------------------------------------------------------------

  private async replicationLoop(): Promise<void> {
    while (!this.stopped) {
      // Never over history not handed back yet: the primary takes it first (see failback.ts).
      if (
        this.state !== 'standby' ||
        !this.selected ||
        !this.primaryReachable ||
        this.takeoverRecord() !== undefined
      ) {
        await this.sleep(this.options.heartbeatMs);
        continue;
      }
      try {
        await this.replicateOnce();
      } catch (err) {
        const error = toMusterError(err);
        if (error.code === 'SNAPSHOT_REQUIRED') {
          this.log.info(`replication restarts with a snapshot: ${error.message}`);
          this.store.replication.resetPosition();
          continue;
        }
        if (error.code === 'NOT_SELECTED') {
          this.selected = false;
          this.identity = { ...this.identity, selected: false };
          await this.saveIdentity();
          await this.sleep(this.options.heartbeatMs);
          continue;
        }
        await this.sleep(this.noteFailure(error));
      }
    }
  }

  /**
   * Counts a failed round: logged when it starts repeating and every 5 minutes after, reported
   * to the primary in heartbeats. Returns how long to wait before the next round (doubling, up to
   * a minute: a failing snapshot is not fetched again every heartbeat).
   */
  private noteFailure(error: MusterError): number {
    const now = Date.now();
    const message = `${error.code}: ${error.message}`;
    const previous = this.failure;
    const count = (previous?.count ?? 0) + 1;
    this.failure = { message, since: previous?.since ?? now, count };
    this.caughtUp = false;
    if (count === FAILING_AFTER || (count > FAILING_AFTER && now - this.lastFailingLog > 300_000)) {
      this.lastFailingLog = now;
      this.log.error(
        { code: error.code, failures: count, since: new Date(this.failure.since).toISOString() },
        `replication failing: ${error.message}`,
      );
    } else if (count < FAILING_AFTER) {
      this.log.warn({ code: error.code }, `replication: ${error.message}`);
    }
    return Math.min(this.options.heartbeatMs * 2 ** (count - 1), FAILURE_BACKOFF_MAX_MS);
  }

  /** A round applied: replication works (again). */
  private noteApplied(): void {
    this.appliedAt = Date.now();
    if (this.failure !== undefined && this.failure.count >= FAILING_AFTER)
      this.log.info(
        { failures: this.failure.count },
        'replication works again: the copy applies what the primary sends',
      );
    this.failure = undefined;
  }

  private async replicateOnce(): Promise<void> {
    const position = this.store.replication.position();
    if (position.stream === null) {
      await this.fetchSnapshot();
      return;
    }
    const { body: page } = await this.peer.json<ChangePage & { primaryLastSeq: number }>(
      '/api/v1/ha/changes',
      {
        query: { stream: position.stream, after: position.seq, waitMs: CHANGES_WAIT_MS },
        timeoutMs: 40_000,
      },
    );
    const hashes = page.changes.flatMap((c) => blobsOfRow(c.table, c.row));
    if (hashes.length > 0) await fetchMissingBlobs(this.peer, this.blobs, hashes);
    // A takeover may have begun while the page travelled: it works on what it had.
    if (this.state !== 'standby') return;
    this.store.replication.applyChanges(page, new Date().toISOString());
    this.noteApplied();
    this.lastPrimaryContact = Date.now();
    this.caughtUp = page.lastSeq >= page.primaryLastSeq;
    if (this.caughtUp) this.caughtUpAt = Date.now();
  }

  private async fetchSnapshot(): Promise<void> {
    const dir = join(this.options.dataDir, 'tmp');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `snapshot-${randomUUID()}.db`);
    try {
      const { headers } = await this.peer.json('/api/v1/ha/snapshot', {
        toFile: file,
        timeoutMs: 600_000,
      });
      const stream = headers['x-muster-stream'];
      const seq = Number(headers['x-muster-seq']);
      if (typeof stream !== 'string' || !Number.isInteger(seq))
        throw new MusterError('INTERNAL', 'the snapshot came without its stream position');
      if (this.state !== 'standby') return;
      this.store.replication.applySnapshot(file, stream, seq, new Date().toISOString());
      this.noteApplied();
      this.caughtUp = false;
      this.log.info({ seq }, "applied a snapshot of the primary's state");
    } finally {
      await rm(file, { force: true });
    }
    await this.fetchAllBlobs();
  }

  /** After a restart: blobs a crash may have left unfetched. */
  private async sweepBlobs(): Promise<void> {
    while (!this.stopped && !(this.selected && this.primaryReachable)) {
      await this.sleep(this.options.heartbeatMs);
    }
    if (this.stopped || this.store.replication.position().stream === null) return;
    await this.fetchAllBlobs().catch((err: unknown) =>
      this.log.warn({ err }, 'fetching missing blobs failed'),
    );
  }

  private async fetchAllBlobs(): Promise<void> {
    const hashes = new Set(this.store.replication.fileLists().flatMap(shaList));
    const fetched = await fetchMissingBlobs(this.peer, this.blobs, hashes);
    if (fetched > 0) this.log.info({ fetched }, 'fetched blobs from the primary');
  }

  // ---- plumbing -----------------------------------------------------------------------------

  term(): number {
    return this.store.ha.term();
  }

  /** Sleeps up to `ms`; wake() ends every sleep at once. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private wake(): void {
    for (const done of [...this.sleepers]) done();
  }

  private async loadIdentity(): Promise<Identity> {
    const file = join(this.options.dataDir, 'ha.json');
    try {
      const parsed = identitySchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
      if (parsed.success) {
        const saved = parsed.data;
        if (saved.name !== this.options.name || saved.primaryUrl !== this.options.primaryUrl) {
          // Another name or primary: a new registration (the pin belongs to the old primary).
          this.identity = {
            name: this.options.name,
            secret: saved.secret,
            primaryUrl: this.options.primaryUrl,
          };
          await this.saveIdentity();
          return this.identity;
        }
        return saved;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.identity = {
      name: this.options.name,
      secret: randomBytes(32).toString('base64url'),
      primaryUrl: this.options.primaryUrl,
    };
    await this.saveIdentity();
    return this.identity;
  }

  private async saveIdentity(): Promise<void> {
    await writeAtomic(
      join(this.options.dataDir, 'ha.json'),
      `${JSON.stringify(this.identity, null, 2)}\n`,
      0o600,
    );
  }
}
