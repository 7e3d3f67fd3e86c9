import picomatch from 'picomatch';
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Pair,
  type YAMLMap,
} from 'yaml';
import { parseDuration } from '../../protocol/duration.js';
import { MusterError } from '../../protocol/errors.js';
import type { Plan, PlanTask } from './types.js';
import { expandBraces } from '../../host/glob.js';

/**
 * Parses and validates a build plan (the YAML format is described in docs/plans.md).
 *
 * Validation never stops at the first mistake: every problem in the plan is collected and
 * reported at once in a PLAN_INVALID error (`details.problems`), each as one line that names the
 * task and the field, e.g. `tasks.link.needs: unknown task "compil"; did you mean "compile"?
 * (line 12)`. Only YAML syntax errors and the size limits stop validation early, because nothing
 * after them can be trusted.
 */

export const PLAN_LIMITS = {
  /** Largest plan text, in UTF-8 bytes. */
  maxBytes: 1024 * 1024,
  maxTasks: 10_000,
  /**
   * YAML nodes (mappings, lists, keys and values) in the document. Well above what a 1 MiB plan
   * written by hand or by a generator holds (about one node per 7 bytes), well below what a
   * flow-style list of 1-character items packs into 1 MiB (one per 2 bytes).
   */
  maxNodes: 250_000,
  maxRetries: 10,
  /** Largest task timeout (setTimeout cannot go much beyond 24 days anyway). */
  maxTimeoutMs: 7 * 86_400_000,
  maxGlobLength: 1024,
} as const;

export const TASK_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const EXTENSION_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const OPERATION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const TOP_KEYS = ['name', 'tasks'] as const;
const TASK_KEYS = [
  'run',
  'uses',
  'with',
  'inputs',
  'outputs',
  'needs',
  'env',
  'timeout',
  'retries',
  'requires',
] as const;

/** Words people bring from other tools, mapped to the key Muster uses. */
/**
 * Words people bring from other tools (lower case, without "-" and "_"), mapped to the key Muster
 * uses.
 */
const KEY_HINTS: Record<string, string> = {
  jobs: 'tasks',
  steps: 'tasks',
  targets: 'tasks',
  title: 'name',
  command: 'run',
  commands: 'run',
  cmd: 'run',
  script: 'run',
  shell: 'run',
  exec: 'run',
  args: 'run',
  use: 'uses',
  extension: 'uses',
  operation: 'uses',
  params: 'with',
  parameters: 'with',
  depends: 'needs',
  dependson: 'needs',
  dependencies: 'needs',
  deps: 'needs',
  after: 'needs',
  environment: 'env',
  variables: 'env',
  vars: 'env',
  artifacts: 'outputs',
  products: 'outputs',
  sources: 'inputs',
  srcs: 'inputs',
  files: 'inputs',
  retry: 'retries',
  attempts: 'retries',
  labels: 'requires',
  tags: 'requires',
  agent: 'requires',
  agents: 'requires',
  runson: 'requires',
  timeoutms: 'timeout',
};

type AstPath = readonly (string | number)[];

interface Problem {
  path: string;
  text: string;
  line: number | undefined;
}

