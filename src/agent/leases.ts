/**
 * Fencing for coordinators that fail over (a primary and its backups share one instance id and
 * one cluster id). Per cluster, the agent grants a lease to one holder at a time: a holder is an
 * instance key plus the coordinator's holder id, with a term. A live lease is never taken away;
 * once it has expired (its holder stopped renewing), only the next term (one higher) may take it,
 * and a returning holder with an older term is refused. Connections that declare a cluster may
 * start tasks only while they hold its lease.
 * Terms survive agent restarts (data/leases.json), so an old term stays fenced off.
 *
 * A cluster is bound to the instance key of the first coordinator that claimed it (bind): only
 * holders of that key (a primary and the backup it replicates to) can bid for its lease, so
 * another coordinator sharing the agent cannot take the lease, nor push its term out of reach.
 * An agent admin can reset a cluster (reset), which forgets its term and its key.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../common/atomic-file.js';

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
  z.object({
    term: z.number().int().nonnegative(),
    holder: z.string(),
    publicKey: z.string().optional(),
  }),
);

/** leases.json as it is on disk; empty when there is none yet, or it cannot be read. */
async function readEntries(dataDir: string): Promise<z.infer<typeof fileSchema>> {
  try {
    const parsed = fileSchema.safeParse(
      JSON.parse(await readFile(join(dataDir, 'leases.json'), 'utf8')),
    );
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

/** The clusters leases.json records (for `muster agent leases`, which runs beside the agent). */
export async function readLeaseFile(
  dataDir: string,
): Promise<{ cluster: string; term: number; publicKey: string | null }[]> {
  return Object.entries(await readEntries(dataDir))
    .map(([cluster, { term, publicKey }]) => ({ cluster, term, publicKey: publicKey ?? null }))
    .sort((a, b) => a.cluster.localeCompare(b.cluster));
}

export class LeaseTable {
  private readonly leases = new Map<string, Lease>();
  /** The instance public key each cluster is bound to. */
  private readonly keys = new Map<string, string>();
  private saving: Promise<void> = Promise.resolve();
  private readonly file: string;

  constructor(
    private readonly dataDir: string,
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
    /** A write of leases.json failed (it holds terms and keys across restarts): for the log. */
    private readonly saveFailed: (err: unknown) => void = () => undefined,
  ) {
    this.file = join(dataDir, 'leases.json');
  }

  /** Loads the last terms; every loaded lease counts as expired. */
  async load(): Promise<void> {
    for (const [cluster, { term, holder, publicKey }] of Object.entries(
      await readEntries(this.dataDir),
    )) {
      if (holder !== '') this.leases.set(cluster, { term, holder, expiresAt: 0 });
      if (publicKey !== undefined) this.keys.set(cluster, publicKey);
    }
  }

  /**
   * Binds the cluster to this key on first sight; true when the key is the cluster's, else the
   * key it is bound to.
   */
  bind(cluster: string, publicKey: string): true | string {
    const bound = this.keys.get(cluster);
    if (bound !== undefined) return bound === publicKey ? true : bound;
    this.keys.set(cluster, publicKey);
    void this.save().catch(this.saveFailed);
    return true;
  }

  /** An agent admin's reset: forgets the cluster's lease, term and key. Whether it knew it. */
  reset(cluster: string): boolean {
    const known = this.leases.has(cluster) || this.keys.has(cluster);
    this.leases.delete(cluster);
    this.keys.delete(cluster);
    if (known) void this.save().catch(this.saveFailed);
    return known;
  }

  /** Every cluster this agent knows, for `muster agent leases`. */
  list(): { cluster: string; term: number; live: boolean; publicKey: string | null }[] {
    const now = this.clock();
    const clusters = new Set([...this.leases.keys(), ...this.keys.keys()]);
    return [...clusters].sort().map((cluster) => {
      const lease = this.leases.get(cluster);
      return {
        cluster,
        term: lease?.term ?? 0,
        live: lease !== undefined && lease.expiresAt > now,
        publicKey: this.keys.get(cluster) ?? null,
      };
    });
  }

  /** Takes (or keeps) the lease if the rules allow; says who has it either way. */
  acquire(cluster: string, holder: string, term: number): LeaseState {
    const now = this.clock();
    const current = this.leases.get(cluster);
    const live = current !== undefined && current.expiresAt > now;
    const same = current !== undefined && current.holder === holder && current.term === term;
    // Terms move by one: an expired lease goes to the next term only, so no bid can push the term
    // out of the cluster's reach (a coordinator that is several terms ahead catches up one at a
    // time, see AgentConnection.termToAsk).
    const allowed = current === undefined || same || (!live && term === current.term + 1);
    if (!allowed) return this.stateOf(cluster, holder, term);
    const changed = !same;
    this.leases.set(cluster, { term, holder, expiresAt: now + this.ttlMs });
    if (changed) void this.save().catch(this.saveFailed);
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
    // eslint-disable-next-line no-restricted-syntax -- a failed write was reported to saveFailed
    await this.saving.catch(() => undefined);
  }

  private save(): Promise<void> {
    const snapshot: Record<string, { term: number; holder: string; publicKey?: string }> = {};
    for (const [cluster, { term, holder }] of this.leases) snapshot[cluster] = { term, holder };
    for (const [cluster, publicKey] of this.keys)
      snapshot[cluster] = { ...(snapshot[cluster] ?? { term: 0, holder: '' }), publicKey };
    // Writes follow one another; a failed one was reported to saveFailed, the next one goes on.
    this.saving = this.saving
      .catch(() => undefined)
      .then(() => writeAtomic(this.file, `${JSON.stringify(snapshot, null, 2)}\n`));
    return this.saving;
  }
}
