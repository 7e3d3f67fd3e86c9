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

  /** Visits waiting tasks in order; `visit` returns 'take' to remove one, 'skip' to leave it, 'stop' to end. */
  scan(visit: (name: string) => 'take' | 'skip' | 'stop'): void {
    for (let i = this.head; i < this.items.length; i++) {
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
    this.compact();
  }

  private compact(): void {
    if (this.head < 1024 || this.head < this.items.length / 2) return;
    this.items = this.items.slice(this.head).filter((n) => n !== undefined);
    this.head = 0;
    this.holes = 0;
  }
}
