/**
 * One coordinator's "did it answer?" memory, shared by the compile service's ports to it (the
 * shared cache, the remote jobs): a request that got no answer (refused, timed out, cut) pauses
 * every request to it — they fail at once — so a coordinator that is down costs the compiles of
 * that moment nothing but the first wait. An answer that is an error (a 4xx, a 5xx) is the
 * coordinator speaking: it pauses nothing.
 *
 * With a probe (coordinator-probe.ts: one cheap request through the same API client, which
 * switches to a backup that took over), the pause lasts until the probe gets an answer that says
 * the coordinator takes work again — a primary restarted after 2 s, or its backup a few seconds
 * after a failover — not a fixed time: no compile waits for a dead coordinator, and none stays
 * here once one answers. One probe at a time, in the background, the first `firstProbeMs` after
 * the pause began; after no answer the wait doubles up to `maxProbeMs`; after an answer that says
 * "not yet" (a backup standing by whose primary is away: it takes over soon) it is `firstProbeMs`
 * again, for `notYetFastMs` (a backup that has not taken over by then may not soon: a primary it
 * cannot reach still holds the agents) — then it grows as after no answer. Its timers never keep
 * the process alive, and stop() ends it (with the service). Without a probe, a pause ends
 * `pauseMs` after it began.
 *
 * A no-answer of a request that started before the last pause began or ended is old news (a job
 * cut by the primary's death that the kernel reports late, after the backup took over): it starts
 * no new pause.
 */
import { MusterError } from '../../protocol/errors.js';
import type { ServiceLog } from './service-log.js';

/** The codes that say the coordinator did not answer (rather than answering no). */
const NO_ANSWER: ReadonlySet<string> = new Set([
  'UNREACHABLE',
  'CONNECTION_CLOSED',
  'REQUEST_TIMEOUT',
]);

export const DEFAULT_PAUSE_MS = 30_000;
const FIRST_PROBE_MS = 1_000;
const MAX_PROBE_MS = 30_000;
/** Above the failover timeout (30 s by default) and the wait for the agents' leases. */
const NOT_YET_FAST_MS = 60_000;

/**
 * A request refused here because the coordinator did not answer a moment ago: no request was
 * made. The pause itself is said once (`onChange`), so the compiles it turns away log nothing.
 */
export class CoordinatorPaused extends MusterError {
  constructor() {
    super('UNREACHABLE', 'the coordinator did not answer a moment ago');
  }
}

/**
 * Logs a failed request to the coordinator: a warning, or only at debug level when it was one
 * the pause refused (its start and end are logged once, not once per compile it turns away).
 */
export function warnUnlessPaused(log: ServiceLog, err: unknown, message: string): void {
  if (err instanceof CoordinatorPaused) log.debug({ err }, message);
  else log.warn({ err }, message);
}

/** Whether an error says the coordinator did not answer. */
export function isNoAnswer(err: unknown): boolean {
  return err instanceof MusterError && NO_ANSWER.has(err.code);
}

/**
 * Asks the coordinator whether it takes work: true when it does (a pause ends), false when it
 * answered "not yet". A throw that is no answer (isNoAnswer) keeps the pause; any other throw is
 * the coordinator answering, and ends it as an answer does. `signal` aborts it (stop()).
 */
export type Probe = (signal: AbortSignal) => Promise<boolean>;

/** The clock and timers the guard uses (tests give their own). */
export interface GuardTimers {
  now(): number;
  /** Runs `fn` after `ms`; the timer must not keep the process alive. */
  after(ms: number, fn: () => void): { cancel(): void };
}

export const realTimers: GuardTimers = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

export interface GuardOptions {
  /** Without a probe: how long a pause lasts. */
  readonly pauseMs?: number;
  readonly probe?: Probe;
  readonly firstProbeMs?: number;
  readonly maxProbeMs?: number;
  readonly notYetFastMs?: number;
  readonly timers?: GuardTimers;
  /** Told when a pause begins and ends (a log line). */
  readonly onChange?: (paused: boolean) => void;
}

