/**
 * The compile service's question, while its coordinator guard pauses (coordinator-guard.ts):
 * does the coordinator take work again? One GET /status through the service's own API client —
 * so that a client whose primary is away asks the backup and, when it answers, switches to it,
 * as it would for a compile — with a short timeout.
 *
 * The answer is checked only as far as it is read: a backup standing by whose primary it cannot
 * reach says "not yet" (it takes over within its failover timeout; its compile routes refuse
 * until then); one that reaches its primary again says yes — the primary is back, and the
 * client's next write goes to it (the backup refuses it with STANDBY). Any other answer is the
 * coordinator answering: yes.
 */
import type { ApiClient } from '../api-client.js';
import type { Probe } from './coordinator-guard.js';

/** The probe waits this long for the answer (each of the primary and its backup). */
export const PROBE_TIMEOUT_MS = 5_000;

export function coordinatorProbe(api: Pick<ApiClient, 'status'>): Probe {
  return async (signal) => takesWork(await api.status({ timeoutMs: PROBE_TIMEOUT_MS, signal }));
}

/** Whether a GET /status answer says its coordinator takes compile work now. */
export function takesWork(answer: unknown): boolean {
  if (answer === null || typeof answer !== 'object') return true;
  const { role, primary } = answer as { role?: unknown; primary?: unknown };
  if (role !== 'backup-standby') return true;
  const reachable =
    primary !== null &&
    typeof primary === 'object' &&
    (primary as { reachable?: unknown }).reachable === true;
  return reachable;
}
