/**
 * Checks of a task's single fields: globs, durations, values JSON can carry, and the lists of
 * strings that inputs, outputs, needs and requires are.
 */
import picomatch from 'picomatch';
import { expandBraces } from '../../host/glob.js';
import { parseDuration } from '../../common/duration.js';
import { isObject } from '../../common/is-object.js';
import { PLAN_LIMITS } from './limits.js';
import { describe, type Problems } from './problems.js';
import type { AstPath, Source } from './yaml-source.js';

export { isObject };

/**
 * Checks one input or output glob. Returns the pattern (a leading "./" removed) or the reason it
 * is refused. `base` names what it is relative to, for the messages.
 */
export function checkGlob(pattern: string, base: string): { pattern: string } | { reason: string } {
  const bad = (reason: string) => ({ reason });
  if (pattern.trim() === '') return bad('has an empty pattern');
  if (pattern.length > PLAN_LIMITS.maxGlobLength) {
    return bad(`is longer than ${PLAN_LIMITS.maxGlobLength} characters`);
  }
  const quoted = JSON.stringify(pattern);
  if (pattern.includes('\0')) return bad(`${quoted} contains a NUL character`);
  if (pattern.includes('\\')) {
    return bad(
      `${quoted} contains a backslash (paths use "/"; backslash escapes are not supported)`,
    );
  }
  if (pattern.startsWith('!'))
    return bad(`${quoted} is negated; negated patterns are not supported`);
  let p = pattern;
  while (p.startsWith('./')) p = p.slice(2);
  if (p === '' || p === '.')
    return bad(`${quoted} names ${base} itself; use "**" for everything in it`);
  // The host's own expansion: a plan is checked with the same reading of {a,b} that will match it.
  let expanded: string[];
  try {
    expanded = expandBraces(p);
  } catch {
    return bad(`${quoted} has too many {a,b} alternatives`);
  }
  for (const alternative of expanded) {
    if (alternative.startsWith('/') || /^[A-Za-z]:/.test(alternative)) {
      return bad(`${quoted} is an absolute path; it must be relative to ${base}`);
    }
    const segments = alternative.split('/');
    if (segments.includes('..')) return bad(`${quoted} escapes ${base} (".." segment)`);
    if (segments.at(-1) === '' && segments.length > 1) {
      return bad(
        `${quoted} ends with "/"; use "${p.replace(/\/+$/, '')}/**" for the files under a directory`,
      );
    }
    if (segments.includes('')) return bad(`${quoted} has an empty path segment ("//")`);
    if (segments.includes('.')) return bad(`${quoted} has a "." segment`);
  }
  const scan = picomatch.scan(p);
  if (scan.isExtglob) {
    return bad(`${quoted} uses extglob syntax like +(a|b), which is not supported; use {a,b}`);
  }
  try {
    picomatch.makeRe(p, { debug: true });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const why = message.includes('Unterminated group')
      ? 'an unclosed "{" or "("'
      : (message.split(': ').at(-1) ?? message).toLowerCase();
    return bad(`${quoted} is not a valid glob (${why})`);
  }
  return { pattern: p };
}

/** A task's timeout in milliseconds, or the problem with it. */
export function parseTimeout(value: unknown): number | string {
  // One duration syntax everywhere (common/duration.ts): a number needs its unit.
  if (typeof value === 'number' && (!Number.isFinite(value) || value <= 0))
    return 'must be a positive duration';
  if (
    typeof value === 'number' ||
    (typeof value === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(value))
  ) {
    const n = String(value).trim();
    if (Number(n) === 0) return 'must be a positive duration';
    return `${n} has no unit: write ${n}s or ${n}m (durations: 500ms, 30s, 10m, 1h, 1d)`;
  }
  if (typeof value !== 'string')
    return `must be a duration like 30s, 10m or 1h (got ${describe(value)})`;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch {
    return `${JSON.stringify(value)} is not a duration (examples: 500ms, 30s, 10m, 1h)`;
  }
  if (ms <= 0) return 'must be longer than 0';
  if (ms > PLAN_LIMITS.maxTimeoutMs) return 'must be at most 7d';
  return ms;
}

/** Where `value` holds a number JSON cannot carry (NaN, Infinity), in words; undefined when none. */
export function findNonJson(
  value: unknown,
  path: string,
  seen = new Set<unknown>(),
): string | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value)
      ? undefined
      : `${path || 'it'} is ${String(value)}, which JSON cannot carry`;
  if (value === null || typeof value !== 'object' || seen.has(value)) return undefined;
  seen.add(value);
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [`${path}[${i}]`, v])
    : Object.entries(value).map(([k, v]) => [path === '' ? k : `${path}.${k}`, v]);
  for (const [p, v] of entries) {
    const found = findNonJson(v, p, seen);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** One entry of `tasks:` as found, before its fields are checked. */
export interface TaskEntry {
  /** undefined when the entry has no usable name. */
  name: string | undefined;
  /** How problems name it: `tasks.link` or `tasks[3]`. */
  display: string;
  ast: AstPath;
  value: unknown;
  listForm: boolean;
}

/** A list of strings, or one string for a list of one; undefined/null is the empty list. */
export function stringItems(
  entry: TaskEntry,
  field: string,
  source: Source,
  problems: Problems,
): { text: string; ast: AstPath }[] {
  const raw = (entry.value as Record<string, unknown>)[field];
  const fieldAst = [...entry.ast, field];
  const path = `${entry.display}.${field}`;
  if (raw === undefined || raw === null) return [];
  if (typeof raw === 'string') return [{ text: raw, ast: fieldAst }];
  if (!Array.isArray(raw)) {
    problems.add(path, `must be a list of strings (got ${describe(raw)})`, source.line(fieldAst));
    return [];
  }
  const out: { text: string; ast: AstPath }[] = [];
  raw.forEach((item, i) => {
    const ast = [...fieldAst, i];
    if (typeof item === 'string') out.push({ text: item, ast });
    else
      problems.add(
        path,
        `item ${i + 1} must be a string (got ${describe(item)})`,
        source.line(ast),
      );
  });
  return out;
}

/** A list of globs, each checked by checkGlob(); duplicates dropped. */
export function globList(
  entry: TaskEntry,
  field: 'inputs' | 'outputs',
  base: string,
  source: Source,
  problems: Problems,
): string[] {
  const out = new Set<string>();
  for (const { text, ast } of stringItems(entry, field, source, problems)) {
    const result = checkGlob(text, base);
    if ('reason' in result)
      problems.add(`${entry.display}.${field}`, result.reason, source.line(ast));
    else out.add(result.pattern);
  }
  return [...out];
}

/** A list of names, each checked by `check`; duplicates dropped. */
export function nameList(
  entry: TaskEntry,
  field: 'needs' | 'requires' | 'secrets',
  source: Source,
  problems: Problems,
  check: (name: string) => string | undefined,
): string[] {
  const out = new Set<string>();
  for (const { text, ast } of stringItems(entry, field, source, problems)) {
    const reason = check(text);
    if (reason !== undefined) problems.add(`${entry.display}.${field}`, reason, source.line(ast));
    else out.add(text);
  }
  return [...out];
}