/** The parsed YAML document, for line numbers and the source text of scalars. */
class Source {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  lineOfOffset(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /**
   * The AST node at `path` (undefined when the path leaves the document, e.g. through a merge key)
   * and the line where its last step is written: the key's line for a mapping entry, the item's
   * line for a list item, else the closest ancestor's.
   */
  locate(path: AstPath): { node: unknown; line: number | undefined } {
    let node: unknown = this.doc.contents;
    let line: number | undefined;
    for (const step of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = this.pairs(node).get(String(step));
        if (pair === undefined) return { node: undefined, line };
        line = this.lineOf(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof step === 'number') {
        node = node.items[step];
        line = this.lineOf(node) ?? line;
      } else {
        return { node: undefined, line };
      }
    }
    return { node, line };
  }

  private readonly pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

  /** A mapping's entries by key (the last one wins, as in toJS()). */
  private pairs(map: YAMLMap): Map<string, Pair> {
    let index = this.pairIndex.get(map);
    if (index === undefined) {
      index = new Map();
      for (const pair of map.items) {
        if (isScalar(pair.key)) index.set(String(pair.key.value), pair);
      }
      this.pairIndex.set(map, index);
    }
    return index;
  }

  line(path: AstPath): number | undefined {
    return this.locate(path).line;
  }

  /**
   * A scalar as text: strings as they are; numbers and booleans as written in the YAML (so
   * `1.10` stays "1.10" and `0x1F` stays "0x1F"); anything else undefined.
   */
  scalarText(path: AstPath, value: unknown): string | undefined {
    if (typeof value === 'string') return value;
    if (typeof value !== 'number' && typeof value !== 'boolean') return undefined;
    const { node } = this.locate(path);
    if (isScalar(node) && node.value === value && typeof node.source === 'string') {
      return node.source;
    }
    return String(value);
  }

  private lineOf(node: unknown): number | undefined {
    if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
    const range = (node as { range?: [number, number, number] | null }).range;
    return range ? this.lineOfOffset(range[0]) : undefined;
  }

  /**
   * How many nodes the document holds (mappings, lists, keys, values, aliases), counting no
   * further than `limit + 1`. Iterative: nesting depth costs no stack.
   */
  countNodes(limit: number): number {
    let count = 0;
    const stack: unknown[] = [this.doc.contents];
    while (stack.length > 0 && count <= limit) {
      const node = stack.pop();
      if (isPair(node)) {
        stack.push(node.key, node.value);
      } else if (isMap(node) || isSeq(node)) {
        count++;
        for (const item of node.items) stack.push(item);
      } else if (node !== null && typeof node === 'object') {
        count++;
      }
    }
    return count;
  }

  /** Every key written twice in one mapping (the YAML library would keep only the last one). */
  duplicateKeys(): { path: string; key: string; lines: number[] }[] {
    const found: { path: string; key: string; lines: number[] }[] = [];
    const seen = new Set<unknown>();
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object' || seen.has(node)) return;
      seen.add(node);
      if (isMap(node)) {
        const byKey = new Map<string, number[]>();
        for (const pair of node.items) {
          if (isScalar(pair.key)) {
            const key = String(pair.key.value);
            const line = this.lineOf(pair.key) ?? 0;
            // Appended in place: copying the list per key made 40,000 repeats quadratic.
            const lines = byKey.get(key);
            if (lines === undefined) byKey.set(key, [line]);
            else lines.push(line);
            walk(pair.value, joinPath(path, key));
          } else {
            walk(pair.value, path);
          }
        }
        for (const [key, lines] of byKey) {
          if (lines.length > 1) found.push({ path, key, lines });
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, `${path}[${i}]`));
      }
    };
    walk(this.doc.contents, '');
    return found;
  }
}

function joinPath(path: string, key: string): string {
  const part = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(key) ? key : JSON.stringify(key);
  return path === '' ? part : `${path}.${part}`;
}

class Problems {
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

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') {
    return `the ${typeof value} ${String(value)}`;
  }
  return `a ${typeof value}`;
}

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions), or `limit + 1`
 * as soon as it is known to be larger than `limit`.
 */
export function editDistance(a: string, b: string, limit = Infinity): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const cols = b.length + 1;
  let before: number[] = [];
  let previous: number[] = Array.from({ length: cols }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row: number[] = [i];
    let rowMin = i;
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        (previous[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (before[j - 2] ?? 0) + 1);
      }
      row.push(best);
      rowMin = Math.min(rowMin, best);
    }
    if (rowMin > limit) return limit + 1;
    before = previous;
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/**
 * The closest candidate, if it is close enough to be a likely typo: at most a third of the
 * longer word's letters apart (at least 1), case ignored; ties go to the first candidate (give
 * them sorted).
 */
export function closest(
  word: string,
  candidates: readonly string[],
  exclude?: string,
): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = word.toLowerCase();
  for (const candidate of candidates) {
    if (candidate === exclude) continue;
    const limit = Math.max(1, Math.floor(Math.max(word.length, candidate.length) / 3));
    const distance = editDistance(lower, candidate.toLowerCase(), Math.min(limit, bestDistance));
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The key `key` was probably meant to be, if any. */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  const normal = key.toLowerCase().replace(/[-_]/g, '');
  const hint = Object.hasOwn(KEY_HINTS, normal) ? KEY_HINTS[normal] : undefined;
  return hint !== undefined && known.includes(hint) ? hint : closest(key, known);
}

