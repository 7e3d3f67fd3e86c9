/**
 * A lock between processes of one user on one machine: a file created with O_EXCL. Used around
 * read-modify-write of small shared files (the stats) and around starting a service on a socket
 * path. A lock older than `staleMs` is taken to belong to a crashed holder and is removed.
 */
import { open, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LockOptions {
  /** Give up after this long (then `fn` runs without the lock: callers' writes stay atomic). */
  readonly waitMs?: number;
  readonly staleMs?: number;
}

/** Runs `fn` holding `path` as a lock (best effort, bounded: see LockOptions.waitMs). */
export async function withLockFile<T>(
  path: string,
  fn: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const waitMs = options.waitMs ?? 2_000;
  const staleMs = options.staleMs ?? 10_000;
  const deadline = Date.now() + waitMs;
  let held = false;
  while (!held) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.close();
      held = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') break;
      const s = await stat(path).catch(() => null);
      if (s !== null && Date.now() - s.mtimeMs > staleMs) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() >= deadline) break;
      await sleep(10);
    }
  }
  try {
    return await fn();
  } finally {
    if (held) await rm(path, { force: true });
  }
}
