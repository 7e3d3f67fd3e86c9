/**
 * Admission of connections that have not authenticated yet. Before authentication a peer is a
 * stranger, so what strangers can hold is capped: per source address (IPv6: per /64, which one
 * host usually owns whole) a new connection over the cap is refused; in all, a new connection
 * over the cap pushes out the oldest unauthenticated one. Dropping the oldest rather than the
 * newest keeps the agent reachable: to lock a coordinator out, a flood would have to replace the
 * whole table within the few milliseconds its handshake takes, instead of just keeping the table
 * full. A connection leaves the gate when it authenticates or closes.
 */
import { addressKey } from './addresses.js';

export interface GateLimits {
  /** Unauthenticated connections in all. */
  maxTotal: number;
  /** Unauthenticated connections per source address key (see addressKey). */
  maxPerAddress: number;
}

/** One admitted connection's place in the gate. */
export interface GateTicket {
  readonly address: string;
  /** Leaves the gate (authenticated or closed); idempotent. */
  release(): void;
}

export type Admission =
  { admitted: GateTicket; evicted: string | undefined } | { refused: 'per-address' };

interface Entry extends GateTicket {
  readonly key: string;
  readonly evict: () => void;
}

export class ConnectionGate {
  /** In admission order, so the first is the oldest. */
  private readonly entries = new Set<Entry>();
  private readonly perKey = new Map<string, number>();

  constructor(private limits: GateLimits) {}

  get currentLimits(): Readonly<GateLimits> {
    return this.limits;
  }

  /** New limits (SIGHUP): admitted connections stay; the next admissions follow them. */
  setLimits(limits: GateLimits): void {
    this.limits = { ...limits };
  }

  get size(): number {
    return this.entries.size;
  }

  /** Evicts every entry (the agent is shutting down). */
  evictAll(): void {
    for (const entry of [...this.entries]) {
      entry.release();
      entry.evict();
    }
  }

  /**
   * Admits a connection from `address`, or refuses it when its address is at the cap. When the
   * total is at the cap, the oldest entry is evicted first: its `evict` (which should destroy
   * that socket) is called and its address returned as `evicted`.
   */
  admit(address: string, evict: () => void): Admission {
    const key = addressKey(address);
    const count = this.perKey.get(key) ?? 0;
    if (count >= this.limits.maxPerAddress) return { refused: 'per-address' };
    let evicted: string | undefined;
    if (this.entries.size >= this.limits.maxTotal) {
      const oldest = this.entries.values().next().value;
      if (oldest !== undefined) {
        evicted = oldest.address;
        oldest.release();
        oldest.evict();
      }
    }
    let released = false;
    const entry: Entry = {
      address,
      key,
      evict,
      release: () => {
        if (released) return;
        released = true;
        this.entries.delete(entry);
        const left = (this.perKey.get(key) ?? 1) - 1;
        if (left > 0) this.perKey.set(key, left);
        else this.perKey.delete(key);
      },
    };
    this.entries.add(entry);
    this.perKey.set(key, count + 1);
    return { admitted: entry, evicted };
  }
}
