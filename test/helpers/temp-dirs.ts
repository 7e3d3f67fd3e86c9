/**
 * Temp dirs of one test process: every dir the helpers make is recorded, and removed when the
 * helpers kill what they started (agent-process.ts `cleanup`, coordinator-process.ts
 * `killCoordinators`) — except a dir a process still running holds (a coordinator's data dir).
 */
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made = new Set<string>();
/** Dirs in use by a process a helper started, with how many hold each. */
const held = new Map<string, number>();

/**
 * A fresh temp dir. As root it is searchable by others (0711, not listable): an agent running as
 * root runs tasks as users of their own, which must be able to reach the agent's temp dir.
 */
export async function makeTempDir(prefix = 'muster-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.add(dir);
  if (process.getuid?.() === 0) await chmod(dir, 0o711);
  return dir;
}

/**
 * A temp dir every task may write to (sticky and world-writable, like /tmp): where tests' tasks
 * leave marker files, whichever user an agent runs them as.
 */
export async function makeSharedDir(prefix = 'muster-shared-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.add(dir);
  await chmod(dir, 0o1777);
  return dir;
}

/** Marks `dir` as in use until `release(dir)`: removeMadeDirs leaves it alone meanwhile. */
export function hold(dir: string): void {
  held.set(dir, (held.get(dir) ?? 0) + 1);
}

export function release(dir: string): void {
  const count = (held.get(dir) ?? 0) - 1;
  if (count > 0) held.set(dir, count);
  else held.delete(dir);
}

export function isHeld(dir: string): boolean {
  return held.has(dir);
}

/** The dirs this process made with makeTempDir/makeSharedDir and has not removed yet. */
export function madeDirs(): string[] {
  return [...made];
}

/**
 * Removes a tree, also one with read-only dirs in it (an agent's version dirs are 0555; root
 * does not care, another user does), retrying while a process that just exited lets go of it.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
  made.delete(dir);
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (entry.isDirectory()) await makeWritable(join(dir, entry.name));
  }
}

/** Removes the given made dirs (all of them when none are given) that no process holds. */
export async function removeMadeDirs(dirs: Iterable<string> = made): Promise<void> {
  const free = [...dirs].filter((dir) => made.has(dir) && !held.has(dir));
  await Promise.all(free.map(removeTree));
}
