/**
 * A backup's copy of its primary's state: a snapshot, then the change stream, fetching the blobs
 * each page refers to before applying it. Counts failing rounds (backing off, logging, reporting
 * them to the primary) and tells how far behind the copy is. It runs only while its backup lets it
 * (standing by, selected, the primary reachable, no history to hand back): see ReplicatorHost.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BlobStore } from '../../common/blob-store.js';
import { MusterError, toMusterError } from '../../protocol/errors.js';
import type { ChangePage } from '../store/replication.js';
import type { SecretKey } from '../secrets/secret-key.js';
import type { Store } from '../store/store.js';
import { blobsOfRow, fetchMissingBlobs, shaList } from './blob-sync.js';
import type { PeerClient } from './peer-client.js';
import type { Sleeper } from './sleeper.js';

/** A replication error that comes this many times in a row is a health state. */
const FAILING_AFTER = 2;
/** The longest pause between failing replication rounds. */
const FAILURE_BACKOFF_MAX_MS = 60_000;
/** How long a change request waits on the primary for the next change. */
export const CHANGES_WAIT_MS = 10_000;

/** What the replicator needs to know from, and tells, the backup it works for. */
export interface ReplicatorHost {
  /** Whether a round may run now. */
  mayReplicate(): boolean;
  /** Whether what arrived may still be applied (a takeover may have begun while it travelled). */
  standingBy(): boolean;
  /** Whether the blobs a crash may have left unfetched can be fetched (selected, reachable). */
  mayFetchBlobs(): boolean;
  /** The primary said this backup is not the selected one. */
  deselected(): Promise<void>;
  /** The primary answered with a page of changes. */
  heardFromPrimary(): void;
}

/** Where a backup keeps its primary's secrets key (secrets/secret-key.ts). */
export type SecretsKeyHolder = Pick<SecretKey, 'id' | 'adopt'>;

export interface ReplicatorOptions {
  dataDir: string;
  heartbeatMs: number;
  /**
   * The primary's secrets key is fetched into it (GET /api/v1/ha/secrets-key, over the
   * authenticated link, never in the replicated rows) with every snapshot, when it holds none,
   * and when a secret arrives sealed under a key it does not hold.
   */
  secretKey?: SecretsKeyHolder;
}

