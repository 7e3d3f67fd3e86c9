/** Blobs that an upload or sync in progress needs: garbage collection must not remove them. */
export class BlobPins {
  private readonly counts = new Map<string, number>();

  pin(hashes: Iterable<string>): () => void {
    const list = [...hashes];
    for (const sha of list) this.counts.set(sha, (this.counts.get(sha) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const sha of list) {
        const n = (this.counts.get(sha) ?? 1) - 1;
        if (n <= 0) this.counts.delete(sha);
        else this.counts.set(sha, n);
      }
    };
  }

  has(sha256: string): boolean {
    return this.counts.has(sha256);
  }

  all(): string[] {
    return [...this.counts.keys()];
  }
}
