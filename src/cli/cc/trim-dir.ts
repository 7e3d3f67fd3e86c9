/**
 * Bounds on the compile cache's folder of small files (the remembered toolchain ids; the explain
 * records are rows of the tier's database). A file's mtime is its use stamp: set when it is
 * written, touched when used.
 */
import { utimesSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface StampedFile {
  readonly path: string;
  readonly size: number;
  /** mtime in ms: when it was last written or used. */
  readonly used: number;
}

/** A temp file (common/atomic-file.ts names) older than this was left by a crashed writer. */
const STALE_TEMP_MS = 3_600_000;

/** Sets the file's use stamp to now; a file removed meanwhile is simply gone. */
export function touch(file: string): Promise<void> {
  const now = new Date();
  try {
    // Synchronous: one system call on every hit, cheaper than a trip through the thread pool.
    utimesSync(file, now, now);
  } catch {
    // The stamp only orders trimming: a file that cannot be stamped is trimmed a bit sooner.
  }
  return Promise.resolve();
}

/** The files named `name` in `dir`, with their stamps; stale temp files met are removed. */
export async function listStamped(dir: string, name: RegExp): Promise<StampedFile[]> {
  const out: StampedFile[] = [];
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const path = join(dir, entry);
    const s = await stat(path).catch(() => null);
    if (s?.isFile() !== true) continue;
    if (name.test(entry)) out.push({ path, size: s.size, used: s.mtimeMs });
    else if (entry.endsWith('.tmp') && Date.now() - s.mtimeMs > STALE_TEMP_MS) {
      await rm(path, { force: true });
    }
  }
  return out;
}

/**
 * Keeps the `max` most recently used files named `name` directly in `dir`, removing the others.
 * Only a directory listing when there are not more than `max` (no stat per file).
 */
export async function keepNewest(dir: string, name: RegExp, max: number): Promise<void> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => name.test(n));
  if (names.length <= max) return;
  const files = await listStamped(dir, name);
  files.sort((a, b) => b.used - a.used);
  for (const old of files.slice(max)) await rm(old.path, { force: true });
}
