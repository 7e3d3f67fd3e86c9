/**
 * The scheduler's in-memory picture of one unfinished build: each task's row, how many of its
 * needs are unfinished, who depends on it, and which tasks are ready. Loaded from the store once
 * (also after a restart) and then kept in step with every write, so a scheduling pass costs
 * O(ready tasks), not O(all tasks). A compile session's build is open: its jobs that ran on the
 * client are in the store only (already finished, they change nothing here); its remote jobs
 * are added while they wait or run (addJob) and dropped once they ended (dropJob).
 */
import type { PlanTask } from '../../api/plan/types.js';
import type { BuildRow, TaskRow } from '../store/types.js';
import type { TaskStatus } from '../../api/status.js';
import type { JobState } from './compile-jobs.js';
import { ReadyQueue } from './ready-queue.js';

export interface TaskState {
  row: TaskRow;
  plan: PlanTask;
  waitingOn: number;
  dependents: string[];
  /** A remote compile job of an open build (compile-jobs.ts): not in the plan. */
  job?: JobState;
}

const TERMINAL: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'cancelled', 'skipped']);

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL.has(status);
}

export class ActiveBuild {
  readonly tasks = new Map<string, TaskState>();
  /** Tasks whose needs all succeeded and that wait for a slot, in plan order. */
  readonly ready = new ReadyQueue();
  cancelling = false;
  /** Attempts of this build in flight. */
  inFlight = 0;
  /** Tasks not yet in a terminal state. */
  private remaining = 0;

  constructor(
    public row: BuildRow,
    rows: TaskRow[],
  ) {
    const byName = new Map(rows.map((r) => [r.name, r]));
    for (const plan of row.plan.tasks) {
      const taskRow = byName.get(plan.name);
      if (taskRow) this.tasks.set(plan.name, { row: taskRow, plan, waitingOn: 0, dependents: [] });
    }
    for (const state of this.tasks.values()) {
      if (!isTerminal(state.row.status)) this.remaining++;
      for (const need of state.plan.needs) {
        const dep = this.tasks.get(need);
        if (!dep) continue;
        dep.dependents.push(state.plan.name);
        if (dep.row.status !== 'succeeded') state.waitingOn++;
      }
    }
  }

  get id(): number {
    return this.row.id;
  }

  /**
   * Nothing is left to run. An open build (a compile session) is not finished while open, even
   * with no task left: its client closes it (Scheduler.close), or a cancel ends it.
   */
  get finished(): boolean {
    return this.remaining === 0 && (!this.row.open || this.cancelling);
  }

  /** Every change of a task's row goes through here, so the count of unfinished tasks holds. */
  replace(state: TaskState, row: TaskRow): void {
    const was = isTerminal(state.row.status);
    const is = isTerminal(row.status);
    if (!was && is) this.remaining--;
    else if (was && !is) this.remaining++;
    state.row = row;
  }

  /** Adds a remote compile job (queued, no needs); it counts among the unfinished tasks. */
  addJob(row: TaskRow, plan: PlanTask, job: JobState): TaskState {
    const state: TaskState = { row, plan, waitingOn: 0, dependents: [], job };
    this.tasks.set(plan.name, state);
    if (!isTerminal(row.status)) this.remaining++;
    return state;
  }

  /** Forgets a job that ended (its row stays in the store): a session's memory stays small. */
  dropJob(state: TaskState): void {
    if (!state.job || !isTerminal(state.row.status)) return;
    if (this.tasks.get(state.plan.name) === state) this.tasks.delete(state.plan.name);
  }

  /** Remote jobs queued or running. */
  liveJobs(): TaskState[] {
    return [...this.tasks.values()].filter((s) => s.job !== undefined && !isTerminal(s.row.status));
  }

  /** Pending tasks whose needs are all done: what may be queued now. */
  releasable(): TaskState[] {
    return [...this.tasks.values()].filter((s) => s.row.status === 'pending' && s.waitingOn === 0);
  }

  /** Pending tasks that can never run because a need failed, was skipped or cancelled. */
  blocked(): TaskState[] {
    return [...this.tasks.values()].filter(
      (s) =>
        s.row.status === 'pending' &&
        s.plan.needs.some((n) => {
          const status = this.tasks.get(n)?.row.status;
          return status === 'failed' || status === 'skipped' || status === 'cancelled';
        }),
    );
  }

  /** Bookkeeping after a task succeeded: its dependents wait on one fewer. */
  noteSucceeded(name: string): TaskState[] {
    const released: TaskState[] = [];
    for (const dependent of this.tasks.get(name)?.dependents ?? []) {
      const state = this.tasks.get(dependent);
      if (!state) continue;
      state.waitingOn--;
      if (state.waitingOn === 0 && state.row.status === 'pending') released.push(state);
    }
    return released;
  }

  /** Every task that (transitively) needs `name` and has not started. */
  downstreamOf(name: string): TaskState[] {
    const out: TaskState[] = [];
    const seen = new Set<string>();
    const visit = (n: string): void => {
      for (const dependent of this.tasks.get(n)?.dependents ?? []) {
        if (seen.has(dependent)) continue;
        seen.add(dependent);
        const state = this.tasks.get(dependent);
        if (state && state.row.status === 'pending') out.push(state);
        visit(dependent);
      }
    };
    visit(name);
    return out;
  }
}
