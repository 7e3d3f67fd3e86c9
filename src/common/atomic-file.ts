import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';

/**
 * Writes a file atomically (a temp file next to it, then rename) with the given mode; a failed
 * write leaves no temp file behind. The umask can only narrow the mode.
 */
export async function writeAtomic(
  file: string,
  content: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, content, { mode });
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * writeAtomic with direct system calls: for small files written where a thread-pool round trip
 * per step (open, write, close, rename) costs more CPU than the writes (the compile cache's local
 * tier: an entry, a manifest, an object of tens of KiB).
 */
export function writeAtomicSync(file: string, content: string | Uint8Array, mode = 0o644): void {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, content, { mode });
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}
