/**
 * Reference counts of things garbage collection must not remove: blobs an upload, sync or download
 * in progress needs, and versions an open connection has synced.
 */
export class Pins {
  private readonly counts = new Map<string, number>();

  pin(keys: Iterable<string>): () => void {
    const list = [...keys];
    for (const key of list) this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of list) {
        const n = (this.counts.get(key) ?? 1) - 1;
        if (n <= 0) this.counts.delete(key);
        else this.counts.set(key, n);
      }
    };
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  all(): string[] {
    return [...this.counts.keys()];
  }
}
