/** Sleeps that end early: a loop's pause, cut short when there is news or when it stops. */
export class Sleeper {
  private readonly sleepers = new Set<() => void>();
  private ended = false;

  /** Whether stop() was called: loops end. */
  get stopped(): boolean {
    return this.ended;
  }

  /** Sleeps up to `ms`; wake() and stop() end every sleep at once. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  wake(): void {
    for (const done of [...this.sleepers]) done();
  }

  stop(): void {
    this.ended = true;
    this.wake();
  }
}
