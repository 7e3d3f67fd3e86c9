/**
 * Where a compile that missed the cache runs (design §0.3, local-first):
 *
 * - `local`: always here;
 * - `auto` (the default): here while fewer compiles than this machine's cores run here — the
 *   cheapest thing a machine can do, no extra preprocessing pass; otherwise on an agent when the
 *   session's pool has slots on another machine (agents that share this machine's kernel add no
 *   cores); else here;
 * - `remote`: every compile that can run on an agent does (tests, and the benchmark row that
 *   compares the remote machinery with distcc and icecream).
 *
 * `muster build --placement`, or for the per-user service the variable `MUSTER_CC_PLACEMENT` in
 * the compile's environment (then in the service's own).
 */
import type { CompileSessionView } from '../../api/views/compile.js';

export const PLACEMENTS = ['auto', 'local', 'remote'] as const;
export type Placement = (typeof PLACEMENTS)[number];

export const PLACEMENT_ENV = 'MUSTER_CC_PLACEMENT';

export function isPlacement(text: string | undefined): text is Placement {
  return (PLACEMENTS as readonly (string | undefined)[]).includes(text);
}

/** How long a job may wait for an agent slot before it is compiled here instead. */
export function maxQueueMsFor(placement: Placement): number {
  // auto only sends a job when this machine is busy: a job that would queue is better run here
  // at once. remote sends everything: a few seconds of queue beat compiling here.
  // (With the compile's own limit it stays under the 5 minutes Node's fetch waits for headers.)
  return placement === 'remote' ? 5_000 : 100;
}

/** Agent slots on machines other than this one (an unknown machine counts as another). */
export function otherMachineSlots(capacity: CompileSessionView['capacity']): number {
  return capacity.agents.reduce((n, a) => n + (a.sameMachine === true ? 0 : a.slots), 0);
}

/** The local cores are all busy with compiles of this service (auto sends jobs away then). */
export function localCoresBusy(running: number, cores: number): boolean {
  return running >= Math.max(1, cores);
}

export type RemoteChoice =
  { readonly remote: true } | { readonly remote: false; readonly reason: string };

/** Whether a compile goes to an agent, given the pool (null: no session) and the local load. */
export function chooseRemote(
  placement: Placement,
  capacity: CompileSessionView['capacity'] | null,
): RemoteChoice {
  if (capacity === null) return { remote: false, reason: 'no-session' };
  if (placement === 'remote') return { remote: true };
  return otherMachineSlots(capacity) > 0
    ? { remote: true }
    : { remote: false, reason: 'no-agents-elsewhere' };
}
