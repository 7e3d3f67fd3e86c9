/**
 * Make-syntax dependency files as gcc writes them (libcpp `mkdeps.cc`, gcc 12): reading one
 * (for the manifest of the headers a compile read) and writing one (byte for byte as gcc would).
 *
 * gcc's quoting of a name: a space or tab gets a backslash, and every backslash just before it is
 * doubled; `$` becomes `$$`; `#` gets a backslash. Lines longer than 72 columns continue with
 * ` \` + newline + space. `-MT` targets are written as given, `-MQ` ones quoted. With `-MP` each
 * header after the source gets an empty rule `name:`.
 */

export interface DepRule {
  readonly targets: readonly string[];
  readonly prerequisites: readonly string[];
}

export type DepfileParse =
  | { readonly ok: true; readonly rules: readonly DepRule[] }
  | { readonly ok: false; readonly line: number; readonly reason: string };

/** The rules of a depfile's text. A line with names but no `:` makes it unreadable. */
export function parseDepfile(text: string): DepfileParse {
  const rules: DepRule[] = [];
  // A backslash-newline continues the line (as whitespace).
  const logical = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (let n = 0; n < logical.length; n++) {
    const line = logical[n] ?? '';
    const { words, colonAt } = tokenize(line);
    if (words.length === 0) continue;
    if (colonAt < 0) return { ok: false, line: n + 1, reason: 'no ":" in a rule' };
    rules.push({ targets: words.slice(0, colonAt), prerequisites: words.slice(colonAt) });
  }
  return { ok: true, rules };
}

/** Every prerequisite of every rule, once each, in order (the source first, as gcc writes it). */
export function prerequisitesOf(rules: readonly DepRule[]): string[] {
  const seen = new Set<string>();
  for (const rule of rules) for (const p of rule.prerequisites) seen.add(p);
  return [...seen];
}

/**
 * One line's names, unquoted, and where the targets end (the index of the first prerequisite, or
 * -1 when there is no separating `:`). The separator is a `:` followed by whitespace or the end
 * of the line; a `:` inside a name (`C:\x`, `a:b`) is part of it.
 */
function tokenize(line: string): { words: string[]; colonAt: number } {
  const words: string[] = [];
  let colonAt = -1;
  let word = '';
  let inWord = false;
  const end = (): void => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i] ?? '';
    if (c === '\\') {
      let k = 0;
      while (line[i + k] === '\\') k++;
      const next = line[i + k];
      if (next === ' ' || next === '\t') {
        // 2n+1 backslashes and a blank: n backslashes and a blank in the name; 2n: a separator.
        word += '\\'.repeat(Math.floor(k / 2));
        inWord = true;
        if (k % 2 === 1) {
          word += next;
          i += k + 1;
        } else {
          i += k;
        }
        continue;
      }
      if (next === '#') {
        word += '\\'.repeat(k - 1) + '#';
        inWord = true;
        i += k + 1;
        continue;
      }
      word += '\\'.repeat(k);
      inWord = true;
      i += k;
      continue;
    }
    if (c === '$' && line[i + 1] === '$') {
      word += '$';
      inWord = true;
      i += 2;
      continue;
    }
    if (c === '#') break; // a comment to the end of the line
    if (c === ' ' || c === '\t') {
      end();
      i++;
      continue;
    }
    if (c === ':' && colonAt < 0) {
      const next = line[i + 1];
      if (next === undefined || next === ' ' || next === '\t') {
        end();
        colonAt = words.length;
        i++;
        continue;
      }
    }
    word += c;
    inWord = true;
    i++;
  }
  end();
  return { words, colonAt };
}

/** A name quoted as gcc quotes it in a depfile. */
export function quoteDepName(name: string): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i] ?? '';
    if (c === ' ' || c === '\t') {
      for (let q = i - 1; q >= 0 && name[q] === '\\'; q--) out += '\\';
      out += '\\';
    } else if (c === '$') {
      out += '$';
    } else if (c === '#') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

export interface DepfileContent {
  /** `quoted: false` for `-MT` targets (written as given). */
  readonly targets: readonly { readonly name: string; readonly quoted: boolean }[];
  /** The source first, then every header. */
  readonly prerequisites: readonly string[];
  /** `-MP`: an empty rule for each prerequisite after the first. */
  readonly phony: boolean;
}

const COLUMNS = 72;

/** The depfile gcc writes for `content`, byte for byte. */
export function formatDepfile(content: DepfileContent): string {
  let out = '';
  let column = 0;
  const write = (name: string): void => {
    if (column > 0) {
      if (column + name.length > COLUMNS) {
        out += ' \\\n';
        column = 0;
      }
      column++;
      out += ' ';
    }
    column += name.length;
    out += name;
  };
  for (const t of content.targets) write(t.quoted ? quoteDepName(t.name) : t.name);
  out += ':';
  column++;
  for (const p of content.prerequisites) write(quoteDepName(p));
  out += '\n';
  if (content.phony) {
    for (const p of content.prerequisites.slice(1)) out += `${quoteDepName(p)}:\n`;
  }
  return out;
}
