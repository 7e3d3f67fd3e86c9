/**
 * Which backup each primary coordinator has selected, as the primary says in the x-muster-backup
 * header of its answers. Kept in <config dir>/backups.json, `{ "<primary URL>": "<backup URL>" }`
 * (mode 0600), so that a later muster command can switch to the backup when the primary cannot be
 * reached (see api-client.ts). It is a cache: a file that cannot be read counts as empty and one
 * that cannot be written is left as it is, neither is an error.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { writeAtomic } from '../common/atomic-file.js';
import { dirname, join } from 'node:path';
import { configDir, normaliseUrl } from './config.js';

/** Where the backups of primaries are remembered; URLs are normalised (see normaliseUrl). */
export interface BackupDirectory {
  /** The backup remembered for a primary, if any. */
  get(primary: string): Promise<string | undefined>;
  /** Remembers the primary's backup, or forgets it with undefined. */
  set(primary: string, backup: string | undefined): Promise<void>;
}

export function backupsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'backups.json');
}

/** backups.json, read once per process and written only when an entry changes. */
export class BackupCache implements BackupDirectory {
  private entries: Promise<Map<string, string>> | undefined;
  /** Changes one at a time, so that concurrent answers write the file at most once. */
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  async get(primary: string): Promise<string | undefined> {
    return (await this.load()).get(primary);
  }

  set(primary: string, backup: string | undefined): Promise<void> {
    const next = this.queue.then(() => this.apply(primary, backup));
    // The caller gets the error from `next`; the queue only keeps the writes in order.
    this.queue = next.catch(() => undefined);
    return next;
  }

  private load(): Promise<Map<string, string>> {
    this.entries ??= readEntries(this.path);
    return this.entries;
  }

  private async apply(primary: string, backup: string | undefined): Promise<void> {
    if ((await this.load()).get(primary) === backup) return;
    // Another muster process may have written since: change only this entry of what is there now.
    const entries = await readEntries(this.path);
    this.entries = Promise.resolve(entries);
    if (entries.get(primary) === backup) return;
    if (backup === undefined) entries.delete(primary);
    else entries.set(primary, backup);
    // eslint-disable-next-line no-restricted-syntax -- a cache only (read-only home, full disk): the next answer of the primary says it again
    await writeEntries(this.path, entries).catch(() => undefined);
  }
}

async function readEntries(path: string): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return entries;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return entries;
  for (const [primary, backup] of Object.entries(json as Record<string, unknown>)) {
    if (typeof backup !== 'string') continue;
    try {
      entries.set(normaliseUrl(primary), normaliseUrl(backup));
    } catch {
      // Not a URL: skip the entry.
    }
  }
  return entries;
}

/** Readable by the user only (dir 0700, file 0600), atomically, like the credentials. */
async function writeEntries(path: string, entries: Map<string, string>): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const sorted = Object.fromEntries([...entries].sort(([a], [b]) => a.localeCompare(b)));
  await writeAtomic(path, `${JSON.stringify(sorted, null, 2)}\n`, 0o600);
}
