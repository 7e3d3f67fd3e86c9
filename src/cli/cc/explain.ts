/**
 * `muster cc --explain FILE` (design §4): for each object the service compiled, the last
 * lookup's key inputs and outcome, in `<cacheDir>/explain/<sha256(absolute object path)>.json`,
 * and what made the last miss a miss: the headers of the direct key's newest manifest line that
 * no longer match (`diffIncludes`), or — when the direct key itself changed — which key inputs
 * differ from the lookup before it (`diffKeyInputs`).
 *
 * At most MAX_RECORDS records are kept: the oldest are removed at a service's first record and
 * every TRIM_EVERY records after it (a `muster build` per run records far fewer than that).
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { isObject } from '../../common/is-object.js';
import { diffKeyInputs, type IncludeDifference, type KeyInputs } from './cache-key.js';
import { readSmallSync } from './file-hashes.js';
import { writeFileAtomic } from './local-tier.js';
import { keepNewest } from './trim-dir.js';

export const EXPLAIN_DIR = 'explain';
const MAX_RECORDS = 5_000;
const TRIM_EVERY = 500;
const MAX_RECORD_BYTES = 8 * 1024 * 1024;

export type ExplainOutcome = 'hit' | 'miss' | 'uncacheable' | 'failed';

export interface ExplainRecord {
  readonly at: string;
  readonly cwd: string;
  /** The object as written on the command line. */
  readonly output: string;
  readonly source: string;
  readonly command: string;
  readonly outcome: ExplainOutcome;
  /** 'local' or 'shared' for a hit. */
  readonly tier: string | null;
  /** Why it was not cached, or why it ran here. */
  readonly reasons: readonly string[];
  readonly direct: string | null;
  readonly inputs: KeyInputs | null;
  /** How many manifest lines the direct key had when it was looked up. */
  readonly manifestLines: number;
  /** The newest manifest line's headers that did not match. */
  readonly mismatch: readonly IncludeDifference[];
  /** The inputs of the last lookup with another direct key (filled in by `ExplainLog`). */
  readonly previousInputs: KeyInputs | null;
}

/**
 * A key input list as records hold it (or null), else undefined. By hand, not by a schema: every
 * compile's record reads the one before it (see previousOf).
 */
function keyInputsOf(value: unknown): KeyInputs | null | undefined {
  if (value === null) return null;
  if (!Array.isArray(value)) return undefined;
  for (const c of value as unknown[]) {
    if (!isObject(c) || typeof c['name'] !== 'string') return undefined;
    const v = c['value'];
    const ok =
      typeof v === 'string' ||
      (Array.isArray(v) && (v as unknown[]).every((x) => typeof x === 'string'));
    if (!ok) return undefined;
  }
  return value as KeyInputs;
}

const keyInputs = z.custom<KeyInputs | null>((value) => keyInputsOf(value) !== undefined);

const recordSchema = z.object({
  at: z.string(),
  cwd: z.string(),
  output: z.string(),
  source: z.string(),
  command: z.string(),
  outcome: z.enum(['hit', 'miss', 'uncacheable', 'failed']),
  tier: z.string().nullable(),
  reasons: z.array(z.string()),
  direct: z.string().nullable(),
  inputs: keyInputs,
  manifestLines: z.number().int().nonnegative(),
  mismatch: z.array(
    z.object({ path: z.string(), before: z.string(), after: z.string().nullable() }),
  ),
  previousInputs: keyInputs,
});

function recordFile(cacheDir: string, objectPath: string): string {
  const name = createHash('sha256').update(objectPath).digest('hex');
  return join(cacheDir, EXPLAIN_DIR, `${name}.json`);
}

