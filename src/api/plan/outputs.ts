/**
 * Which output paths a task may have: the rule the coordinator applies when it records an
 * agent's result and `muster run` applies again before it writes anything. An agent's report of
 * paths is not trusted (docs/security.md), so a path is accepted only when it is a safe relative
 * path, has no `.git` segment (any case), and is matched by one of the task's declared `outputs`.
 *
 * Matching is the host's own GlobSet, the matcher that collected the outputs on the agent, so an
 * honest agent's paths always pass.
 */
import { GlobSet } from '../../host/glob.js';
import { MusterError, type ErrorCode } from '../../protocol/errors.js';
import { checkRelativePath } from '../../protocol/paths.js';

/** The codes an output path can be refused with, most serious first. */
const SEVERITY: readonly ErrorCode[] = ['INVALID_PATH', 'OUTPUT_IN_GIT', 'OUTPUT_UNDECLARED'];

/** True when a segment of the relative path is `.git` in any case (`.GIT/hooks` on macOS). */
export function isInGit(path: string): boolean {
  return path.split('/').some((segment) => segment.toLowerCase() === '.git');
}

export class DeclaredOutputs {
  private readonly globs: GlobSet;

  constructor(
    readonly task: string,
    readonly patterns: readonly string[],
  ) {
    this.globs = new GlobSet(patterns);
  }

  /** Why `path` may not be an output of this task, or undefined when it may. */
  refusal(path: unknown): MusterError | undefined {
    const what = `task ${this.task}: output path`;
    try {
      checkRelativePath(path as string, what);
    } catch (err) {
      return err as MusterError;
    }
    const p = path as string;
    if (isInGit(p)) {
      return new MusterError('OUTPUT_IN_GIT', `${what} "${p}" is inside .git/`, {
        task: this.task,
        path: p,
      });
    }
    if (!this.globs.match(p)) {
      const declared =
        this.patterns.length === 0
          ? 'it declares no outputs'
          : `outputs: ${this.patterns.join(', ')}`;
      return new MusterError(
        'OUTPUT_UNDECLARED',
        `${what} "${p}" is not one of the task's declared outputs (${declared})`,
        { task: this.task, path: p },
      );
    }
    return undefined;
  }
}

/**
 * One error for every refused path of `outputs` (undefined when all pass): the code and first line
 * are the most serious refusal's, `details.problems` lists them all as "MESSAGE [CODE]".
 */
export function refuseOutputs(
  checks: readonly { declared: DeclaredOutputs; paths: readonly unknown[] }[],
  consequence: string,
): MusterError | undefined {
  const refused: MusterError[] = [];
  for (const { declared, paths } of checks) {
    for (const path of paths) {
      const err = declared.refusal(path);
      if (err) refused.push(err);
    }
  }
  if (refused.length === 0) return undefined;
  const first = [...refused].sort(
    (a, b) => SEVERITY.indexOf(a.code) - SEVERITY.indexOf(b.code),
  )[0] as MusterError;
  const more = refused.length === 1 ? '' : ` (and ${refused.length - 1} more refused)`;
  return new MusterError(
    first.code,
    `${first.message}; ${consequence}${more}`,
    refused.length === 1
      ? first.details
      : { ...first.details, problems: refused.map((err) => `${err.message} [${err.code}]`) },
  );
}
