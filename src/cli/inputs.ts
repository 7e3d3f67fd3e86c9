/**
 * Resolves a plan's input globs to the files under the plan's directory that the build uploads.
 * Matching is picomatch with `dot: true`, as the scheduler matches the uploaded files against
 * each task's inputs. A pattern that matches no file is a mistake worth stopping for: every such
 * pattern is reported in one PLAN_INVALID.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import picomatch from 'picomatch';
import { MusterError } from '../protocol/errors.js';
import { walkFiles } from './files.js';

/** Never uploaded by a glob (a pattern may still name a file inside them literally). */
export const SKIPPED_DIRS: ReadonlySet<string> = new Set(['node_modules', '.git', '.muster']);

/** The matched files, relative to root with "/" separators, sorted. */
export async function resolveInputs(root: string, patterns: readonly string[]): Promise<string[]> {
  const found = new Set<string>();
  const problems: string[] = [];
  const walked = new Map<string, Promise<string[]>>();
  const filesUnder = (base: string): Promise<string[]> => {
    let files = walked.get(base);
    if (!files) {
      files = walkFiles(root, { base, skip: SKIPPED_DIRS });
      walked.set(base, files);
    }
    return files;
  };
  for (const raw of patterns) {
    let pattern = raw;
    while (pattern.startsWith('./')) pattern = pattern.slice(2);
    const scan = picomatch.scan(pattern);
    if (!scan.isGlob) {
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
    const match = picomatch(pattern, { dot: true });
    const matched = (await filesUnder(scan.base)).filter((path) => match(path));
    if (matched.length === 0) problems.push(`input "${raw}" matches no file`);
    for (const path of matched) found.add(path);
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
