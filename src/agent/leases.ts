/**
 * Fencing for coordinators that fail over (a primary and its backups share one instance id and
 * one cluster id). Per cluster, the agent grants a lease to one holder at a time: a holder is an
 * instance key with a term. A live lease is never taken away; once it has expired (its holder
 * stopped renewing), only a higher term may take it, and a returning holder with an older term is
 * refused. Connections that declare a cluster may start tasks only while they hold its lease.
 * Terms survive agent restarts (data/leases.json), so an old term stays fenced off.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../protocol/atomic-file.js';

export interface LeaseState {
  held: boolean;
  /** The term of the current (or last) holder. */
  term: number;
  /** How long the lease stays live without renewal; 0 when it is not live. */
  expiresInMs: number;
}

interface Lease {
  term: number;
  holder: string;
  expiresAt: number;
}

const fileSchema = z.record(
  z.string(),
  z.object({ term: z.number().int().nonnegative(), holder: z.string() }),
);

export class LeaseTable {
  private readonly leases = new Map<string, Lease>();
  private saving: Promise<void> = Promise.resolve();
  private readonly file: string;

  constructor(
    dataDir: string,
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.file = join(dataDir, 'leases.json');
  }

  /** Loads the last terms; every loaded lease counts as expired. */
  async load(): Promise<void> {
    try {
      const parsed = fileSchema.safeParse(JSON.parse(await readFile(this.file, 'utf8')));
      if (!parsed.success) return;
      for (const [cluster, { term, holder }] of Object.entries(parsed.data)) {
        this.leases.set(cluster, { term, holder, expiresAt: 0 });
      }
    } catch {
      // No file yet (or unreadable): no terms to keep.
    }
  }

  /** Takes (or keeps) the lease if the rules allow; says who has it either way. */
  acquire(cluster: string, holder: string, term: number): LeaseState {
    const now = this.clock();
    const current = this.leases.get(cluster);
    const live = current !== undefined && current.expiresAt > now;
    const same = current !== undefined && current.holder === holder && current.term === term;
    const allowed = current === undefined || same || (!live && term > current.term);
    if (!allowed) return this.stateOf(cluster, holder, term);
    const changed = !same;
    this.leases.set(cluster, { term, holder, expiresAt: now + this.ttlMs });
    if (changed) void this.save();
    return this.stateOf(cluster, holder, term);
  }

  /** Extends the lease if this holder has it; returns whether it does. */
  renew(cluster: string, holder: string, term: number): boolean {
    const lease = this.leases.get(cluster);
    const now = this.clock();
    if (!lease || lease.holder !== holder || lease.term !== term || lease.expiresAt <= now)
      return false;
    lease.expiresAt = now + this.ttlMs;
    return true;
  }

  /** Gives the lease up at once (a backup returning to standby). */
  release(cluster: string, holder: string, term: number): void {
    const lease = this.leases.get(cluster);
    if (lease && lease.holder === holder && lease.term === term) lease.expiresAt = 0;
  }

  isHeld(cluster: string, holder: string, term: number): boolean {
    return this.stateOf(cluster, holder, term).held;
  }

  stateOf(cluster: string, holder: string, term: number): LeaseState {
    const lease = this.leases.get(cluster);
    const now = this.clock();
    if (!lease) return { held: false, term: 0, expiresInMs: 0 };
    const live = lease.expiresAt > now;
    return {
      held: live && lease.holder === holder && lease.term === term,
      term: lease.term,
      expiresInMs: live ? lease.expiresAt - now : 0,
    };
  }

  /** Resolves once every change so far is on disk. */
  async flush(): Promise<void> {
    await this.saving.catch(() => undefined);
  }

  private save(): Promise<void> {
    const snapshot: Record<string, { term: number; holder: string }> = {};
    for (const [cluster, { term, holder }] of this.leases) snapshot[cluster] = { term, holder };
    this.saving = this.saving
      .catch(() => undefined)
      .then(() => writeAtomic(this.file, `${JSON.stringify(snapshot, null, 2)}\n`));
    return this.saving;
  }
}
