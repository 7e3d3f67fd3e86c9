/**
 * What the coordinator's data dir takes on disk, for /metrics (issue 14): the database files
 * (muster.db, -wal, -shm: three stats) plus the blob store's bytes as the blob sweep last counted
 * them (its walk stats every blob anyway; a scrape never walks the blob dir), and the free and
 * total bytes of the data dir's filesystem (statfs). Sampled at most every `cacheMs` (30 s): a
 * scrape every second costs the syscalls once.
 */
import { statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

export interface DiskUsageSample {
  /** The database files and the blob store (as of the last sweep; 0 before the first). */
  dataDirBytes: number;
  /** The blob store as the last sweep counted it; undefined before the first sweep ended. */
  blobBytes: number | undefined;
  /** Bytes an unprivileged process may still write on the data dir's filesystem. */
  freeBytes: number;
  /** The size of that filesystem. */
  sizeBytes: number;
}

export const DATABASE_FILES = ['muster.db', 'muster.db-wal', 'muster.db-shm'];
export const DISK_USAGE_CACHE_MS = 30_000;

export class DiskUsage {
  private last: { at: number; value: DiskUsageSample | undefined } | undefined;

  constructor(
    private readonly dataDir: string,
    /** The blob store's bytes as the sweep last counted them. */
    private readonly blobBytes: () => number | undefined,
    private readonly cacheMs = DISK_USAGE_CACHE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The usage (cached); undefined when the data dir cannot be read. */
  sample(): DiskUsageSample | undefined {
    const now = this.now();
    if (this.last === undefined || now - this.last.at >= this.cacheMs) {
      let value: DiskUsageSample | undefined;
      try {
        value = this.measure();
      } catch {
        value = undefined;
      }
      this.last = { at: now, value };
    }
    return this.last.value;
  }

  private measure(): DiskUsageSample {
    let database = 0;
    for (const name of DATABASE_FILES)
      database += statSync(join(this.dataDir, name), { throwIfNoEntry: false })?.size ?? 0;
    const blobBytes = this.blobBytes();
    const fs = statfsSync(this.dataDir);
    return {
      dataDirBytes: database + (blobBytes ?? 0),
      blobBytes,
      freeBytes: fs.bavail * fs.bsize,
      sizeBytes: fs.blocks * fs.bsize,
    };
  }
}