function unknownKeyText(suggestion: string | undefined, known: readonly string[]): string {
  return suggestion === undefined
    ? `unknown key (known keys: ${known.join(', ')})`
    : `unknown key; did you mean "${suggestion}"?`;
}

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

function parseTimeout(value: unknown): number | string {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) return 'must be a positive duration';
    ms = Math.round(value * 1000);
  } else if (typeof value === 'string') {
    // A bare number is seconds here, as a YAML number is (parseDuration reads it as ms).
    const text = /^\s*\d+(?:\.\d+)?\s*$/.test(value) ? `${value.trim()}s` : value;
    try {
      ms = parseDuration(text);
    } catch {
      return `${JSON.stringify(value)} is not a duration (examples: 500ms, 30s, 10m, 1h, or a number of seconds)`;
    }
  } else {
    return `must be a duration like 30s, 10m or 1h, or a number of seconds (got ${describe(value)})`;
  }
  if (ms <= 0) return 'must be longer than 0';
  if (ms > PLAN_LIMITS.maxTimeoutMs) return 'must be at most 7d';
  return ms;
}

function findNonJson(value: unknown, path: string, seen = new Set<unknown>()): string | undefined {
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

interface TaskEntry {
  /** undefined when the entry has no usable name. */
  name: string | undefined;
  /** How problems name it: `tasks.link` or `tasks[3]`. */
  display: string;
  ast: AstPath;
  value: unknown;
  listForm: boolean;
}

interface Checked {
  task: PlanTask;
  display: string;
  ast: AstPath;
}

/** Parses a plan (YAML text) into a validated Plan, or throws PLAN_INVALID listing every problem. */
export function parsePlan(text: string, options: { sourceName?: string } = {}): Plan {
  const problems = new Problems();
  const fail: () => never = () => {
    throw problems.error(options.sourceName);
  };

  if (typeof text !== 'string') {
    problems.add('', 'the plan is not text');
    fail();
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > PLAN_LIMITS.maxBytes) {
    problems.add('', `the plan is ${bytes} bytes; the limit is ${PLAN_LIMITS.maxBytes} (1 MiB)`);
    fail();
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: false, // reported below with both lines, without stopping validation
    merge: true,
  });
  const source = new Source(doc, lineCounter);
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      problems.add('', `YAML syntax: ${err.message}`, source.lineOfOffset(err.pos[0]));
    }
    fail();
  }
  // Before toJS() and every walk below: the work they do grows with the number of nodes.
  if (source.countNodes(PLAN_LIMITS.maxNodes) > PLAN_LIMITS.maxNodes) {
    problems.add(
      '',
      `the plan has more than ${PLAN_LIMITS.maxNodes} YAML nodes (mappings, lists, keys and values); the limit is ${PLAN_LIMITS.maxNodes}`,
    );
    fail();
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    problems.add('', `YAML: ${err instanceof Error ? err.message : String(err)}`);
    fail();
  }

  for (const dup of source.duplicateKeys()) {
    const [first, ...later] = dup.lines;
    for (const line of later) {
      const what = dup.path === 'tasks' ? 'task name' : 'key';
      problems.add(dup.path, `duplicate ${what} "${dup.key}" (first at line ${first})`, line);
    }
  }

  if (root === null || root === undefined) {
    problems.add('', 'the plan is empty; it needs a "tasks:" mapping');
    fail();
  }
  if (!isObject(root)) {
    problems.add('', `the plan must be a mapping with a "tasks:" key (got ${describe(root)})`);
    fail();
  }
  const top = root;

  let tasksMisspelt = false;
  for (const key of Object.keys(top)) {
    if (!(TOP_KEYS as readonly string[]).includes(key)) {
      const suggestion = suggestKey(key, TOP_KEYS);
      tasksMisspelt ||= suggestion === 'tasks';
      problems.add(joinPath('', key), unknownKeyText(suggestion, TOP_KEYS), source.line([key]));
    }
  }

  let planName: string | undefined;
  if (top.name !== undefined && top.name !== null) {
    const name = source.scalarText(['name'], top.name);
    if (name === undefined || name.trim() === '') {
      problems.add(
        'name',
        `must be a non-empty string (got ${describe(top.name)})`,
        source.line(['name']),
      );
    } else if (name.length > 200) {
      problems.add('name', 'is longer than 200 characters', source.line(['name']));
    } else {
      planName = name;
    }
  }

  // Collect the task entries from either form.
  const entries: TaskEntry[] = [];
  const tasksValue = top.tasks;
  const count = Array.isArray(tasksValue)
    ? tasksValue.length
    : isObject(tasksValue)
      ? Object.keys(tasksValue).length
      : 0;
  if (count > PLAN_LIMITS.maxTasks) {
    problems.add('tasks', `the plan has ${count} tasks; the limit is ${PLAN_LIMITS.maxTasks}`);
    fail();
  }
  if (tasksValue === undefined || tasksValue === null) {
    // A misspelt "tasks:" key is reported above; "missing" would only repeat it.
    if (!tasksMisspelt) {
      problems.add('tasks', 'missing: a plan needs at least one task', source.line(['tasks']));
    }
  } else if (Array.isArray(tasksValue)) {
    if (tasksValue.length === 0) {
      problems.add('tasks', 'is empty: a plan needs at least one task', source.line(['tasks']));
    }
    const firstLine = new Map<string, number | undefined>();
    tasksValue.forEach((item, i) => {
      const ast = ['tasks', i];
      const display = `tasks[${i}]`;
      if (!isObject(item)) {
        problems.add(
          display,
          `must be a mapping with name: and run: or uses: (got ${describe(item)})`,
          source.line(ast),
        );
        return;
      }
      const rawName = item.name;
      const name = source.scalarText([...ast, 'name'], rawName);
      if (rawName === undefined || rawName === null) {
        problems.add(display, 'has no name (the list form needs name:)', source.line(ast));
        entries.push({ name: undefined, display, ast, value: item, listForm: true });
        return;
      }
      if (name === undefined || !TASK_NAME_PATTERN.test(name)) {
        problems.add(
          `${display}.name`,
          badNameText(name ?? rawName),
          source.line([...ast, 'name']),
        );
        entries.push({ name: undefined, display, ast, value: item, listForm: true });
        return;
      }
      if (firstLine.has(name)) {
        const first = firstLine.get(name);
        problems.add(
          `${display}.name`,
          `duplicate task name "${name}"${first === undefined ? '' : ` (first at line ${first})`}`,
          source.line([...ast, 'name']),
        );
        entries.push({ name: undefined, display, ast, value: item, listForm: true });
        return;
      }
      firstLine.set(name, source.line([...ast, 'name']));
      entries.push({ name, display: `tasks.${name}`, ast, value: item, listForm: true });
    });
  } else if (isObject(tasksValue)) {
    if (Object.keys(tasksValue).length === 0) {
      problems.add('tasks', 'is empty: a plan needs at least one task', source.line(['tasks']));
    }
    for (const [name, value] of Object.entries(tasksValue)) {
      const ast = ['tasks', name];
      const display = joinPath('tasks', name);
      if (!TASK_NAME_PATTERN.test(name)) {
        problems.add(display, badNameText(name), source.line(ast));
        entries.push({ name: undefined, display, ast, value, listForm: false });
      } else {
        entries.push({ name, display, ast, value, listForm: false });
      }
    }
  } else {
    problems.add(
      'tasks',
      `must be a mapping of task names to tasks, or a list of tasks with name: (got ${describe(tasksValue)})`,
      source.line(['tasks']),
    );
  }

  // Every name written, valid or not, so a need of a misnamed task is not reported twice.
  const allNames = new Set<string>();
  for (const entry of entries) {
    if (entry.name !== undefined) allNames.add(entry.name);
    else if (!entry.listForm) allNames.add(String(entry.ast[1]));
    else if (isObject(entry.value) && typeof entry.value.name === 'string')
      allNames.add(entry.value.name);
  }

  const checked = new Map<string, Checked>();
  for (const entry of entries) {
    const task = checkTask(entry, source, problems);
    if (task !== undefined && entry.name !== undefined) {
      checked.set(entry.name, { task, display: entry.display, ast: entry.ast });
    }
  }

  // needs: unknown names and self-needs.
  const validNames = [...allNames].filter((n) => TASK_NAME_PATTERN.test(n)).sort(compareNames);
  // Looking for a suggestion is O(tasks); a plan with thousands of unknown needs gets no more.
  let suggestionsLeft = 20;
  for (const { task, display, ast } of checked.values()) {
    for (const need of task.needs) {
      const line = (): number | undefined => source.line([...ast, 'needs']);
      if (need === task.name) {
        problems.add(`${display}.needs`, 'a task cannot need itself', line());
      } else if (!allNames.has(need)) {
        const suggestion = suggestionsLeft-- > 0 ? closest(need, validNames, task.name) : undefined;
        problems.add(
          `${display}.needs`,
          `unknown task "${need}"${suggestion === undefined ? '' : `; did you mean "${suggestion}"?`}`,
          line(),
        );
      }
    }
  }

  for (const cycle of findCycles(checked)) {
    const first = checked.get(cycle[0] as string) as Checked;
    problems.add(
      `${first.display}.needs`,
      `dependency cycle ${cycle.join(' -> ')}`,
      source.line([...first.ast, 'needs']),
    );
  }

  if (problems.count > 0) fail();
  return { name: planName, tasks: topologicalOrder(checked) };
}

