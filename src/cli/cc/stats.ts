/**
 * The compile counters of this user on this machine (design §5 "Stats"), like ccache's, in
 * `<cacheDir>/stats.json`. Several services may count at once (a `muster build` and the daemon),
 * so each keeps what it counted since its last flush and adds it to the file under a lock
 * (read, add, write to a temp file, rename). Flushes are debounced and forced on stop.
 *
 * What each counter means:
 * - `compiles`: jobs classified as compiles; `passthrough`: everything else (links, -E, probes);
 * - `local`: compiles run on this machine; `remote`: results accepted from agents;
 * - `cacheHits`: compiles served from a cache tier; `cacheMisses`: cacheable lookups that missed;
 * - `uncacheable`: compiles whose result could not be cached (an option, a file changed in the
 *   last 2 s, a time macro, an unknown compiler…) — a miss that then turns out uncacheable counts
 *   under both;
 * - `errors`: compiles whose compiler failed (the user's errors: nothing is cached);
 * - `fallbacks`: infrastructure failures (a shim that could not use the service, a coordinator
 *   that failed), with `fallbackReasons`; `localReasons`: why compiles ran here; `reruns`: remote
 *   results replaced by a local run.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../../common/atomic-file.js';
import { withLockFile } from './lock-file.js';
import { fallbackLineReason, reasonName } from './shim-names.js';

export { reasonName };

export const STATS_FILE = 'stats.json';
export const DEFAULT_FLUSH_DELAY_MS = 250;
/** A fallback log larger than this is read only this far (the rest is counted as one line). */
const MAX_FALLBACK_LOG_BYTES = 4 * 1024 * 1024;

const COUNTERS = [
  'compiles',
  'remote',
  'local',
  'cacheHits',
  'cacheMisses',
  'fallbacks',
  'errors',
  'passthrough',
  'reruns',
  'uncacheable',
] as const;
export type Counter = (typeof COUNTERS)[number];

export type CompileStats = Record<Counter, number> & {
  localReasons: Record<string, number>;
  fallbackReasons: Record<string, number>;
  /** When the counters were last zeroed (ISO), or null: never. */
  zeroedAt: string | null;
};

const count = z.number().int().nonnegative().catch(0);
const reasons = z.record(z.string().max(64), count).catch({});
const counterShape = Object.fromEntries(COUNTERS.map((c) => [c, count.default(0)])) as Record<
  Counter,
  z.ZodDefault<typeof count>
>;
const statsSchema = z.object({
  ...counterShape,
  localReasons: reasons.default({}),
  fallbackReasons: reasons.default({}),
  zeroedAt: z.string().max(64).nullable().catch(null).default(null),
});

export function emptyStats(): CompileStats {
  return {
    ...(Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>),
    localReasons: {},
    fallbackReasons: {},
    zeroedAt: null,
  };
}

/** The stats file's counters (all zero when there is none or it is unreadable). */
export async function readStats(cacheDir: string): Promise<CompileStats> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(cacheDir, STATS_FILE), 'utf8'));
  } catch {
    return emptyStats();
  }
  const parsed = statsSchema.safeParse(raw);
  if (!parsed.success) return emptyStats();
  const stats = emptyStats();
  for (const c of COUNTERS) stats[c] = parsed.data[c];
  stats.localReasons = { ...parsed.data.localReasons };
  stats.fallbackReasons = { ...parsed.data.fallbackReasons };
  stats.zeroedAt = parsed.data.zeroedAt;
  return stats;
}

function addInto(total: CompileStats, delta: CompileStats): void {
  for (const c of COUNTERS) total[c] += delta[c];
  for (const [k, n] of Object.entries(delta.localReasons)) {
    total.localReasons[k] = (total.localReasons[k] ?? 0) + n;
  }
  for (const [k, n] of Object.entries(delta.fallbackReasons)) {
    total.fallbackReasons[k] = (total.fallbackReasons[k] ?? 0) + n;
  }
}

async function updateFile(
  cacheDir: string,
  change: (stats: CompileStats) => CompileStats,
): Promise<void> {
  const file = join(cacheDir, STATS_FILE);
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await withLockFile(`${file}.lock`, async () => {
    const next = change(await readStats(cacheDir));
    await writeAtomic(file, `${JSON.stringify(next, null, 2)}\n`, 0o600);
  });
}

/** Sets every counter of the file to zero (`muster cc --zero-stats`). */
export async function zeroStats(cacheDir: string, now: Date = new Date()): Promise<void> {
  await updateFile(cacheDir, () => ({ ...emptyStats(), zeroedAt: now.toISOString() }));
}

