/**
 * The results of local compiles kept off the compiles' critical path: the shim is answered once
 * a compile's outputs and stderr are in memory, and the rest of keeping it (header hashes, the
 * local tier's writes, the explain record, the shared upload's queueing) waits here. One store
 * runs at a time; while every local core runs a compile of this service a store waits for a
 * free one (between compiles, during links, at the end) — unless the queue holds more than
 * `maxItems` results or `maxBytes` of captured outputs (`full`): then it runs at once, and the
 * compile that added it waits for it before its shim is answered (compile-job.ts), so make
 * slows down and memory stays bounded when compiles end faster than their results are kept.
 *
 *   add() ──▶ queued ──(a core is free, or over a bound, or draining)──▶ running ──▶ done
 *
 * A store that fails is logged by its caller (add()'s promise never rejects for it).
 */

export interface DeferredStoresOptions {
  /** Every local core runs a compile of this service now (stores wait). */
  readonly busy: () => boolean;
  readonly maxItems: number;
  readonly maxBytes: number;
}

export const DEFERRED_DEFAULTS = { maxItems: 64, maxBytes: 64 * 1024 * 1024 };

interface Queued {
  readonly bytes: number;
  readonly run: () => Promise<void>;
  readonly done: () => void;
}

export class DeferredStores {
  readonly #options: DeferredStoresOptions;
  readonly #queue: Queued[] = [];
  #bytes = 0;
  #running = false;
  #draining = false;
  /** How many of the queue's first results run at once, busy or not (hurry()). */
  #hurried = 0;

  constructor(options: DeferredStoresOptions) {
    this.#options = options;
  }

  /** Results waiting (not counting one running). */
  get pending(): number {
    return this.#queue.length;
  }

  /** Bytes the waiting results hold. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Queues `run` (holding `bytes` of captured outputs); resolves when it has run (whatever its
   * outcome: `run` handles its own failures).
   */
  add(bytes: number, run: () => Promise<void>): Promise<void> {
    return new Promise<void>((done) => {
      this.#queue.push({ bytes, run, done });
      this.#bytes += bytes;
      this.#pump();
    });
  }

  /** Over a bound: the compile that just added its store waits for it. */
  get full(): boolean {
    const o = this.#options;
    return this.#queue.length > o.maxItems || this.#bytes > o.maxBytes;
  }

  /** A compile ended (a core may be free): runs what waits. */
  wake(): void {
    this.#pump();
  }

  /** From now on every store runs at once, busy or not (the service stops). */
  drain(): void {
    this.#draining = true;
    this.#pump();
  }

  /**
   * The results queued now run at once, busy or not; later ones wait as before (a build the
   * service hosts closes, and waits for its own results).
   */
  hurry(): void {
    this.#hurried = this.#queue.length;
    this.#pump();
  }

  #mayRun(): boolean {
    return this.#draining || this.#hurried > 0 || !this.#options.busy() || this.full;
  }

  #pump(): void {
    if (this.#running) return;
    const next = this.#queue[0];
    if (next === undefined || !this.#mayRun()) return;
    this.#queue.shift();
    if (this.#hurried > 0) this.#hurried--;
    this.#bytes -= next.bytes;
    this.#running = true;
    // In a later turn of the event loop, never in the one that queued it: the store's file work
    // is synchronous, and the answer its compile's shim waits for is written first.
    void new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => next.run())
      .catch(() => undefined) // run() logs its own failures
      .finally(() => {
        this.#running = false;
        next.done();
        this.#pump();
      });
  }
}
