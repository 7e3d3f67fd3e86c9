/**
 * Keeps one long-running loop running: a loop that throws is logged with its reason and started
 * again after a backoff pause, instead of ending silently (or, with nobody awaiting its promise,
 * as an unhandled rejection that ends the process). A loop that returns is done: loops return
 * when their owner stops them (a Sleeper, a flag) or when their work is over.
 *
 * stop() is idempotent and awaits the loop: the owner first tells its loop to end (stops its
 * Sleeper), then awaits stop(); a pause between restarts ends at once.
 */
import type { Logger } from 'pino';
import { Backoff } from './pool/backoff.js';

export interface SupervisedLoopOptions {
  log: Logger;
  /** Pauses before each restart (default: the first 0.5–1 s, the ceiling doubling to a minute). */
  backoff?: Backoff;
  /** A run that lasted this long was healthy: the pause after its failure starts short again. */
  healthyAfterMs?: number;
}

export class SupervisedLoop {
  private readonly backoff: Backoff;
  private readonly healthyAfterMs: number;
  private stopped = false;
  private done: Promise<void> | undefined;
  private endPause: (() => void) | undefined;
  private isRunning = false;

  constructor(
    /** What the loop does, in words, for the log (`replication`, `backup heartbeat`). */
    readonly name: string,
    private readonly loop: () => Promise<void>,
    private readonly options: SupervisedLoopOptions,
  ) {
    this.backoff = options.backoff ?? new Backoff(1000, 60_000);
    this.healthyAfterMs = options.healthyAfterMs ?? 60_000;
  }

  /** Whether the loop runs (or pauses before a restart). */
  get running(): boolean {
    return this.isRunning;
  }

  /** Starts the loop (once: a loop stopped or started stays so). */
  start(): this {
    if (this.done === undefined && !this.stopped) this.done = this.supervise();
    return this;
  }

  /** No more restarts; resolves once the current run has returned or thrown. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.endPause?.();
    await this.done;
  }

  /** Never rejects: every failure is logged here. */
  private async supervise(): Promise<void> {
    this.isRunning = true;
    try {
      while (!this.stopped) {
        const began = Date.now();
        try {
          await this.loop();
          return;
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          if (this.stopped) {
            this.options.log.error(
              { err, loop: this.name },
              `${this.name} failed while stopping: ${reason}`,
            );
            return;
          }
          if (Date.now() - began >= this.healthyAfterMs) this.backoff.reset();
          const restartInMs = this.backoff.next();
          this.options.log.error(
            { err, loop: this.name, restartInMs },
            `${this.name} failed, restarting: ${reason}`,
          );
          await this.pause(restartInMs);
        }
      }
    } finally {
      this.isRunning = false;
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.endPause = done;
    }).finally(() => {
      this.endPause = undefined;
    });
  }
}
