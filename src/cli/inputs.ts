/**
 * Resolves a plan's input globs to the files under the plan's directory that the build uploads.
 * Matching is picomatch with `dot: true`, as the scheduler matches the uploaded files against
 * each task's inputs. A pattern that matches no file is a mistake worth stopping for: every such
 * pattern is reported in one PLAN_INVALID.
 *
 * Inputs never come from outside the plan's directory (a hostile repository could otherwise link
 * `key -> ~/.ssh/id_ed25519` and have a task print it): a symlink on an input's path, or one a
 * pattern walks into, that leads outside stops the run with INPUT_ESCAPES naming the link and its
 * target. Links that stay inside are followed; describeFiles checks again when it reads.
 */
import { realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import picomatch from 'picomatch';
import { expandBraces } from '../host/glob.js';
import { MusterError } from '../protocol/errors.js';
import { findEscapingLink, inputEscapes, isInside } from './confined.js';
import { walkFiles } from './files.js';

/** Never uploaded by a glob (a pattern may still name a file inside them literally). */
export const SKIPPED_DIRS: ReadonlySet<string> = new Set(['node_modules', '.git', '.muster']);

interface Walked {
  files: string[];
  links: string[];
}

/** The matched files, relative to root with "/" separators, sorted. */
export async function resolveInputs(root: string, patterns: readonly string[]): Promise<string[]> {
  const realRoot = await realpath(root);
  const found = new Set<string>();
  const problems: string[] = [];
  const escapes = new Map<string, MusterError>(); // by link: one report per link
  const walked = new Map<string, Promise<Walked>>();
  const under = (base: string): Promise<Walked> => {
    let result = walked.get(base);
    if (!result) {
      const links: string[] = [];
      result = walkFiles(root, { base, skip: SKIPPED_DIRS, links }).then((files) => ({
        files,
        links,
      }));
      walked.set(base, result);
    }
    return result;
  };
  /** True (and reported) when a link on `rel` leads outside. */
  const escapesVia = async (raw: string, rel: string): Promise<boolean> => {
    const escape = await findEscapingLink(root, realRoot, rel);
    if (!escape) return false;
    if (!escapes.has(escape.link)) escapes.set(escape.link, inputEscapes(raw, escape, root));
    return true;
  };

  for (const raw of patterns) {
    let pattern = raw;
    while (pattern.startsWith('./')) pattern = pattern.slice(2);
    const scan = picomatch.scan(pattern);
    if (!scan.isGlob) {
      if (await escapesVia(raw, pattern)) continue;
      const info = await stat(join(root, ...pattern.split('/'))).catch(() => undefined);
      if (info?.isFile()) {
        found.add(pattern);
      } else if (info?.isDirectory()) {
        problems.push(
          `input "${raw}" is a directory: use "${pattern.replace(/\/+$/, '')}/**" for the files in it`,
        );
      } else {
        problems.push(`input "${raw}" matches no file`);
      }
      continue;
    }
    if (scan.base !== '' && (await escapesVia(raw, scan.base))) continue;
    const match = picomatch(pattern, { dot: true });
    const { files, links } = await under(scan.base);
    const matched = files.filter((path) => match(path));
    let escaped = false;
    for (const link of links) {
      // A linked node_modules (or .git, .muster) is not walked, like the directory it stands for.
      const skipped = SKIPPED_DIRS.has(link.slice(link.lastIndexOf('/') + 1));
      if (!match(link) && (skipped || !mayMatchUnder(pattern, link))) continue;
      if (await escapesVia(raw, link)) {
        escaped = true;
        continue;
      }
      // Inside: a link to a file is that file; a linked directory is not walked (no loops).
      const real = await realpath(join(root, ...link.split('/'))).catch(() => undefined);
      if (real === undefined || !isInside(realRoot, real) || !match(link)) continue;
      if ((await stat(real).catch(() => undefined))?.isFile()) matched.push(link);
    }
    if (matched.length === 0 && !escaped) problems.push(`input "${raw}" matches no file`);
    for (const path of matched) found.add(path);
  }
  if (escapes.size > 0) {
    const all = [...escapes.values()];
    const first = all[0] as MusterError;
    throw all.length === 1
      ? first
      : new MusterError(
          'INPUT_ESCAPES',
          `${all.length} inputs lead outside ${root} through symlinks; nothing was uploaded:`,
          {
            ...first.details,
            problems: all.map((e) => e.message.replace(/; nothing was uploaded$/, '')),
          },
        );
  }
  if (problems.length > 0) {
    throw new MusterError(
      'PLAN_INVALID',
      `the plan's inputs do not match files under ${root} (${[...SKIPPED_DIRS].join(', ')} are not searched):`,
      { problems },
    );
  }
  return [...found].sort();
}

/**
 * Whether `pattern` could match a path below directory `dir` (segment by segment; a `**` could
 * match anything below). Errs towards yes: it decides which linked directories must be checked.
 */
export function mayMatchUnder(pattern: string, dir: string): boolean {
  const dirSegments = dir.split('/');
  return expandBraces(pattern).some((expanded) => {
    const segments = expanded.split('/');
    for (const [i, name] of dirSegments.entries()) {
      const segment = segments[i];
      if (segment === undefined) return false;
      if (segment.includes('**')) return true;
      if (!picomatch(segment, { dot: true })(name)) return false;
    }
    return segments.length > dirSegments.length;
  });
}