export class CoordinatorGuard {
  readonly #pauseMs: number;
  readonly #probe: Probe | undefined;
  readonly #firstProbeMs: number;
  readonly #maxProbeMs: number;
  readonly #notYetFastMs: number;
  readonly #timers: GuardTimers;
  readonly #onChange: (paused: boolean) => void;
  #paused = false;
  /** Without a probe: when the pause ends. */
  #pausedUntil = 0;
  /** Moves at each pause and each resume: a no-answer from an older era is old news. */
  #era = 0;
  #probeWaitMs: number;
  /** When the last pause ended (a new one soon after it does not start from a second again). */
  #resumedAt: number | undefined;
  /** The first "not yet" of this pause. */
  #notYetSince: number | undefined;
  #timer: { cancel(): void } | undefined;
  #inFlight: AbortController | undefined;
  #stopped = false;

  constructor(options: GuardOptions = {}) {
    this.#pauseMs = options.pauseMs ?? DEFAULT_PAUSE_MS;
    this.#probe = options.probe;
    this.#firstProbeMs = options.firstProbeMs ?? FIRST_PROBE_MS;
    this.#maxProbeMs = options.maxProbeMs ?? MAX_PROBE_MS;
    this.#notYetFastMs = options.notYetFastMs ?? NOT_YET_FAST_MS;
    this.#timers = options.timers ?? realTimers;
    this.#onChange = options.onChange ?? (() => undefined);
    this.#probeWaitMs = this.#firstProbeMs;
  }

  /** Whether requests fail at once now. */
  get paused(): boolean {
    if (this.#paused && this.#probe === undefined && this.#timers.now() >= this.#pausedUntil)
      this.#resume();
    return this.#paused;
  }

  /** Fails at once while paused; a failure that means "no answer" starts a pause. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.paused) throw new CoordinatorPaused();
    const era = this.#era;
    try {
      return await work();
    } catch (err) {
      if (isNoAnswer(err) && era === this.#era) this.#pause();
      throw err;
    }
  }

  /** Ends the probing (the service stops): a pause then lasts. Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#inFlight?.abort();
    this.#inFlight = undefined;
  }

  #pause(): void {
    const now = this.#timers.now();
    this.#paused = true;
    this.#era++;
    this.#pausedUntil = now + this.#pauseMs;
    this.#onChange(true);
    // A pause soon after a resume: the probe said yes to what the requests then could not use
    // (a standby backup that reaches its primary, which this client cannot reach). The wait
    // keeps growing instead of costing a burst of compiles a timeout every second.
    const flapped = this.#resumedAt !== undefined && now - this.#resumedAt < this.#maxProbeMs;
    this.#probeWaitMs = flapped
      ? Math.min(this.#probeWaitMs * 2, this.#maxProbeMs)
      : this.#firstProbeMs;
    this.#notYetSince = undefined;
    this.#scheduleProbe();
  }

  #resume(): void {
    this.#resumedAt = this.#timers.now();
    this.#paused = false;
    this.#era++;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#onChange(false);
  }

  #scheduleProbe(): void {
    if (this.#probe === undefined || this.#stopped || this.#timer || this.#inFlight) return;
    this.#timer = this.#timers.after(this.#probeWaitMs, () => {
      this.#timer = undefined;
      void this.#runProbe();
    });
  }

  async #runProbe(): Promise<void> {
    const probe = this.#probe;
    if (probe === undefined || this.#stopped || !this.#paused) return;
    const controller = new AbortController();
    this.#inFlight = controller;
    let answer: 'ready' | 'not-yet' | 'none';
    try {
      answer = (await probe(controller.signal)) ? 'ready' : 'not-yet';
    } catch (err) {
      answer = isNoAnswer(err) ? 'none' : 'ready';
    } finally {
      if (this.#inFlight === controller) this.#inFlight = undefined;
    }
    if (this.#stopped || controller.signal.aborted || !this.#paused) return;
    if (answer === 'ready') {
      this.#resume();
      return;
    }
    const now = this.#timers.now();
    if (answer === 'not-yet') this.#notYetSince ??= now;
    const fast = answer === 'not-yet' && now - (this.#notYetSince ?? now) < this.#notYetFastMs;
    this.#probeWaitMs = fast
      ? this.#firstProbeMs
      : Math.min(this.#probeWaitMs * 2, this.#maxProbeMs);
    this.#scheduleProbe();
  }
}
