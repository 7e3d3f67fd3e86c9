/**
 * `@file` arguments, expanded as gcc's driver does (libiberty `expandargv` / `buildargv`):
 * whitespace separates arguments; `'…'` and `"…"` quote; a backslash takes the next character
 * literally, inside quotes too; a file that is empty or only whitespace adds no argument; a
 * file that cannot be read (missing, a directory) leaves `@file` as a literal argument; expanded
 * arguments are scanned again, so response files nest. Paths are relative to the compiler's cwd.
 */
import { isAbsolute, join } from 'node:path';

/** How a response file is read: its bytes, or null when it cannot be read (gcc keeps `@file`). */
export type ReadResponseFile = (path: string) => Buffer | null;

/** libiberty stops after this many expansions ("too many response files"). */
export const MAX_EXPANSIONS = 2000;
/** Muster's own caps, so one command line cannot grow the service without bound. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
export const MAX_ARGUMENTS = 100_000;

export type ExpandResult =
  | { readonly ok: true; readonly args: string[]; readonly files: string[] }
  | { readonly ok: false; readonly reason: string };

/** gcc's ISSPACE: space, \t, \n, \v, \f, \r. */
function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

/** The arguments in one response file's text (libiberty `buildargv`, with the empty-file rule). */
export function splitResponseText(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < text.length && isSpace(text[i] ?? '')) i++;
  };
  skipSpace();
  if (i === text.length) return out;
  do {
    let arg = '';
    let squote = false;
    let dquote = false;
    let bsquote = false;
    while (i < text.length) {
      const c = text[i] ?? '';
      if (isSpace(c) && !squote && !dquote && !bsquote) break;
      if (bsquote) {
        bsquote = false;
        arg += c;
      } else if (c === '\\') {
        bsquote = true;
      } else if (squote) {
        if (c === "'") squote = false;
        else arg += c;
      } else if (dquote) {
        if (c === '"') dquote = false;
        else arg += c;
      } else if (c === "'") {
        squote = true;
      } else if (c === '"') {
        dquote = true;
      } else {
        arg += c;
      }
      i++;
    }
    out.push(arg);
    skipSpace();
  } while (i < text.length);
  return out;
}

/**
 * Expands every `@file` in `args` (not `argv[0]`: pass the arguments only). `files` lists the
 * response files read, in order (their content is in the expanded list, so they need no key of
 * their own). Fails, with a reason, past gcc's expansion limit or Muster's size caps: the caller
 * then runs the command unchanged, and gcc says what it says.
 */
export function expandResponseFiles(
  args: readonly string[],
  cwd: string,
  read: ReadResponseFile,
): ExpandResult {
  const out = [...args];
  const files: string[] = [];
  let expansions = 0;
  let bytes = 0;
  let i = 0;
  while (i < out.length) {
    const arg = out[i] ?? '';
    if (!arg.startsWith('@') || arg.length === 1) {
      i++;
      continue;
    }
    if (++expansions > MAX_EXPANSIONS) return { ok: false, reason: 'too many response files' };
    const name = arg.slice(1);
    const content = read(isAbsolute(name) ? name : join(cwd, name));
    if (content === null) {
      i++;
      continue;
    }
    bytes += content.length;
    if (bytes > MAX_RESPONSE_BYTES) return { ok: false, reason: 'response files too large' };
    files.push(name);
    const inserted = splitResponseText(content.toString('utf8'));
    if (out.length - 1 + inserted.length > MAX_ARGUMENTS) {
      return { ok: false, reason: 'too many arguments' };
    }
    out.splice(i, 1, ...inserted);
    // Not advancing: the first inserted argument may itself be an @file (gcc rescans too).
  }
  return { ok: true, args: out, files };
}
