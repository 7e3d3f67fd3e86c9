/**
 * An agent's result as the scheduler accepts it: the one place its output paths are checked
 * against what the task declared (before anything of it is fetched or stored), and the words a
 * task's error keeps for how an attempt ended.
 */
import type { MusterError } from '../../protocol/errors.js';
import type { TaskResult } from '../../protocol/task-types.js';
import { DeclaredOutputs, refuseOutputs } from '../../api/plan/outputs.js';
import type { PlanTask } from '../../api/plan/types.js';

/**
 * The result to record: as reported, or, when a successful one names outputs the task did not
 * declare, a failure without outputs (`refused` says why, for the log).
 */
export function acceptResult(
  plan: PlanTask,
  reported: TaskResult,
): { result: TaskResult; refused?: MusterError } {
  if (reported.status !== 'succeeded') return { result: reported };
  const refused = refuseOutputs(
    [{ declared: declaredOutputs(plan), paths: (reported.outputs ?? []).map((o) => o.path) }],
    'the attempt fails and none of its outputs is kept',
  );
  if (!refused) return { result: reported };
  // The code goes into the message too: the task's error is all that is kept of it.
  const error = { code: refused.code, message: `${refused.message} [${refused.code}]` };
  return { result: { ...reported, status: 'failed', outputs: undefined, error }, refused };
}

/** What the task's error says of an attempt that ended so (null for a plain success). */
export function resultDetail(result: TaskResult): string | null {
  if (result.status !== 'failed') return result.error?.message ?? null;
  return (
    result.error?.message ??
    (result.exitCode !== undefined && result.exitCode !== null
      ? `exited with code ${result.exitCode}`
      : `ended by signal ${result.signal ?? 'unknown'}`)
  );
}

const declaredByTask = new WeakMap<PlanTask, DeclaredOutputs>();

/** A task's declared outputs, compiled once per plan task. */
function declaredOutputs(plan: PlanTask): DeclaredOutputs {
  let declared = declaredByTask.get(plan);
  if (!declared) {
    declared = new DeclaredOutputs(plan.name, plan.outputs);
    declaredByTask.set(plan, declared);
  }
  return declared;
}
