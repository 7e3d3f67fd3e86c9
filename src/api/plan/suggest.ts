/**
 * Suggestions for misspelt names and keys: edit distance, the closest candidate, and the keys
 * people bring from other tools.
 */

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

/** The key `key` was probably meant to be, if any. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const normal = key.toLowerCase().replace(/[-_]/g, '');
  const hint = Object.hasOwn(KEY_HINTS, normal) ? KEY_HINTS[normal] : undefined;
  return hint !== undefined && known.includes(hint) ? hint : closest(key, known);
}

/** The problem text for an unknown key, with the suggestion when there is one. */
export function unknownKeyText(suggestion: string | undefined, known: readonly string[]): string {
  return suggestion === undefined
    ? `unknown key (known keys: ${known.join(', ')})`
    : `unknown key; did you mean "${suggestion}"?`;
}
