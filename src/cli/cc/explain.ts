/**
 * `muster cc --explain FILE` (design §4): for each object the service compiled, the last
 * lookup's key inputs and outcome, kept in the local tier's database (local-tier.ts, `explain`,
 * by absolute object path: a row a compile, queued and written in batches, no file made), and
 * what made the last miss a miss: the headers of the direct key's newest manifest line that no
 * longer match (`diffIncludes`), or — when the direct key itself changed — which key inputs
 * differ from the lookup before it (`diffKeyInputs`).
 *
 * At most MAX_RECORDS records are kept: the oldest are removed with the batch written after a
 * service's first record and every TRIM_EVERY records after it (a `muster build` per run records
 * far fewer than that).
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { isObject } from '../../common/is-object.js';
import { diffKeyInputs, type IncludeDifference, type KeyInputs } from './cache-key.js';
import { readExplain, type ExplainRow, type LocalTier } from './local-tier.js';

export const MAX_RECORDS = 5_000;
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

/** A stored record, whole and checked (for `--explain`), or null. */
function recordOf(row: ExplainRow | null): ExplainRecord | null {
  if (row === null || row.body.length > MAX_RECORD_BYTES) return null;
  try {
    const parsed = recordSchema.safeParse(JSON.parse(row.body));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * What the next record of the same object needs of the one before it — its direct key and key
 * inputs — or null when there is none or it is not a record. Every compile reads one, so this
 * checks only those fields; `recordOf` checks whole records for `--explain`.
 */
function previousOf(
  row: ExplainRow | null,
): Pick<ExplainRecord, 'direct' | 'inputs' | 'previousInputs'> | null {
  if (row === null || row.body.length > MAX_RECORD_BYTES) return null;
  try {
    const value: unknown = JSON.parse(row.body);
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
  readonly #tier: LocalTier;
  #writes = 0;

  constructor(tier: LocalTier) {
    this.#tier = tier;
  }

  /**
   * Keeps `rec` as its object's record: in memory at once, in the database soon (local-tier.ts:
   * written in a batch, dropped if the database cannot be used then). A compile's answer waits
   * for no write of its own record: the record before is read (WAL: a read never waits for a
   * writer), this one queued.
   */
  record(rec: Omit<ExplainRecord, 'previousInputs'>): void {
    const object = resolve(rec.cwd, rec.output);
    const old = previousOf(this.#tier.explainOf(object));
    let previousInputs: KeyInputs | null = null;
    if (old !== null) {
      previousInputs = old.direct !== rec.direct ? old.inputs : old.previousInputs;
    }
    this.#tier.putExplain({
      object,
      source: resolve(rec.cwd, rec.source),
      at: rec.at,
      body: JSON.stringify({ ...rec, previousInputs }),
    });
    if (this.#writes++ % TRIM_EVERY === 0) this.trim();
  }

  /** Keeps the newest `max` records. */
  trim(max = MAX_RECORDS): void {
    this.#tier.keepNewestExplain(max);
  }
}

function short(hash: string | null): string {
  return hash === null ? 'missing' : `${hash.slice(0, 12)}…`;
}

/**
 * The record for `file` (an object, or the source of one) seen from `cwd`: the object's, else
 * the newest whole one whose source it is. No database yet: none (and nothing is made).
 */
function findRecord(cacheDir: string, file: string, cwd: string): ExplainRecord | null {
  const path = resolve(cwd, file);
  const found = readExplain(cacheDir, (rows) => {
    const own = recordOf(rows.of(path));
    if (own !== null) return own;
    for (const row of rows.ofSource(path)) {
      const rec = recordOf(row);
      if (rec !== null) return rec;
    }
    return null;
  });
  return found ?? null;
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
export async function explainRecord(
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
  const rec = findRecord(cacheDir, file, cwd);
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
    // A miss's reasons say where it ran and why (a result not kept is 'uncacheable').
    if (rec.reasons.length > 0) lines.push(`  where: ${rec.reasons.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}