function badNameText(name: unknown): string {
  return `${typeof name === 'string' ? JSON.stringify(name) : describe(name)} is not a valid task name (1-64 letters, digits, ".", "_" or "-", starting with a letter or digit)`;
}

function checkTask(entry: TaskEntry, source: Source, problems: Problems): PlanTask | undefined {
  const { display: d, ast, value, listForm } = entry;
  const at = (key: string | number, ...more: (string | number)[]) =>
    source.line([...ast, key, ...more]);
  if (!isObject(value)) {
    problems.add(
      d,
      value === null || value === undefined
        ? 'is empty; give it run: (a command) or uses: (an extension operation)'
        : `must be a mapping with run: or uses: (got ${describe(value)})`,
      source.line(ast),
    );
    return undefined;
  }
  const known: readonly string[] = listForm ? ['name', ...TASK_KEYS] : TASK_KEYS;
  const suggested = new Set<string>();
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    if (key === 'name' && !listForm) {
      problems.add(
        `${d}.name`,
        'not allowed here: in the mapping form the key is the name',
        at(key),
      );
    } else {
      const suggestion = suggestKey(key, known);
      if (suggestion !== undefined) suggested.add(suggestion);
      problems.add(joinPath(d, key), unknownKeyText(suggestion, known), at(key));
    }
  }

  // run: / uses:
  let extension = 'core';
  let operation = 'run';
  let input: unknown;
  const hasRun = value.run !== undefined && value.run !== null;
  const hasUses = value.uses !== undefined && value.uses !== null;
  if (hasRun && hasUses) {
    problems.add(d, 'has both run: and uses:; give only one', source.line(ast));
  } else if (!hasRun && !hasUses && !suggested.has('run') && !suggested.has('uses')) {
    // (A misspelt run: or uses: is reported above.)
    problems.add(d, 'needs run: (a command) or uses: (an extension operation)', source.line(ast));
  }
  if (hasRun) {
    const run = value.run;
    if (typeof run === 'string') {
      if (run.trim() === '') problems.add(`${d}.run`, 'is empty', at('run'));
      input = { command: run };
    } else if (Array.isArray(run)) {
      const args: string[] = [];
      run.forEach((item, i) => {
        const arg = source.scalarText([...ast, 'run', i], item);
        if (arg === undefined) {
          problems.add(
            `${d}.run`,
            `item ${i + 1} must be a string (got ${describe(item)})`,
            at('run', i),
          );
        } else {
          args.push(arg);
        }
      });
      if (run.length === 0) problems.add(`${d}.run`, 'is an empty list', at('run'));
      else if (args[0] === '')
        problems.add(`${d}.run`, 'the program (first item) is empty', at('run', 0));
      input = { args };
    } else {
      problems.add(
        `${d}.run`,
        `must be a command line (a string) or an argv list of strings (got ${describe(run)})`,
        at('run'),
      );
    }
  }
  if (hasUses) {
    const uses = value.uses;
    const match = typeof uses === 'string' ? /^([^/]*)\/([^/]*)$/.exec(uses) : null;
    if (!match) {
      problems.add(
        `${d}.uses`,
        `must be "extension/operation", e.g. "myext/build" (got ${describe(uses)})`,
        at('uses'),
      );
    } else {
      const [, ext = '', op = ''] = match;
      if (!EXTENSION_NAME_PATTERN.test(ext)) {
        problems.add(
          `${d}.uses`,
          `"${ext}" is not a valid extension name (1-64 lower-case letters, digits, ".", "_" or "-")`,
          at('uses'),
        );
      }
      if (!OPERATION_NAME_PATTERN.test(op)) {
        problems.add(
          `${d}.uses`,
          `"${op}" is not a valid operation name (1-64 letters, digits, ".", "_" or "-")`,
          at('uses'),
        );
      }
      extension = ext;
      operation = op;
    }
  }
  if (value.with !== undefined) {
    if (!hasUses) {
      problems.add(`${d}.with`, 'only goes with uses: (run: takes no with:)', at('with'));
    } else {
      const nonJson = findNonJson(value.with, '');
      if (nonJson !== undefined) problems.add(`${d}.with`, nonJson, at('with'));
      // A copy: YAML aliases can make two tasks share one object.
      input = structuredClone(value.with);
    }
  }

  const inputs = globList(entry, 'inputs', "the plan's directory", source, problems);
  const outputs = globList(entry, 'outputs', "the task's work directory", source, problems);

  const needs = nameList(entry, 'needs', source, problems, () => undefined);
  const requires = nameList(entry, 'requires', source, problems, (label) =>
    LABEL_PATTERN.test(label)
      ? undefined
      : `${JSON.stringify(label)} is not a valid label (1-64 letters, digits, ".", "_" or "-", starting with a letter or digit)`,
  );

  const env: Record<string, string> = {};
  if (value.env !== undefined && value.env !== null) {
    if (!isObject(value.env)) {
      problems.add(
        `${d}.env`,
        `must be a mapping of names to values (got ${describe(value.env)})`,
        at('env'),
      );
    } else {
      for (const [key, raw] of Object.entries(value.env)) {
        const path = joinPath(`${d}.env`, key);
        if (key === '' || key.includes('=') || key.includes('\0')) {
          problems.add(
            path,
            'is not a valid variable name (empty, or contains "=" or NUL)',
            at('env', key),
          );
          continue;
        }
        if (raw === null || raw === undefined) {
          problems.add(path, 'has no value; write "" for an empty string', at('env', key));
          continue;
        }
        const text = source.scalarText([...ast, 'env', key], raw);
        if (text === undefined) {
          problems.add(
            path,
            `must be a string, number or boolean (got ${describe(raw)})`,
            at('env', key),
          );
        } else if (text.includes('\0')) {
          problems.add(path, 'contains a NUL character', at('env', key));
        } else {
          env[key] = text;
        }
      }
    }
  }

  let timeoutMs: number | undefined;
  if (value.timeout !== undefined && value.timeout !== null) {
    const parsed = parseTimeout(value.timeout);
    if (typeof parsed === 'string') problems.add(`${d}.timeout`, parsed, at('timeout'));
    else timeoutMs = parsed;
  }

  let retries = 0;
  if (value.retries !== undefined && value.retries !== null) {
    const r = value.retries;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r > PLAN_LIMITS.maxRetries) {
      problems.add(
        `${d}.retries`,
        `must be a whole number from 0 to ${PLAN_LIMITS.maxRetries} (got ${describe(r)})`,
        at('retries'),
      );
    } else {
      retries = r;
    }
  }

  // Returned even with problems, so the checks across tasks (needs, cycles) still run.
  if (entry.name === undefined) return undefined;
  return {
    name: entry.name,
    extension,
    operation,
    input,
    inputs,
    outputs,
    needs,
    env,
    timeoutMs,
    retries,
    requires,
  };
}

