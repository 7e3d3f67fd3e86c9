/**
 * What a running coordinator does now and then, whatever its role: it deletes expired tokens
 * (hourly) and sweeps blobs nothing references (the first sweep at once, counting what is
 * unreferenced now, from which the upload quota starts; then every half retention, at most every
 * 10 minutes). Before each sweep, a coordinator that writes (a primary, a backup running the
 * cluster) evicts cache entries beyond Cache.MaxBytes, so the sweep can take their blobs once
 * they are old. A backup standing by does not: its copy follows the primary's evictions, and it
 * has not seen the uses that order them. With the eviction go the compiler toolchains no compile
 * job named for the toolchain retention (then `toolchainsRemoved`: agents get a bundle without
 * them). A primary, before the sweep, also deletes ended builds older than Builds.Retention
 * (builds/retention.ts), so the sweep can take the blobs only they listed once those are old; a
 * backup does not, also while it runs the cluster: its copy follows the primary's deletions, and
 * a deletion of its own would not be handed back at failback.
 */
import type { Logger } from 'pino';
import type { BlobSweeper } from './blob-sweeper.js';
import { CACHE_MAX_BYTES_SETTING, cacheMaxBytes } from './store/cache.js';
import type { RetentionPassResult } from './builds/retention.js';
import type { Store } from './store/store.js';

export class Housekeeping {
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly store: Store,
    private readonly uploads: BlobSweeper,
    private readonly blobRetentionMs: number,
    private readonly log: Logger,
    /** Whether this coordinator writes its own state now (evicts from the cache). */
    private readonly writes: () => boolean,
    private readonly toolchains?: { retentionMs: number; removed: (ids: string[]) => void },
    /** Build retention, and whether this coordinator applies it now (a primary). */
    private readonly retention?: {
      pass(keepGoing: () => boolean): Promise<RetentionPassResult>;
      applies(): boolean;
    },
  ) {}

  private retaining: Promise<void> | undefined;
  private stopped = false;

  start(): void {
    // A timer's throw would end the process: a failed sweep is logged and tried next time.
    const sweepTokens = setInterval(() => {
      try {
        this.store.deleteExpiredTokens(new Date().toISOString());
      } catch (err) {
        this.log.warn({ err }, 'deleting expired tokens failed');
      }
    }, 3_600_000);
    sweepTokens.unref();
    this.timers.push(sweepTokens);
    const sweepBlobs = (): void => {
      this.evictCache();
      void this.deleteOldBuilds()
        .then(() => this.uploads.sweep())
        .catch((err: unknown) => this.log.warn({ err }, 'sweeping blobs failed'));
    };
    sweepBlobs();
    const blobSweep = setInterval(
      sweepBlobs,
      Math.min(600_000, Math.max(1000, Math.floor(this.blobRetentionMs / 2))),
    );
    blobSweep.unref();
    this.timers.push(blobSweep);
  }

  /** Evicts least recently used cache entries beyond the quota (when this coordinator writes). */
  evictCache(): void {
    if (!this.writes()) return;
    try {
      const maxBytes = cacheMaxBytes(this.store.getSetting(CACHE_MAX_BYTES_SETTING));
      const result = this.store.cache.evict(maxBytes);
      if (result.removed > 0)
        this.log.info({ ...result, maxBytes }, 'evicted least recently used cache entries');
    } catch (err) {
      this.log.warn({ err }, 'evicting cache entries failed');
    }
    this.removeUnusedToolchains();
  }

  /** Deletes ended builds older than Builds.Retention (on a primary); one pass at a time. */
  deleteOldBuilds(): Promise<void> {
    if (!this.retention?.applies()) return Promise.resolve();
    const retention = this.retention;
    this.retaining ??= retention
      .pass(() => !this.stopped)
      .then(() => undefined)
      .catch((err: unknown) =>
        this.log.warn({ err }, 'deleting builds beyond the retention failed'),
      )
      .finally(() => {
        this.retaining = undefined;
      });
    return this.retaining;
  }

  /** Removes the toolchains no compile job named for the retention (when this one writes). */
  removeUnusedToolchains(): void {
    if (!this.toolchains || !this.writes()) return;
    try {
      const before = new Date(Date.now() - this.toolchains.retentionMs).toISOString();
      const ids = this.store.cache.removeToolchainsUnusedSince(before);
      if (ids.length === 0) return;
      this.log.info({ toolchains: ids, unusedSince: before }, 'removed unused toolchains');
      this.toolchains.removed(ids);
    } catch (err) {
      this.log.warn({ err }, 'removing unused toolchains failed');
    }
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }
}
