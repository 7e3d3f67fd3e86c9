/**
 * Exponential backoff with jitter: attempt n waits a random time in [base/2, min(max, base * 2^n)]
 * (not from 0 as in "full jitter": a retry never comes at once).
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 500,
    private readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(this.baseMs / 2 + this.random() * (ceiling - this.baseMs / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}