async function readRecord(file: string): Promise<ExplainRecord | null> {
  try {
    const s = await stat(file);
    if (s.size > MAX_RECORD_BYTES) return null;
    const parsed = recordSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * What the next record of the same object needs of the one before it — its direct key and key
 * inputs — or null when there is none or it is not a record. Every compile reads one (the
 * service's every kept or missed compile writes its record), so this reads small files with
 * direct system calls, not through the thread pool, and checks only those fields: a missing
 * file costs one stat, not a rejected promise with its stack. `readRecord` checks whole records
 * for `--explain`.
 */
async function previousOf(
  file: string,
): Promise<Pick<ExplainRecord, 'direct' | 'inputs' | 'previousInputs'> | null> {
  try {
    const s = statSync(file, { throwIfNoEntry: false });
    if (s === undefined || !s.isFile() || s.size > MAX_RECORD_BYTES) return null;
    const value: unknown = JSON.parse((await readSmallSync(file, s.size)).toString('utf8'));
    if (!isObject(value)) return null;
    const { direct, inputs, previousInputs } = value;
    if (direct !== null && typeof direct !== 'string') return null;
    const before = keyInputsOf(inputs);
    const earlier = keyInputsOf(previousInputs);
    if (before === undefined || earlier === undefined) return null;
    return { direct, inputs: before, previousInputs: earlier };
  } catch {
    return null;
  }
}

export class ExplainLog {
  readonly #cacheDir: string;
  #writes = 0;

  constructor(cacheDir: string) {
    this.#cacheDir = cacheDir;
  }

  async record(rec: Omit<ExplainRecord, 'previousInputs'>): Promise<void> {
    const file = recordFile(this.#cacheDir, resolve(rec.cwd, rec.output));
    const old = await previousOf(file);
    let previousInputs: KeyInputs | null = null;
    if (old !== null) {
      previousInputs = old.direct !== rec.direct ? old.inputs : old.previousInputs;
    }
    await writeFileAtomic(file, JSON.stringify({ ...rec, previousInputs }));
    if (this.#writes++ % TRIM_EVERY === 0) await this.trim();
  }

  /** Keeps the newest MAX_RECORDS records. */
  async trim(max = MAX_RECORDS): Promise<void> {
    await keepNewest(join(this.#cacheDir, EXPLAIN_DIR), /\.json$/, max);
  }
}

function short(hash: string | null): string {
  return hash === null ? 'missing' : `${hash.slice(0, 12)}…`;
}

/** The record for `file` (an object, or the source of one) seen from `cwd`. */
async function findRecord(
  cacheDir: string,
  file: string,
  cwd: string,
): Promise<ExplainRecord | null> {
  const path = resolve(cwd, file);
  const direct = await readRecord(recordFile(cacheDir, path));
  if (direct !== null) return direct;
  // Not an object: look for a record whose source is this file (the newest one).
  const dir = join(cacheDir, EXPLAIN_DIR);
  let best: ExplainRecord | null = null;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    const rec = await readRecord(join(dir, name));
    if (rec === null || resolve(rec.cwd, rec.source) !== path) continue;
    if (best === null || rec.at > best.at) best = rec;
  }
  return best;
}

function describeDifferences(before: KeyInputs, after: KeyInputs): string[] {
  return diffKeyInputs(before, after).map((d) => {
    if (d.change === 'changed') {
      const long = d.before.length > 40 || d.after.length > 40;
      return long
        ? `${d.name} changed: ${short(d.before)} → ${short(d.after)}`
        : `${d.name} changed: ${d.before || '(none)'} → ${d.after || '(none)'}`;
    }
    if (d.change === 'list') {
      if (d.reordered) return `${d.name}: same items, other order`;
      const parts = [];
      if (d.added.length > 0) parts.push(`added ${d.added.join(' ')}`);
      if (d.removed.length > 0) parts.push(`removed ${d.removed.join(' ')}`);
      return `${d.name}: ${parts.join('; ')}`;
    }
    return `${d.name} ${d.change}`;
  });
}

/** The last record of `file` (an object or its source), or null: `--explain FILE --json`. */
export function explainRecord(
  cacheDir: string,
  file: string,
  cwd: string = process.cwd(),
): Promise<ExplainRecord | null> {
  return findRecord(cacheDir, file, cwd);
}

/** `muster cc --explain FILE` as text. */
export async function explain(
  cacheDir: string,
  file: string,
  cwd: string = process.cwd(),
): Promise<string> {
  const rec = await findRecord(cacheDir, file, cwd);
  if (rec === null) return `${file}: no compile of it recorded in ${cacheDir}\n`;
  const lines = [`${rec.output}  ${rec.command}`];
  const outcome = {
    hit: `cache HIT (${rec.tier ?? 'local'} tier)`,
    miss: 'cache MISS, compiled here',
    uncacheable: 'not cached',
    failed: 'the compiler failed (nothing cached)',
  }[rec.outcome];
  lines.push(`  last compile: ${rec.at}, ${outcome}`);
  if (rec.outcome === 'uncacheable' || rec.outcome === 'failed') {
    if (rec.reasons.length > 0) lines.push(`  why: ${rec.reasons.join('; ')}`);
  } else if (rec.outcome === 'miss') {
    if (rec.mismatch.length > 0) {
      lines.push(
        `  why: source and arguments unchanged (direct key ${short(rec.direct)}), ` +
          `${rec.manifestLines} earlier result${rec.manifestLines === 1 ? '' : 's'}, ` +
          'the newest no longer matches:',
      );
      for (const m of rec.mismatch)
        lines.push(`    ${m.path}   sha256 ${short(m.before)} → ${short(m.after)}`);
    } else if (rec.previousInputs !== null && rec.inputs !== null) {
      const diffs = describeDifferences(rec.previousInputs, rec.inputs);
      lines.push('  why: the direct key changed since the compile before:');
      for (const d of diffs) lines.push(`    ${d}`);
    } else {
      lines.push('  why: never compiled with these inputs before (no earlier result)');
    }
    if (rec.reasons.length > 0)
      lines.push(`  and its result was not stored: ${rec.reasons.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}
