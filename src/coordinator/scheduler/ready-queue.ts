/**
 * Tasks waiting for a slot, oldest first. Taking the head is O(1); taking from the middle (a task
 * whose labels only a later agent matches) leaves a hole that is compacted away in bulk, so a
 * scheduling pass never copies the whole queue.
 */
export class ReadyQueue {
  private items: (string | undefined)[] = [];
  private head = 0;
  private holes = 0;

  get size(): number {
    return this.items.length - this.head - this.holes;
  }

  push(name: string): void {
    this.items.push(name);
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.holes = 0;
  }

  /**
   * Visits waiting tasks in order; `visit` returns 'take' to remove one, 'skip' to leave it,
   * 'stop' to end. Starts at `from`, a position an earlier scan of the same pass returned (no
   * compact() in between), and returns the position of the first task it did not visit, so a
   * pass that comes back to this queue goes on where it left off.
   */
  scan(visit: (name: string) => 'take' | 'skip' | 'stop', from = 0): number {
    let i = Math.max(from, this.head);
    for (; i < this.items.length; i++) {
      const name = this.items[i];
      if (name === undefined) {
        if (i === this.head) {
          this.head++;
          this.holes--;
        }
        continue;
      }
      const verdict = visit(name);
      if (verdict === 'stop') break;
      if (verdict === 'take') {
        if (i === this.head) this.head++;
        else {
          this.items[i] = undefined;
          this.holes++;
        }
      }
    }
    return i;
  }

  /** Drops the holes scans left, once they are many (positions from earlier scans end here). */
  compact(): void {
    if (this.head < 1024 || this.head < this.items.length / 2) return;
    this.items = this.items.slice(this.head).filter((n) => n !== undefined);
    this.head = 0;
    this.holes = 0;
  }
}
