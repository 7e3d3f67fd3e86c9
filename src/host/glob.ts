import { codedError } from './errors.js';

/**
 * A small glob matcher for output patterns (the host cannot ship picomatch). It follows
 * picomatch's defaults for the syntax it supports:
 *
 *   *        any characters within one path segment
 *   **       (a whole segment) zero or more segments
 *   ?        one character, not "/"
 *   [abc] [a-z] [!abc] [^abc]   one character from (or not from) a class
 *   {a,b}    alternatives, may nest and contain wildcards
 *   \x       the character x itself
 *
 * Like picomatch without `dot: true`, wildcards never match a segment that starts with "." unless
 * the pattern segment itself starts with "."; so `**` skips `.git/` and `*.txt` skips `.a.txt`.
 * Paths are relative with "/" separators. A pattern may start with "./"; one that is absolute or
 * has a ".." segment is refused with INVALID_PATH.
 */
export class GlobSet {
  /** Fully literal patterns: checked directly, no directory walk needed. */
  readonly literals = new Set<string>();
  /** Directories (relative, '' = root) whose trees the wildcard patterns need walked. */
  readonly walkBases: string[];
  private readonly regexes: RegExp[] = [];

  constructor(patterns: readonly string[]) {
    const bases = new Set<string>();
    for (const raw of patterns) {
      for (const pattern of expandBraces(normalise(raw))) {
        const segments = pattern.split('/');
        if (segments.some((s) => s === '' || s === '.' || s === '..')) {
          throw codedError('INVALID_PATH', `output pattern ${JSON.stringify(raw)} is not relative`);
        }
        const firstMagic = segments.findIndex(isMagic);
        if (firstMagic < 0) {
          this.literals.add(pattern);
          continue;
        }
        bases.add(segments.slice(0, firstMagic).join('/'));
        this.regexes.push(compile(segments));
      }
    }
    this.walkBases = minimiseBases([...bases]);
  }

  get hasWildcards(): boolean {
    return this.regexes.length > 0;
  }

  match(path: string): boolean {
    return this.literals.has(path) || this.regexes.some((re) => re.test(path));
  }
}

/** Matches one path against one pattern (for tests and one-off checks). */
export function globMatch(pattern: string, path: string): boolean {
  return new GlobSet([pattern]).match(path);
}

const MAX_EXPANSIONS = 1024;

function normalise(pattern: string): string {
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw codedError('INVALID_PATH', 'an output pattern is empty or not a string');
  }
  let p = pattern;
  while (p.startsWith('./')) p = p.slice(2);
  if (p.startsWith('/') || p.includes('\0')) {
    throw codedError('INVALID_PATH', `output pattern ${JSON.stringify(pattern)} is not relative`);
  }
  return p;
}

function isMagic(segment: string): boolean {
  return /[*?[\\]/.test(segment);
}

/** Drops bases covered by another base ('' covers everything). */
function minimiseBases(bases: string[]): string[] {
  bases.sort();
  const kept: string[] = [];
  for (const base of bases) {
    const covered = kept.some((k) => k === '' || base === k || base.startsWith(k + '/'));
    if (!covered) kept.push(base);
  }
  return kept;
}

/** Expands the first top-level `{a,b}` group, recursively, until none is left. */
export function expandBraces(pattern: string): string[] {
  const out: string[] = [];
  const pending = [pattern];
  while (pending.length > 0) {
    const p = pending.pop() as string;
    const group = findBraceGroup(p);
    if (group === undefined) {
      out.push(p);
    } else {
      const [open, close, commas] = group;
      const prefix = p.slice(0, open);
      const suffix = p.slice(close + 1);
      let start = open + 1;
      for (const comma of [...commas, close]) {
        pending.push(prefix + p.slice(start, comma) + suffix);
        start = comma + 1;
      }
    }
    if (out.length + pending.length > MAX_EXPANSIONS) {
      throw codedError(
        'INVALID_PATH',
        `output pattern ${JSON.stringify(pattern)} expands too much`,
      );
    }
  }
  return out.reverse();
}

/** [open, close, top-level commas] of the first brace group that has a comma, if any. */
function findBraceGroup(p: string): [number, number, number[]] | undefined {
  for (let open = 0; open < p.length; open++) {
    const c = p[open];
    if (c === '\\') {
      open++;
      continue;
    }
    if (c !== '{') continue;
    let depth = 0;
    const commas: number[] = [];
    for (let i = open + 1; i < p.length; i++) {
      const d = p[i];
      if (d === '\\') i++;
      else if (d === '{') depth++;
      else if (d === ',' && depth === 0) commas.push(i);
      else if (d === '}') {
        if (depth === 0) {
          if (commas.length > 0) return [open, i, commas];
          break;
        }
        depth--;
      }
    }
  }
  return undefined;
}

const NOT_DOT = '(?!\\.)';
const ANY_SEGMENT = `${NOT_DOT}[^/]+`;

function compile(segments: string[]): RegExp {
  let source = '';
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    const last = i === segments.length - 1;
    if (segment === '**') {
      // Not last: zero or more whole segments, each with its "/". Last: one or more segments.
      source += last ? `${ANY_SEGMENT}(?:/${ANY_SEGMENT})*` : `(?:${ANY_SEGMENT}/)*`;
      continue;
    }
    source += (segment.startsWith('.') ? '' : NOT_DOT) + segmentSource(segment);
    if (!last) source += '/';
  }
  return new RegExp(`^${source}$`);
}

function segmentSource(segment: string): string {
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] as string;
    if (c === '\\') {
      i++;
      out += escapeRegex(segment[i] ?? '\\');
    } else if (c === '*') {
      while (segment[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const parsed = parseClass(segment, i);
      if (parsed === undefined) {
        out += '\\[';
      } else {
        out += parsed[0];
        i = parsed[1];
      }
    } else {
      out += escapeRegex(c);
    }
  }
  return out;
}

/** A `[...]` class starting at `open`: [regex source, index of the closing "]"], if closed. */
function parseClass(segment: string, open: number): [string, number] | undefined {
  let i = open + 1;
  const negate = segment[i] === '!' || segment[i] === '^';
  if (negate) i++;
  let body = '';
  for (let first = true; i < segment.length; i++, first = false) {
    const c = segment[i] as string;
    if (c === ']' && !first) {
      return [negate ? `[^/${body}]` : `[${body}]`, i];
    }
    if (c === '\\' && i + 1 < segment.length) {
      i++;
      body += escapeClassChar(segment[i] as string);
    } else {
      body += c === '-' ? '-' : escapeClassChar(c);
    }
  }
  return undefined;
}

function escapeClassChar(c: string): string {
  return /[\]\\^[-]/.test(c) ? '\\' + c : c;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
