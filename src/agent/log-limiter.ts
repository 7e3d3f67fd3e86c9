/**
 * A log line that a flood could repeat thousands of times a second: the first occurrence in a
 * window is logged as it happens; the rest of the window is counted and logged when the window
 * ends, as one line with the same message and `repeated: N`.
 */
import type { Logger } from 'pino';

export class LogLimiter {
  private suppressed = 0;
  private windowEnds = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly msg: string,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = this.now();
    if (now >= this.windowEnds) {
      this.windowEnds = now + this.windowMs;
      this.log.warn(fields, this.msg);
      return;
    }
    this.suppressed++;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.windowEnds - now);
      this.timer.unref();
    }
  }

  /** Logs the summary of what was counted so far (called by the window's timer). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    const count = this.suppressed;
    this.suppressed = 0;
    this.windowEnds = this.now() + this.windowMs;
    this.log.warn({ repeated: count, windowMs: this.windowMs }, this.msg);
  }
}

/** One LogLimiter per kind of line (an error code), made on first use; the kinds are few. */
export class LogLimiters {
  private readonly byKind = new Map<string, LogLimiter>();

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 10_000,
  ) {}

  warn(kind: string, msg: string, fields: Record<string, unknown>): void {
    let limiter = this.byKind.get(kind);
    if (limiter === undefined) {
      limiter = new LogLimiter(this.log, msg, this.windowMs);
      this.byKind.set(kind, limiter);
    }
    limiter.warn(fields);
  }
}
