/**
 * The problem list of a plan check: every problem found, each with the path of the field it is
 * about and its line, reported together as one PLAN_INVALID error in the order of the text.
 */
import { MusterError } from '../../protocol/errors.js';

export interface Problem {
  path: string;
  text: string;
  line: number | undefined;
}

/** A field's display path: `tasks.link.needs`, or a quoted key when it is not a plain word. */
export function joinPath(path: string, key: string): string {
  const part = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(key) ? key : JSON.stringify(key);
  return path === '' ? part : `${path}.${part}`;
}

export class Problems {
  readonly list: Problem[] = [];

  add(path: string, text: string, line?: number): void {
    this.list.push({ path, text, line });
  }

  get count(): number {
    return this.list.length;
  }

  error(sourceName: string | undefined): MusterError {
    // In the order of the text (stable: problems without a line first, as found).
    const ordered = this.list
      .map((p, i) => ({ p, i }))
      .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || a.i - b.i);
    const problems = ordered.map(({ p }) => formatProblem(p));
    const n = problems.length;
    const shown = problems.slice(0, MAX_LISTED);
    const more = n > shown.length ? [`… and ${n - shown.length} more`] : [];
    const subject = sourceName === undefined ? 'The plan' : `Plan ${sourceName}`;
    const message = `${subject} has ${n} problem${n === 1 ? '' : 's'}:\n${[...shown, ...more]
      .map((p) => `  - ${p}`)
      .join('\n')}`;
    return new MusterError('PLAN_INVALID', message, { problems });
  }
}

/** How many problems the error message lists; details.problems always has all of them. */
const MAX_LISTED = 100;

function formatProblem(p: Problem): string {
  const where = p.line === undefined ? '' : ` (line ${p.line})`;
  return `${p.path === '' ? '' : `${p.path}: `}${p.text}${where}`;
}

/** A value as a problem names what was found: `the string "x"`, `a list`, `nothing`. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') {
    return `the ${typeof value} ${String(value)}`;
  }
  return `a ${typeof value}`;
}