export class Replicator {
  private caughtUpAt: number | undefined;
  private caughtUp = false;
  /** When a page or snapshot was last applied. */
  private appliedAt: number | undefined;
  /** The replication failures in a row, and the last one (cleared by the next success). */
  private failure: { message: string; since: number; count: number } | undefined;
  private lastFailingLog = 0;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly peer: PeerClient,
    private readonly log: Logger,
    private readonly sleeper: Sleeper,
    private readonly host: ReplicatorHost,
    private readonly options: ReplicatorOptions,
  ) {}

  /** The error replication keeps failing with (`replication failing: …`), once it repeats. */
  get error(): string | undefined {
    return this.failure !== undefined && this.failure.count >= FAILING_AFTER
      ? this.failure.message
      : undefined;
  }

  /**
   * How far behind the copy is, in seconds: 0 while current, the time since it was last complete
   * otherwise, null before it ever was. Current only while pages keep coming (each long poll
   * returns within CHANGES_WAIT_MS), nothing fails and the backup stands by: a copy that stopped
   * applying is behind by the time since it was current.
   */
  lagSeconds(standingBy: boolean, now = Date.now()): number | null {
    if (this.caughtUpAt === undefined) return null;
    const current =
      this.caughtUp &&
      standingBy &&
      this.failure === undefined &&
      this.appliedAt !== undefined &&
      now - this.appliedAt <= CHANGES_WAIT_MS * 2;
    return current ? 0 : Math.round((now - this.caughtUpAt) / 100) / 10;
  }

  /** The replication loop, until the sleeper stops. */
  async run(): Promise<void> {
    while (!this.sleeper.stopped) {
      // Never over history not handed back yet: the primary takes it first (see failback.ts).
      if (!this.host.mayReplicate()) {
        await this.sleeper.sleep(this.options.heartbeatMs);
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
          await this.host.deselected();
          await this.sleeper.sleep(this.options.heartbeatMs);
          continue;
        }
        await this.sleeper.sleep(this.noteFailure(error));
      }
    }
  }

  /** After a restart: blobs a crash may have left unfetched. */
  async sweepBlobs(): Promise<void> {
    while (!this.sleeper.stopped && !this.host.mayFetchBlobs()) {
      await this.sleeper.sleep(this.options.heartbeatMs);
    }
    if (this.sleeper.stopped || this.store.replication.position().stream === null) return;
    await this.fetchAllBlobs().catch((err: unknown) =>
      this.log.warn({ err }, 'fetching missing blobs failed'),
    );
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
    // A copy with secrets but no key (a backup from before secrets, or its key file removed).
    if (this.options.secretKey?.id === undefined && this.store.secrets.list().length > 0)
      await this.fetchSecretsKey();
    const { body: page } = await this.peer.json<ChangePage & { primaryLastSeq: number }>(
      '/api/v1/ha/changes',
      {
        query: { stream: position.stream, after: position.seq, waitMs: CHANGES_WAIT_MS },
        timeoutMs: 40_000,
      },
    );
    // A secret sealed under a key this backup does not hold (the first one, or its key file was
    // lost): the key comes before the rows are applied.
    const key = this.options.secretKey;
    if (
      key !== undefined &&
      page.changes.some((c) => c.table === 'secrets' && c.row !== null && c.row.key_id !== key.id)
    )
      await this.fetchSecretsKey();
    const hashes = page.changes.flatMap((c) => blobsOfRow(c.table, c.row));
    if (hashes.length > 0) await fetchMissingBlobs(this.peer, this.blobs, hashes);
    // A takeover may have begun while the page travelled: it works on what it had.
    if (!this.host.standingBy()) return;
    this.store.replication.applyChanges(page, new Date().toISOString());
    this.noteApplied();
    this.host.heardFromPrimary();
    this.caughtUp = page.lastSeq >= page.primaryLastSeq;
    if (this.caughtUp) this.caughtUpAt = Date.now();
  }

  private async fetchSnapshot(): Promise<void> {
    const dir = join(this.options.dataDir, 'tmp');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `snapshot-${randomUUID()}.db`);
    await this.fetchSecretsKey();
    try {
      const { headers } = await this.peer.json('/api/v1/ha/snapshot', {
        toFile: file,
        timeoutMs: 600_000,
      });
      const stream = headers['x-muster-stream'];
      const seq = Number(headers['x-muster-seq']);
      if (typeof stream !== 'string' || !Number.isInteger(seq))
        throw new MusterError('INTERNAL', 'the snapshot came without its stream position');
      if (!this.host.standingBy()) return;
      this.store.replication.applySnapshot(file, stream, seq, new Date().toISOString());
      this.noteApplied();
      this.caughtUp = false;
      this.log.info({ seq }, "applied a snapshot of the primary's state");
    } finally {
      await rm(file, { force: true });
    }
    await this.fetchAllBlobs();
  }

  /** The primary's secrets key, kept in the data dir (written only when it changed). */
  private async fetchSecretsKey(): Promise<void> {
    const holder = this.options.secretKey;
    if (holder === undefined) return;
    const { body } = await this.peer.json<{ key?: unknown }>('/api/v1/ha/secrets-key');
    if (typeof body.key !== 'string')
      throw new MusterError('INVALID_MESSAGE', 'the primary sent no secrets key');
    if (await holder.adopt(Buffer.from(body.key, 'base64')))
      this.log.info({ keyId: holder.id }, "received the primary's secrets key");
  }

  private async fetchAllBlobs(): Promise<void> {
    const hashes = new Set(this.store.replication.fileLists().flatMap(shaList));
    const fetched = await fetchMissingBlobs(this.peer, this.blobs, hashes);
    if (fetched > 0) this.log.info({ fetched }, 'fetched blobs from the primary');
  }
}
