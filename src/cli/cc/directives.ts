/**
 * The text of a local `gcc -E -fdirectives-only` pass, made ready for a hermetic remote compile
 * (design §2): its prelude is stripped — line 1 (`# 0 "src"`), the working-directory marker
 * (`# 1 "/cwd//"`, written with `-g`), and every block that starts at a line marker naming
 * `<built-in>` or `<command-line>` up to the next marker naming a real file — while the
 * pre-include (`stdc-predef.h`) and `-include`d files, which are real-file blocks, stay. The line
 * markers that remain name every file the preprocessor read.
 *
 * Works on bytes: a source need not be UTF-8, and the text must reach the agent unchanged.
 */

const NEWLINE = 0x0a;

export interface LineMarker {
  readonly line: number;
  /** The file name, unescaped (`\\`, `\"`, `\n`) and read as UTF-8. */
  readonly file: string;
  /** 1 entering an include, 2 returning, 3 system header, 4 extern "C". */
  readonly flags: readonly number[];
}

const markerPattern = /^# (\d+) "((?:[^"\\]|\\.)*)"((?: \d+)*)$/s;

/** The line marker a line is (without its newline), or null. */
export function parseLineMarker(line: Buffer): LineMarker | null {
  // latin1 keeps every byte as one code unit, so the name's bytes survive the match.
  const match = markerPattern.exec(line.toString('latin1'));
  if (match === null) return null;
  const raw = (match[2] ?? '').replace(/\\(.)/gs, (_, c: string) => (c === 'n' ? '\n' : c));
  const flags = (match[3] ?? '')
    .trim()
    .split(' ')
    .filter((f) => f !== '')
    .map(Number);
  return { line: Number(match[1]), file: Buffer.from(raw, 'latin1').toString('utf8'), flags };
}

function isPseudoFile(file: string): boolean {
  return file === '<built-in>' || file === '<command-line>';
}

export interface StrippedText {
  /** The text the agent compiles as the source. */
  readonly text: Buffer;
  /** The main file, as the first marker names it (the source as written). */
  readonly mainFile: string;
  /** From the `# 1 "/cwd//"` marker, or null when there was none (no `-g`). */
  readonly workingDirectory: string | null;
}

/** Lines of `buf` from `start`: [start of line, end of line (the newline's index or length)]. */
function lineAt(buf: Buffer, start: number): [number, number] {
  const nl = buf.indexOf(NEWLINE, start);
  return [start, nl < 0 ? buf.length : nl];
}

/**
 * Strips the prelude; null when the text does not start as gcc's directives-only output does
 * (then the job runs locally). Only the head is parsed: everything from the marker that enters
 * the main file (`# 1 "src"`) on is kept as it is.
 */
export function stripPrelude(buf: Buffer): StrippedText | null {
  const [s0, e0] = lineAt(buf, 0);
  const first = parseLineMarker(buf.subarray(s0, e0));
  if (first === null || first.line !== 0 || first.flags.length !== 0) return null;
  const mainFile = first.file;
  let pos = Math.min(e0 + 1, buf.length);
  let workingDirectory: string | null = null;
  {
    const [s, e] = lineAt(buf, pos);
    const marker = parseLineMarker(buf.subarray(s, e));
    if (marker !== null && marker.line === 1 && marker.file.endsWith('//')) {
      workingDirectory = marker.file.slice(0, -2);
      pos = Math.min(e + 1, buf.length);
    }
  }
  const kept: Buffer[] = [];
  let keeping = true;
  let keptFrom = pos;
  while (pos < buf.length) {
    const [s, e] = lineAt(buf, pos);
    const next = Math.min(e + 1, buf.length);
    if (buf[s] === 0x23 /* # */ && buf[s + 1] === 0x20) {
      const marker = parseLineMarker(buf.subarray(s, e));
      if (marker !== null) {
        if (isPseudoFile(marker.file)) {
          if (keeping) kept.push(buf.subarray(keptFrom, s));
          keeping = false;
        } else {
          if (!keeping) keptFrom = s;
          keeping = true;
          if (marker.file === mainFile && marker.line === 1 && marker.flags.length === 0) {
            // Entering the main file: the prelude is over, the rest is kept whole.
            kept.push(buf.subarray(keptFrom));
            return { text: Buffer.concat(kept), mainFile, workingDirectory };
          }
        }
      }
    }
    pos = next;
  }
  return null;
}

export interface IncludedFile {
  readonly path: string;
  /** Marked as a system header (flag 3). */
  readonly system: boolean;
}

/**
 * Every real file the line markers of a directives-only text name, once each, in the order first
 * named, without `mainFile` (the source, keyed apart).
 */
export function includedFiles(buf: Buffer, mainFile: string): IncludedFile[] {
  const seen = new Map<string, IncludedFile>();
  let pos = 0;
  while (pos < buf.length) {
    const [s, e] = lineAt(buf, pos);
    if (buf[s] === 0x23 && buf[s + 1] === 0x20) {
      const marker = parseLineMarker(buf.subarray(s, e));
      if (
        marker !== null &&
        !isPseudoFile(marker.file) &&
        marker.file !== mainFile &&
        !marker.file.endsWith('//') &&
        !seen.has(marker.file)
      ) {
        seen.set(marker.file, { path: marker.file, system: marker.flags.includes(3) });
      }
    }
    // Jump to the next line that starts with "# " (a marker candidate).
    const hit = buf.indexOf('\n# ', e);
    pos = hit < 0 ? buf.length : hit + 1;
  }
  return [...seen.values()];
}

export const TIME_MACROS = ['__DATE__', '__TIME__', '__TIMESTAMP__'] as const;
export type TimeMacro = (typeof TIME_MACROS)[number];

/**
 * The time macros a text mentions (ccache's rule, found with a byte search): a compile that uses
 * one is not cached unless `SOURCE_DATE_EPOCH` fixes them (`unfixedTimeMacros`).
 */
export function timeMacrosIn(buf: Buffer): TimeMacro[] {
  return TIME_MACROS.filter((m) => buf.indexOf(m) >= 0);
}

/**
 * Of the time macros a compile uses, those that make its result differ from run to run (and
 * machine to machine), so it is neither cached nor sent to an agent: `__DATE__` and `__TIME__`
 * unless `SOURCE_DATE_EPOCH` fixes them; `__TIMESTAMP__` always — it is the source file's mtime,
 * which `SOURCE_DATE_EPOCH` does not change (gcc 12), and an agent's copy has its own.
 */
export function unfixedTimeMacros(
  found: readonly TimeMacro[],
  env: Readonly<Record<string, string | undefined>>,
): TimeMacro[] {
  const fixed = env['SOURCE_DATE_EPOCH'] !== undefined;
  return found.filter((m) => m === '__TIMESTAMP__' || !fixed);
}