/** A list of strings, or one string for a list of one; undefined/null is the empty list. */
function stringItems(
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

function globList(
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

function nameList(
  entry: TaskEntry,
  field: 'needs' | 'requires',
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

/**
 * One cycle per strongly connected component (Tarjan), each as task names from the smallest
 * name in it round to that name again along the shortest path, e.g. ["a", "b", "a"].
 */
function findCycles(tasks: ReadonlyMap<string, Checked>): string[][] {
  const edges = (name: string): string[] =>
    (tasks.get(name)?.task.needs ?? [])
      .filter((n) => n !== name && tasks.has(n))
      .sort(compareNames);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;

  // Iterative Tarjan (a 10,000-task chain would overflow a recursive one).
  for (const startName of [...tasks.keys()].sort(compareNames)) {
    if (index.has(startName)) continue;
    const work: { name: string; next: string[]; i: number }[] = [];
    const visit = (name: string) => {
      index.set(name, counter);
      low.set(name, counter);
      counter++;
      stack.push(name);
      onStack.add(name);
      work.push({ name, next: edges(name), i: 0 });
    };
    visit(startName);
    while (work.length > 0) {
      const frame = work[work.length - 1] as { name: string; next: string[]; i: number };
      if (frame.i < frame.next.length) {
        const to = frame.next[frame.i++] as string;
        if (!index.has(to)) visit(to);
        else if (onStack.has(to)) {
          low.set(frame.name, Math.min(low.get(frame.name) ?? 0, index.get(to) ?? 0));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) {
        low.set(parent.name, Math.min(low.get(parent.name) ?? 0, low.get(frame.name) ?? 0));
      }
      if (low.get(frame.name) === index.get(frame.name)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop() as string;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.name);
        if (component.length > 1) components.push(component);
      }
    }
  }

  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = [...component].sort(compareNames)[0] as string;
    // Shortest way from start back to start inside the component (breadth first).
    const previous = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    search: while (queue.length > 0) {
      const name = queue.shift() as string;
      for (const to of edges(name)) {
        if (!members.has(to)) continue;
        if (to === start) {
          last = name;
          break search;
        }
        if (!previous.has(to)) {
          previous.set(to, name);
          queue.push(to);
        }
      }
    }
    const path = [start];
    for (let at = last; at !== undefined && at !== start; at = previous.get(at)) path.push(at);
    const cycle = [start, ...path.slice(1).reverse(), start];
    cycles.push(cycle);
  }
  return cycles.sort((a, b) => compareNames(a[0] as string, b[0] as string));
}

/** Dependencies first; among tasks ready at the same time, by name (Kahn with a min-heap). */
function topologicalOrder(tasks: ReadonlyMap<string, Checked>): PlanTask[] {
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const { task } of tasks.values()) {
    waiting.set(task.name, task.needs.length);
    for (const need of task.needs) {
      const list = dependents.get(need);
      if (list === undefined) dependents.set(need, [task.name]);
      else list.push(task.name);
    }
  }
  const heap = new MinHeap();
  for (const [name, n] of waiting) if (n === 0) heap.push(name);
  const out: PlanTask[] = [];
  for (let name = heap.pop(); name !== undefined; name = heap.pop()) {
    out.push((tasks.get(name) as Checked).task);
    for (const dependent of dependents.get(name) ?? []) {
      const n = (waiting.get(dependent) ?? 0) - 1;
      waiting.set(dependent, n);
      if (n === 0) heap.push(dependent);
    }
  }
  if (out.length !== tasks.size) {
    // Cannot happen: cycles were reported above.
    throw new MusterError('INTERNAL', 'plan: topological sort left tasks behind');
  }
  return out;
}

class MinHeap {
  private readonly items: string[] = [];

  push(item: string): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((a[parent] as string) <= item) break;
      a[i] = a[parent] as string;
      i = parent;
    }
    a[i] = item;
  }

  pop(): string | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      let value = last;
      if (l < a.length && (a[l] as string) < value) {
        smallest = l;
        value = a[l] as string;
      }
      if (r < a.length && (a[r] as string) < value) smallest = r;
      if (smallest === i) break;
      a[i] = a[smallest] as string;
      i = smallest;
    }
    a[i] = last;
    return top;
  }
}

/** Every input glob of the plan (what the client resolves and uploads), deduplicated and sorted. */
export function planInputPatterns(plan: Plan): string[] {
  return [...new Set(plan.tasks.flatMap((t) => t.inputs))].sort(compareNames);
}
