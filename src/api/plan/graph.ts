/** The task graph of a plan: its dependency cycles and a stable topological order. */
import { MusterError } from '../../protocol/errors.js';
import { MinHeap } from './min-heap.js';
import { compareNames } from './names.js';
import type { PlanTask } from './types.js';

/** A checked task, keyed by its name in the maps below. */
export interface GraphNode {
  readonly task: PlanTask;
}

/**
 * One cycle per strongly connected component (Tarjan), each as task names from the smallest
 * name in it round to that name again along the shortest path, e.g. ["a", "b", "a"].
 */
export function findCycles(tasks: ReadonlyMap<string, GraphNode>): string[][] {
  const edges = (name: string): string[] =>
    (tasks.get(name)?.task.needs ?? [])
      .filter((n) => n !== name && tasks.has(n))
      .sort(compareNames);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;

  // Iterative Tarjan (a 10,000-task chain would overflow a recursive one).
  for (const startName of [...tasks.keys()].sort(compareNames)) {
    if (index.has(startName)) continue;
    const work: { name: string; next: string[]; i: number }[] = [];
    const visit = (name: string) => {
      index.set(name, counter);
      low.set(name, counter);
      counter++;
      stack.push(name);
      onStack.add(name);
      work.push({ name, next: edges(name), i: 0 });
    };
    visit(startName);
    while (work.length > 0) {
      const frame = work[work.length - 1] as { name: string; next: string[]; i: number };
      if (frame.i < frame.next.length) {
        const to = frame.next[frame.i++] as string;
        if (!index.has(to)) visit(to);
        else if (onStack.has(to)) {
          low.set(frame.name, Math.min(low.get(frame.name) ?? 0, index.get(to) ?? 0));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) {
        low.set(parent.name, Math.min(low.get(parent.name) ?? 0, low.get(frame.name) ?? 0));
      }
      if (low.get(frame.name) === index.get(frame.name)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop() as string;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.name);
        if (component.length > 1) components.push(component);
      }
    }
  }

  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = [...component].sort(compareNames)[0] as string;
    // Shortest way from start back to start inside the component (breadth first).
    const previous = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    search: while (queue.length > 0) {
      const name = queue.shift() as string;
      for (const to of edges(name)) {
        if (!members.has(to)) continue;
        if (to === start) {
          last = name;
          break search;
        }
        if (!previous.has(to)) {
          previous.set(to, name);
          queue.push(to);
        }
      }
    }
    const path = [start];
    for (let at = last; at !== undefined && at !== start; at = previous.get(at)) path.push(at);
    const cycle = [start, ...path.slice(1).reverse(), start];
    cycles.push(cycle);
  }
  return cycles.sort((a, b) => compareNames(a[0] as string, b[0] as string));
}

/** Dependencies first; among tasks ready at the same time, by name (Kahn with a min-heap). */
export function topologicalOrder(tasks: ReadonlyMap<string, GraphNode>): PlanTask[] {
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const { task } of tasks.values()) {
    waiting.set(task.name, task.needs.length);
    for (const need of task.needs) {
      const list = dependents.get(need);
      if (list === undefined) dependents.set(need, [task.name]);
      else list.push(task.name);
    }
  }
  const heap = new MinHeap();
  for (const [name, n] of waiting) if (n === 0) heap.push(name);
  const out: PlanTask[] = [];
  for (let name = heap.pop(); name !== undefined; name = heap.pop()) {
    out.push((tasks.get(name) as GraphNode).task);
    for (const dependent of dependents.get(name) ?? []) {
      const n = (waiting.get(dependent) ?? 0) - 1;
      waiting.set(dependent, n);
      if (n === 0) heap.push(dependent);
    }
  }
  if (out.length !== tasks.size) {
    // Cannot happen: cycles were reported above.
    throw new MusterError('INTERNAL', 'plan: topological sort left tasks behind');
  }
  return out;
}
