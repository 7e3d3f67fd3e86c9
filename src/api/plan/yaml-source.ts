/**
 * The YAML locator: the parsed document of a plan, for the line of any field, the source text of
 * scalars as written, the node count and duplicate keys.
 */
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Document,
  type LineCounter,
  type Pair,
  type YAMLMap,
} from 'yaml';
import { joinPath } from './problems.js';

/** Steps from the document's root to a node: mapping keys and list indexes. */
export type AstPath = readonly (string | number)[];

/** The parsed YAML document, for line numbers and the source text of scalars. */
export class Source {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  lineOfOffset(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /**
   * The AST node at `path` (undefined when the path leaves the document, e.g. through a merge key)
   * and the line where its last step is written: the key's line for a mapping entry, the item's
   * line for a list item, else the closest ancestor's.
   */
  locate(path: AstPath): { node: unknown; line: number | undefined } {
    let node: unknown = this.doc.contents;
    let line: number | undefined;
    for (const step of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = this.pairs(node).get(String(step));
        if (pair === undefined) return { node: undefined, line };
        line = this.lineOf(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof step === 'number') {
        node = node.items[step];
        line = this.lineOf(node) ?? line;
      } else {
        return { node: undefined, line };
      }
    }
    return { node, line };
  }

  private readonly pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

  /** A mapping's entries by key (the last one wins, as in toJS()). */
  private pairs(map: YAMLMap): Map<string, Pair> {
    let index = this.pairIndex.get(map);
    if (index === undefined) {
      index = new Map();
      for (const pair of map.items) {
        if (isScalar(pair.key)) index.set(String(pair.key.value), pair);
      }
      this.pairIndex.set(map, index);
    }
    return index;
  }

  line(path: AstPath): number | undefined {
    return this.locate(path).line;
  }

  /**
   * A scalar as text: strings as they are; numbers and booleans as written in the YAML (so
   * `1.10` stays "1.10" and `0x1F` stays "0x1F"); anything else undefined.
   */
  scalarText(path: AstPath, value: unknown): string | undefined {
    if (typeof value === 'string') return value;
    if (typeof value !== 'number' && typeof value !== 'boolean') return undefined;
    const { node } = this.locate(path);
    if (isScalar(node) && node.value === value && typeof node.source === 'string') {
      return node.source;
    }
    return String(value);
  }

  private lineOf(node: unknown): number | undefined {
    if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
    const range = (node as { range?: [number, number, number] | null }).range;
    return range ? this.lineOfOffset(range[0]) : undefined;
  }

  /**
   * How many nodes the document holds (mappings, lists, keys, values, aliases), counting no
   * further than `limit + 1`. Iterative: nesting depth costs no stack.
   */
  countNodes(limit: number): number {
    let count = 0;
    const stack: unknown[] = [this.doc.contents];
    while (stack.length > 0 && count <= limit) {
      const node = stack.pop();
      if (isPair(node)) {
        stack.push(node.key, node.value);
      } else if (isMap(node) || isSeq(node)) {
        count++;
        for (const item of node.items) stack.push(item);
      } else if (node !== null && typeof node === 'object') {
        count++;
      }
    }
    return count;
  }

  /** Every key written twice in one mapping (the YAML library would keep only the last one). */
  duplicateKeys(): { path: string; key: string; lines: number[] }[] {
    const found: { path: string; key: string; lines: number[] }[] = [];
    const seen = new Set<unknown>();
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object' || seen.has(node)) return;
      seen.add(node);
      if (isMap(node)) {
        const byKey = new Map<string, number[]>();
        for (const pair of node.items) {
          if (isScalar(pair.key)) {
            const key = String(pair.key.value);
            const line = this.lineOf(pair.key) ?? 0;
            // Appended in place: copying the list per key made 40,000 repeats quadratic.
            const lines = byKey.get(key);
            if (lines === undefined) byKey.set(key, [line]);
            else lines.push(line);
            walk(pair.value, joinPath(path, key));
          } else {
            walk(pair.value, path);
          }
        }
        for (const [key, lines] of byKey) {
          if (lines.length > 1) found.push({ path, key, lines });
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, `${path}[${i}]`));
      }
    };
    walk(this.doc.contents, '');
    return found;
  }
}
