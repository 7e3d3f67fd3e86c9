/**
 * High availability's own state: the `ha_state` table (migration 4), one JSON value per key,
 * typed here. Not user settings: none of it shows in the settings API. Replicated (the backup
 * learns the term, and which backup is selected, from its primary), and replaced by a snapshot
 * like the other replicated tables; a backup writes its takeover record only while it does not
 * replicate (see ha/backup-side.ts).
 */
import type Database from 'better-sqlite3';
import { z } from 'zod';

/** What a takeover started from, so the primary can take the history back later. */
export const takeoverSchema = z.object({
  term: z.number().int(),
  at: z.string(),
  /** Builds unfinished at takeover (the backup may change them). */
  activeBuildIds: z.array(z.number().int()),
  /** Builds above this id were created by the backup. */
  maxBuildId: z.number().int(),
  maxLogId: z.number().int(),
  maxTokenId: z.number().int(),
});
export type TakeoverRecord = z.infer<typeof takeoverSchema>;

/** How far a failback (on the primary) has merged each build's logs, for the backup's term. */
const failbackProgressSchema = z.object({
  term: z.number().int(),
  logs: z.record(z.string(), z.number().int()),
});
export type FailbackProgress = z.infer<typeof failbackProgressSchema>;

const deselectionSchema = z.object({ name: z.string(), at: z.string(), reason: z.string() });
/** The last automatic deselection of the selected backup (on the primary). */
export type Deselection = z.infer<typeof deselectionSchema>;

/** The keys of ha_state (migration 4 moved them there from the settings named after each). */
export const HA_KEYS = {
  /** Cluster.Term: the fencing term this coordinator works under. */
  term: 'term',
  /** HA.Takeover (a backup's): what its takeover started from, until handed back. */
  takeover: 'takeover',
  /** HA.Failback (a primary's): the progress of a failback. */
  failback: 'failback',
  /** Backup.Selected (a primary's): the name of the selected backup. */
  selectedBackup: 'selectedBackup',
  /** Backup.LastDeselected (a primary's). */
  lastDeselection: 'lastDeselection',
  /**
   * Backup.Owed (a primary's): backups that were selected and then deselected before they said
   * they had nothing to hand back, the only ones besides the selected backup that it calls.
   */
  owed: 'owed',
} as const;

export class HaStateStore {
  private readonly sql;

  constructor(db: Database.Database) {
    this.sql = {
      get: db.prepare<[string], { value: string }>('SELECT value FROM ha_state WHERE key = ?'),
      put: db.prepare<[string, string]>(
        `INSERT INTO ha_state (key, value) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
      remove: db.prepare<[string]>('DELETE FROM ha_state WHERE key = ?'),
    };
  }

  /** The fencing term (1 until one was taken). */
  term(): number {
    const value = this.read(HA_KEYS.term);
    return typeof value === 'number' && Number.isInteger(value) ? value : 1;
  }

  setTerm(term: number): void {
    this.write(HA_KEYS.term, term);
  }

  takeover(): TakeoverRecord | undefined {
    const parsed = takeoverSchema.safeParse(this.read(HA_KEYS.takeover));
    return parsed.success ? parsed.data : undefined;
  }

  setTakeover(record: TakeoverRecord | undefined): void {
    this.write(HA_KEYS.takeover, record);
  }

  failbackProgress(): FailbackProgress | undefined {
    const parsed = failbackProgressSchema.safeParse(this.read(HA_KEYS.failback));
    return parsed.success ? parsed.data : undefined;
  }

  setFailbackProgress(progress: FailbackProgress | undefined): void {
    this.write(HA_KEYS.failback, progress);
  }

  selectedBackup(): string | undefined {
    const value = this.read(HA_KEYS.selectedBackup);
    return typeof value === 'string' ? value : undefined;
  }

  setSelectedBackup(name: string | undefined): void {
    this.write(HA_KEYS.selectedBackup, name);
  }

  lastDeselection(): Deselection | undefined {
    const parsed = deselectionSchema.safeParse(this.read(HA_KEYS.lastDeselection));
    return parsed.success ? parsed.data : undefined;
  }

  setLastDeselection(deselection: Deselection | undefined): void {
    this.write(HA_KEYS.lastDeselection, deselection);
  }

  owed(): string[] {
    const value = this.read(HA_KEYS.owed);
    return Array.isArray(value) ? value.filter((n): n is string => typeof n === 'string') : [];
  }

  setOwed(names: string[]): void {
    this.write(HA_KEYS.owed, names.length > 0 ? names : undefined);
  }

  private read(key: string): unknown {
    const row = this.sql.get.get(key);
    return row && (JSON.parse(row.value) as unknown);
  }

  /** undefined removes the key. */
  private write(key: string, value: unknown): void {
    const json = JSON.stringify(value) as string | undefined;
    if (json === undefined) this.sql.remove.run(key);
    else this.sql.put.run(key, json);
  }
}
