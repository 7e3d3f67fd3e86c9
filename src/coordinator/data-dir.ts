/**
 * The data dir holds the database (password hashes, token hashes, agents' access keys, backups'
 * secrets) and the blobs: only the coordinator's user may read it. Modes are set at every start,
 * not only when the dir is made, so a dir made by hand (or by an older version) is fixed too.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Files that exist at start: the database with its journal, and secrets saved beside it. */
const PRIVATE_FILES = [
  'muster.db',
  'muster.db-wal',
  'muster.db-shm',
  'admin-password',
  'ha.json',
  'secrets.key',
];

/** Makes the data dir (0700) and restricts what is already in it; call before opening the store. */
export async function secureDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  await restrictFiles(dataDir);
  await mkdir(join(dataDir, 'blobs'), { recursive: true, mode: 0o700 });
  await chmod(join(dataDir, 'blobs'), 0o700);
}

/** Sets 0600 on those of the private files that exist (again after the store made its journal). */
export async function restrictFiles(dataDir: string): Promise<void> {
  for (const name of PRIVATE_FILES) {
    await chmod(join(dataDir, name), 0o600).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}
