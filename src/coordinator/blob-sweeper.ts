/**
 * Keeps the coordinator's blob store from growing without bound: a quota on uploaded bytes that
 * nothing uses yet, and a sweep that deletes blobs nothing references once they are old.
 *
 * "Referenced" means listed by any build's input files, any task's outputs, any extension's or
 * toolchain's files, or any cache entry's outputs and stderr in the store
 * (`replication.fileLists()`, the same lists the backup copies blobs for).
 * Logs are rows in the store, not blobs. A blob is deleted only when it is unreferenced AND older
 * than the retention (its mtime: `BlobStore.missing` touches the blobs a client is about to use),
 * so an upload waiting for its build, an output being recorded, a blob a backup has just copied
 * or a failback is merging are all younger than that and stay.
 *
 * The walk also counts the bytes of every blob it finds (storedBytes: the data dir's size in
 * /metrics, without a walk per scrape).
 *
 * The quota counts blobs that nothing referenced at the last look: uploads since the last sweep
 * (with their user) and what the sweep found (by user when known). A build or extension that
 * lists a blob takes it off the count at once.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BlobStore } from '../common/blob-store.js';
import { MusterError } from '../protocol/errors.js';
import { SHA256_PATTERN } from '../protocol/manifest.js';
import { shaList } from './ha/blob-sync.js';
import type { Store } from './store/store.js';

export interface BlobSweeperOptions {
  /** Unreferenced uploaded bytes allowed in all. */
  quotaBytes: number;
  /** The same, per user. */
  perUserQuotaBytes: number;
  /** Unreferenced blobs older than this are deleted by a sweep. */
  retentionMs: number;
}

export interface SweepResult {
  removed: number;
  removedBytes: number;
  /** Unreferenced bytes kept (younger than the retention). */
  pendingBytes: number;
}

interface Pending {
  user: string | undefined;
  size: number;
}