export class StatsCounter {
  readonly #cacheDir: string;
  readonly #flushDelayMs: number;
  readonly #onError: (err: unknown) => void;
  /** Set: this counter keeps totals only and passes each count on (one build of a service). */
  readonly #parent: StatsCounter | undefined;
  #pending = emptyStats();
  /** Everything this counter counted since it was made (`muster build`'s summary). */
  readonly #totals = emptyStats();
  #dirty = false;
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    cacheDir: string,
    options: {
      flushDelayMs?: number;
      onError?: (err: unknown) => void;
      /** Counts also go to this counter, which alone writes them to the file. */
      parent?: StatsCounter;
    } = {},
  ) {
    this.#cacheDir = cacheDir;
    this.#parent = options.parent;
    this.#flushDelayMs = options.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS;
    this.#onError = options.onError ?? (() => undefined);
  }

  /** What this counter counted that is not in the file yet. */
  get pending(): Readonly<CompileStats> {
    return this.#pending;
  }

  /** What this counter counted since it was made, whatever was flushed or zeroed since. */
  get totals(): Readonly<CompileStats> {
    return this.#totals;
  }

  add(counter: Counter, n = 1): void {
    for (const stats of this.#counted()) stats[counter] += n;
    this.#parent?.add(counter, n);
    this.#changed();
  }

  localReason(reason: string): void {
    const name = reasonName(reason);
    for (const stats of this.#counted())
      stats.localReasons[name] = (stats.localReasons[name] ?? 0) + 1;
    this.#parent?.localReason(reason);
    this.#changed();
  }

  /** One infrastructure failure: `fallbacks` and its reason. */
  fallback(reason: string, n = 1): void {
    const name = reasonName(reason);
    for (const stats of this.#counted()) {
      stats.fallbacks += n;
      stats.fallbackReasons[name] = (stats.fallbackReasons[name] ?? 0) + n;
    }
    this.#parent?.fallback(reason, n);
    this.#changed();
  }

  /** What a count adds to: the totals, and what is pending for the file unless a parent writes it. */
  #counted(): CompileStats[] {
    return this.#parent === undefined ? [this.#pending, this.#totals] : [this.#totals];
  }

  /** Adds what is pending to the file now (and waits for a flush already running). */
  async flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#flushing = this.#flushing.then(async () => {
      if (!this.#dirty) return;
      const delta = this.#pending;
      this.#pending = emptyStats();
      this.#dirty = false;
      try {
        await updateFile(this.#cacheDir, (stats) => {
          addInto(stats, delta);
          return stats;
        });
      } catch (err) {
        // Keep the counts for the next flush.
        addInto(this.#pending, delta);
        this.#dirty = true;
        throw err;
      }
    });
    return this.#flushing;
  }

  /**
   * Counts the lines the shim appended to its fallback log (`<unix-seconds> <reason>`), then
   * removes the log (renamed first, so a line appended meanwhile lands in a new one).
   */
  async foldFallbackLog(path: string): Promise<number> {
    const taken = `${path}.${process.pid}.folding`;
    try {
      await rename(path, taken);
    } catch {
      return 0;
    }
    let lines = 0;
    try {
      const handle = await open(taken, 'r');
      let text: string;
      let truncated = false;
      try {
        const size = (await handle.stat()).size;
        const buf = Buffer.alloc(Math.min(size, MAX_FALLBACK_LOG_BYTES));
        const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
        text = buf.subarray(0, bytesRead).toString('utf8');
        truncated = size > bytesRead;
      } finally {
        await handle.close();
      }
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        this.fallback(fallbackLineReason(line));
        lines++;
      }
      if (truncated) {
        this.fallback('other');
        lines++;
      }
    } finally {
      await rm(taken, { force: true });
    }
    return lines;
  }

  /** Stops the debounce timer (flush() first to keep what is pending). */
  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #changed(): void {
    if (this.#parent !== undefined) return;
    this.#dirty = true;
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush().catch(this.#onError);
    }, this.#flushDelayMs);
    this.#timer.unref();
  }
}

function percent(n: number, of: number): string {
  return of === 0 ? '' : ` (${((100 * n) / of).toFixed(1)} %)`;
}

function reasonLines(title: string, map: Record<string, number>): string[] {
  const entries = Object.entries(map).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (entries.length === 0) return [];
  return [`${title}:`, ...entries.map(([k, n]) => `  ${k.padEnd(28)} ${n}`)];
}

/** `muster cc --show-stats` as text. */
export function formatStats(stats: CompileStats): string {
  const lookups = stats.cacheHits + stats.cacheMisses;
  const row = (label: string, n: number, extra = ''): string =>
    `${label.padEnd(30)} ${String(n).padStart(8)}${extra}`;
  const lines = [
    row('Compiles', stats.compiles),
    row('  from the cache', stats.cacheHits, percent(stats.cacheHits, lookups)),
    row('  cache misses', stats.cacheMisses, percent(stats.cacheMisses, lookups)),
    row('  compiled here', stats.local),
    row('  compiled on agents', stats.remote),
    row('  uncacheable', stats.uncacheable),
    row('  failed (compile errors)', stats.errors),
    row('  re-run here', stats.reruns),
    row('Fallbacks', stats.fallbacks),
    row('Not compiles (run as is)', stats.passthrough),
    ...reasonLines('Ran here because', stats.localReasons),
    ...reasonLines('Fallbacks because', stats.fallbackReasons),
  ];
  if (stats.zeroedAt !== null) lines.push(`Zeroed at ${stats.zeroedAt}`);
  return `${lines.join('\n')}\n`;
}
