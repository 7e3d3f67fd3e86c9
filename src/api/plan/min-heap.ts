/** A binary min-heap of strings (code-unit order): the ready tasks of a topological sort. */

export class MinHeap {
  private readonly items: string[] = [];

  push(item: string): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((a[parent] as string) <= item) break;
      a[i] = a[parent] as string;
      i = parent;
    }
    a[i] = item;
  }

  pop(): string | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      let value = last;
      if (l < a.length && (a[l] as string) < value) {
        smallest = l;
        value = a[l] as string;
      }
      if (r < a.length && (a[r] as string) < value) smallest = r;
      if (smallest === i) break;
      a[i] = a[smallest] as string;
      i = smallest;
    }
    a[i] = last;
    return top;
  }
}
