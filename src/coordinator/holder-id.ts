/**
 * This coordinator's holder id: which coordinator of its cluster it is, as agents record lease
 * holders. A primary and its backup share their instance id and key (replicated), so this one
 * lives in the data dir, never in the store: made at the first start, kept across restarts.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from '../common/atomic-file.js';

const HOLDER_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export async function loadOrCreateHolderId(dataDir: string): Promise<string> {
  const file = join(dataDir, 'holder-id');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (HOLDER_ID.test(existing)) return existing;
  } catch {
    // First start (or the file was removed): make one.
  }
  const id = randomBytes(12).toString('hex');
  await writeAtomic(file, `${id}\n`, 0o600);
  return id;
}
