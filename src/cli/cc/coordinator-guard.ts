/**
 * One coordinator's "did it answer?" memory, shared by the compile service's ports to it (the
 * shared cache, the remote jobs): a request that got no answer (refused, timed out, cut) makes
 * every request of the next `pauseMs` fail at once, so a coordinator that is down costs the
 * compiles of that moment nothing but the first wait. An answer that is an error (a 4xx, a 5xx)
 * is the coordinator speaking: it pauses nothing.
 */
import { MusterError } from '../../protocol/errors.js';

/** The codes that say the coordinator did not answer (rather than answering no). */
const NO_ANSWER: ReadonlySet<string> = new Set([
  'UNREACHABLE',
  'CONNECTION_CLOSED',
  'REQUEST_TIMEOUT',
]);

export const DEFAULT_PAUSE_MS = 30_000;

/** Whether an error says the coordinator did not answer. */
export function isNoAnswer(err: unknown): boolean {
  return err instanceof MusterError && NO_ANSWER.has(err.code);
}

export class CoordinatorGuard {
  #pausedUntil = 0;

  constructor(private readonly pauseMs: number = DEFAULT_PAUSE_MS) {}

  /** Fails at once while paused; a failure that means "no answer" starts a pause. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (Date.now() < this.#pausedUntil)
      throw new MusterError('UNREACHABLE', 'the coordinator did not answer a moment ago');
    try {
      return await work();
    } catch (err) {
      if (isNoAnswer(err)) this.#pausedUntil = Date.now() + this.pauseMs;
      throw err;
    }
  }
}
