/**
 * What a running coordinator does now and then, whatever its role: it deletes expired tokens
 * (hourly) and sweeps blobs nothing references (the first sweep at once, counting what is
 * unreferenced now, from which the upload quota starts; then every half retention, at most every
 * 10 minutes).
 */
import type { Logger } from 'pino';
import type { BlobSweeper } from './blob-sweeper.js';
import type { Store } from './store/store.js';

export class Housekeeping {
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly store: Store,
    private readonly uploads: BlobSweeper,
    private readonly blobRetentionMs: number,
    private readonly log: Logger,
  ) {}

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
    const sweepBlobs = (): void =>
      void this.uploads
        .sweep()
        .catch((err: unknown) => this.log.warn({ err }, 'sweeping blobs failed'));
    sweepBlobs();
    const blobSweep = setInterval(
      sweepBlobs,
      Math.min(600_000, Math.max(1000, Math.floor(this.blobRetentionMs / 2))),
    );
    blobSweep.unref();
    this.timers.push(blobSweep);
  }

  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }
}
