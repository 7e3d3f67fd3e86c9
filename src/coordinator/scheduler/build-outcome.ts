/**
 * How a build ended, from its tasks once none is left to run: cancelled when it was cancelled,
 * succeeded when every task did, failed otherwise, with the error a user reads first.
 */
import type { BuildStatus } from '../../api/status.js';
import type { TaskRow } from '../store/types.js';

export function buildOutcome(
  tasks: readonly TaskRow[],
  cancelling: boolean,
): { status: Extract<BuildStatus, 'cancelled' | 'succeeded' | 'failed'>; error: string | null } {
  const failed = tasks.filter((t) => t.status === 'failed');
  const status = cancelling
    ? 'cancelled'
    : failed.length === 0 && tasks.every((t) => t.status === 'succeeded')
      ? 'succeeded'
      : 'failed';
  const error =
    status === 'cancelled'
      ? 'cancelled'
      : failed.length > 0
        ? `${failed.map((t) => t.name).join(', ')} failed`
        : status === 'failed'
          ? 'not every task succeeded'
          : null;
  return { status, error };
}