export class BlobSweeper {
  private readonly pending = new Map<string, Pending>();
  private pendingTotal = 0;
  private readonly pendingByUser = new Map<string, number>();
  /** Bytes of uploads being received, counted before they arrive so parallel ones cannot overshoot. */
  private readonly inFlightByUser = new Map<string, number>();
  private inFlightTotal = 0;
  /** Hashes a request is about to reference (count of holders): a sweep leaves them alone. */
  private readonly held = new Map<string, number>();
  /** Referenced while a sweep ran: the sweep's view of them is already out of date. */
  private referencedDuringSweep: Set<string> | undefined;
  private sweeping: Promise<SweepResult> | undefined;
  /** Bytes of every blob in the store when the last sweep's walk ended (after its deletions). */
  private storedAtLastSweep: number | undefined;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private opts: BlobSweeperOptions,
    private readonly log: Logger,
  ) {}

  get options(): Readonly<BlobSweeperOptions> {
    return this.opts;
  }

  /** New upload quotas (SIGHUP): uploads from now on are checked against them. */
  setQuotas(quotas: Pick<BlobSweeperOptions, 'quotaBytes' | 'perUserQuotaBytes'>): void {
    this.opts = { ...this.opts, ...quotas };
  }

  /** The blob store's bytes as the last sweep counted them (metrics); undefined before one ended. */
  storedBytes(): number | undefined {
    return this.storedAtLastSweep;
  }

  /** Unreferenced bytes counted against the quota (of one user, or of all). */
  pendingBytes(user?: string): number {
    return user === undefined
      ? this.pendingTotal + this.inFlightTotal
      : (this.pendingByUser.get(user) ?? 0) + (this.inFlightByUser.get(user) ?? 0);
  }

  /**
   * Makes room for an upload of `size` bytes by `user`, or throws UPLOAD_QUOTA_EXCEEDED. The
   * returned function ends the reservation: with the hash once the blob is in the store, with
   * undefined when the upload failed.
   */
  reserve(user: string, size: number): (stored: string | undefined) => void {
    const { quotaBytes, perUserQuotaBytes } = this.options;
    const mine = this.pendingBytes(user);
    const all = this.pendingBytes();
    if (mine + size > perUserQuotaBytes || all + size > quotaBytes) {
      const perUser = mine + size > perUserQuotaBytes;
      throw new MusterError(
        'UPLOAD_QUOTA_EXCEEDED',
        `${perUser ? `your uploads (${user})` : 'all uploads'} that no build or extension uses yet take ${perUser ? mine : all} of ${perUser ? perUserQuotaBytes : quotaBytes} bytes; this blob of ${size} bytes does not fit: submit the build that uses them, or wait until unused uploads are deleted`,
        {
          pendingBytes: perUser ? mine : all,
          quotaBytes: perUser ? perUserQuotaBytes : quotaBytes,
          size,
          scope: perUser ? 'user' : 'total',
        },
      );
    }
    this.inFlightByUser.set(user, (this.inFlightByUser.get(user) ?? 0) + size);
    this.inFlightTotal += size;
    let ended = false;
    return (stored) => {
      if (ended) return;
      ended = true;
      const left = (this.inFlightByUser.get(user) ?? 0) - size;
      if (left > 0) this.inFlightByUser.set(user, left);
      else this.inFlightByUser.delete(user);
      this.inFlightTotal -= size;
      if (stored !== undefined && !this.referencedDuringSweep?.has(stored))
        this.add(stored, { user, size });
    };
  }

  /**
   * Keeps `hashes` from being swept while a request checks them and stores what references them;
   * call the returned function when done.
   */
  hold(hashes: Iterable<string>): () => void {
    const list = [...new Set(hashes)];
    for (const sha256 of list) this.held.set(sha256, (this.held.get(sha256) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const sha256 of list) {
        const left = (this.held.get(sha256) ?? 0) - 1;
        if (left > 0) this.held.set(sha256, left);
        else this.held.delete(sha256);
      }
    };
  }

  /** A build or extension now lists these blobs: they no longer count against the quota. */
  referenced(hashes: Iterable<string>): void {
    for (const sha256 of hashes) {
      this.remove(sha256);
      this.referencedDuringSweep?.add(sha256);
    }
  }

  /** Deletes old unreferenced blobs and recounts the rest; one sweep at a time. */
  sweep(): Promise<SweepResult> {
    if (!this.sweeping) {
      this.sweeping = this.doSweep().finally(() => {
        this.sweeping = undefined;
        this.referencedDuringSweep = undefined;
      });
    }
    return this.sweeping;
  }

  private async doSweep(): Promise<SweepResult> {
    this.referencedDuringSweep = new Set();
    const keep = new Set(this.store.replication.fileLists().flatMap(shaList));
    const cutoff = Date.now() - this.options.retentionMs;
    const unreferenced = new Map<string, number>();
    let removed = 0;
    let removedBytes = 0;
    let stored = 0;
    const root = this.blobs.root;
    for (const prefix of await readdir(root).catch((): string[] => [])) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      const dir = join(root, prefix);
      for (const name of await readdir(dir).catch((): string[] => [])) {
        if (!SHA256_PATTERN.test(name)) continue;
        const file = join(dir, name);
        const info = await stat(file).catch(() => undefined);
        if (info === undefined) continue;
        if (keep.has(name)) {
          stored += info.size;
          continue;
        }
        // Checked again right before deleting: a request may have started to use it meanwhile.
        if (
          info.mtimeMs <= cutoff &&
          !this.held.has(name) &&
          !this.referencedDuringSweep.has(name)
        ) {
          await rm(file, { force: true });
          this.remove(name);
          removed++;
          removedBytes += info.size;
        } else {
          unreferenced.set(name, info.size);
          stored += info.size;
        }
      }
    }
    // Recount: what the walk found unreferenced (keeping its uploader when known), plus uploads
    // that arrived behind the walk.
    const before = new Map(this.pending);
    for (const sha256 of before.keys()) this.remove(sha256);
    for (const [sha256, size] of unreferenced) {
      if (this.referencedDuringSweep.has(sha256)) continue;
      this.add(sha256, { user: before.get(sha256)?.user, size });
    }
    for (const [sha256, entry] of before) {
      if (unreferenced.has(sha256) || keep.has(sha256)) continue;
      if (this.referencedDuringSweep.has(sha256)) continue;
      if ((await this.blobs.sizeOf(sha256)) !== undefined) this.add(sha256, entry);
    }
    this.storedAtLastSweep = stored;
    const result = { removed, removedBytes, pendingBytes: this.pendingTotal };
    if (removed > 0) this.log.info(result, 'deleted blobs that nothing references');
    return result;
  }

  private add(sha256: string, entry: Pending): void {
    if (this.pending.has(sha256)) return;
    this.pending.set(sha256, entry);
    this.pendingTotal += entry.size;
    if (entry.user !== undefined)
      this.pendingByUser.set(entry.user, (this.pendingByUser.get(entry.user) ?? 0) + entry.size);
  }

  private remove(sha256: string): void {
    const entry = this.pending.get(sha256);
    if (!entry) return;
    this.pending.delete(sha256);
    this.pendingTotal -= entry.size;
    if (entry.user !== undefined) {
      const left = (this.pendingByUser.get(entry.user) ?? 0) - entry.size;
      if (left > 0) this.pendingByUser.set(entry.user, left);
      else this.pendingByUser.delete(entry.user);
    }
  }
}
