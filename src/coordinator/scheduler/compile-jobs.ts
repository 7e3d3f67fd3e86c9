/**
 * Remote compile jobs (issue 13, design §6): tasks a compile session appends to its open build
 * while it runs, each with its own description (`tasks.spec`) instead of a place in the plan.
 * The scheduler runs them like plan tasks with a stricter policy, because a client waits for
 * each and compiles it itself whenever the agent cannot answer soon:
 *
 * - only on an agent that has the job's toolchain (synced with its bundle, not refused as
 *   incompatible there): SchedulerAgent.provides();
 * - no retry, and no loss grace: an attempt whose agent's connection drops is lost at once;
 * - a job that found no slot within its `maxQueueMs` is not started (taken out of the queue);
 * - nobody waits for one after a coordinator restart: it is settled as cancelled when loaded.
 *
 * This file holds what a job is and how its end reads; the scheduler (scheduler.ts, section
 * "compile jobs") holds the state.
 */
import type { PlanTask } from '../../api/plan/types.js';
import type { TaskInputFile, TaskResult } from '../../protocol/task-types.js';
import type { AttemptStatus } from '../../api/status.js';
import type { TaskRow } from '../store/types.js';

/** What `tasks.spec` holds for a remote compile job (JSON). */
export interface CompileJobSpec {
  kind: 'compile-job';
  extension: 'cc';
  operation: 'compile';
  /** The cc/compile input (api/requests.ts remoteCompileInput). */
  input: unknown;
  /** The files it takes along, explicitly (the directives-only text). */
  inputFiles: (TaskInputFile & { size: number })[];
  /** Output patterns: the object's path, escaped. */
  outputs: string[];
  timeoutMs: number;
  /** The toolchain an agent must have. */
  toolchain: string;
}

/** Why a job did not run remotely (the client's fallback reasons). */
export type JobReason = 'toolchain-not-on-agents' | 'queue-full' | 'no-agent-slot' | 'agent-lost';

/** How a job ended, for the one who waits for it. */
export interface JobEnd {
  status: 'succeeded' | 'failed' | 'lost' | 'cancelled' | 'not-started';
  reason: JobReason | null;
  /** The task's row as it ended. */
  row: TaskRow;
  /** The last attempt's result as the agent reported it (accepted), if one ran. */
  result: TaskResult | undefined;
}

/** A job appended to an open build: the spec and how long it may wait for a slot. */
export interface NewCompileJob {
  label: string;
  spec: CompileJobSpec;
  maxQueueMs: number;
}

/** What the waiter holds: the job's task, its end, and a way to give up on it. */
export interface JobHandle {
  task: string;
  ended: Promise<JobEnd>;
  /** The client went away: the job is cancelled (queued: at once; running: on its agent). */
  cancel(): void;
}

/** The scheduler's state of one job task (TaskState.job). */
export interface JobState {
  spec: CompileJobSpec;
  /** Set when the job ends without running (the reason the answer gives). */
  reason: JobReason | null;
  /** The last attempt's end, when one ran. */
  attempt: { status: Exclude<AttemptStatus, 'running'>; result: TaskResult } | undefined;
  queueTimer: NodeJS.Timeout | undefined;
  end(end: JobEnd): void;
}

/** Jobs queued or running one session may have: 4 × the ready agents' slots, at least 4 × 4. */
export function jobQueueCap(readySlots: number): number {
  return 4 * Math.max(4, readySlots);
}

/** The plan task a job runs as (name `job-N`): no needs, no globs, no retries. */
export function jobPlanTask(name: string, spec: CompileJobSpec): PlanTask {
  return {
    name,
    extension: spec.extension,
    operation: spec.operation,
    input: spec.input,
    inputs: [],
    outputs: spec.outputs,
    needs: [],
    env: {},
    timeoutMs: spec.timeoutMs,
    retries: 0,
    requires: [],
  };
}

/** A path as an output pattern that matches exactly it (host/glob.ts syntax). */
export function literalPattern(path: string): string {
  return path.replace(/[\\*?[\]{}]/g, (c) => `\\${c}`);
}

/** How a job's task ended, read from its row and its last attempt. */
export function jobEnd(row: TaskRow, job: JobState): JobEnd {
  const result = job.attempt?.result;
  const end = (status: JobEnd['status'], reason: JobReason | null): JobEnd => ({
    status,
    reason,
    row,
    result,
  });
  switch (row.status) {
    case 'succeeded':
      return end('succeeded', null);
    case 'skipped':
      return end('not-started', job.reason ?? 'no-agent-slot');
    case 'cancelled':
      return end('cancelled', null);
    default:
      return job.attempt?.status === 'lost' ? end('lost', 'agent-lost') : end('failed', null);
  }
}
