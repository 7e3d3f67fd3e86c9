/** What a benchmark reports, and the small statistics the benchmarks share. */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Unit = 'MB' | 'MB/s' | 'ms' | 'ops/s' | 'KB' | '% of a core' | 's' | 'x' | 'tasks';

/** An aim from the issue: the measured value should be >= or <= it. Never enforced. */
export interface Aim {
  /** '=': exactly (a count that must come out right, e.g. compiles redone per includer). */
  op: '>=' | '<=' | '=';
  value: number;
}

export interface Measurement {
  /** Which benchmark (section) it belongs to. */
  benchmark: string;
  /** The row: what exactly was measured. */
  metric: string;
  value: number;
  unit: Unit;
  aim?: Aim;
  /** How many samples (or runs) the value is taken over, and what the other samples were. */
  detail: string;
  /** Why nothing was measured (a peer tool "not installed"): shown instead of the value. */
  missing?: string;
}

export interface BenchContext {
  /** Smaller counts, for trying the benchmarks out; the figures are noisier. */
  quick: boolean;
  log(text: string): void;
}

export interface Benchmark {
  name: string;
  /** One or two sentences for docs/benchmarks.md: what is measured and how. */
  describe: string;
  run(ctx: BenchContext): Promise<Measurement[]>;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100) of the values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export function now(): number {
  return performance.now();
}

export function fmt(value: number, digits?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "a / b / c" of the values with their unit, for the detail column. */
export function list(values: readonly number[], unit: string): string {
  return `${values.map((v) => fmt(v)).join(' / ')} ${unit}`;
}

export function meets(value: number, aim: Aim): boolean {
  if (aim.op === '=') return Math.abs(value - aim.value) < 1e-9;
  return aim.op === '>=' ? value >= aim.value : value <= aim.value;
}

/** Decimal megabytes: the aims are in MB (10^6 bytes). */
export const MB = 1_000_000;

/**
 * An extension folder `payload` holding `files` random files of `fileBytes` each (plus a main
 * module with one operation, so a host can load it). Returns the folder; the caller removes
 * `root`.
 */
export async function makePayloadExtension(
  files: number,
  fileBytes: number,
): Promise<{ root: string; dir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'muster-bench-payload-'));
  const dir = join(root, 'payload');
  await mkdir(join(dir, 'data'), { recursive: true });
  await writeFile(
    join(dir, 'muster-extension.json'),
    JSON.stringify({ name: 'payload', version: '1.0.0', main: 'index.js' }),
  );
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  await writeFile(
    join(dir, 'index.js'),
    'export const operations = { size: async () => ({ ok: true }) };\n',
  );
  for (let i = 0; i < files; i++) {
    await writeFile(
      join(dir, 'data', `blob-${String(i).padStart(4, '0')}.bin`),
      randomBytes(fileBytes),
    );
  }
  return { root, dir };
}

/** A task id prefix unique to this run, so repeated runs never collide on one agent. */
export function taskIdPrefix(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}
