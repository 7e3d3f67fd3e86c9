/**
 * The check that a build's uploaded files satisfy its plan: every input pattern of every task
 * matches at least one uploaded file, as the scheduler matches them (picomatch, `dot: true`).
 * `muster run` makes the same check on the files it finds; this one also covers the web UI and
 * other API clients, so a mistyped input fails at submission instead of deep inside a command.
 */
import picomatch from 'picomatch';
import { MusterError } from '../../protocol/errors.js';
import type { BuildFile, Plan } from '../../api/plan/types.js';

/** Throws PLAN_INVALID listing every input pattern that matches none of `files`. */
export function checkInputsMatch(plan: Plan, files: readonly BuildFile[]): void {
  const problems: string[] = [];
  for (const task of plan.tasks) {
    for (const pattern of task.inputs) {
      const match = picomatch(pattern, { dot: true });
      if (!files.some((f) => match(f.path)))
        problems.push(`task "${task.name}": input "${pattern}" matches none of the uploaded files`);
    }
  }
  if (problems.length === 0) return;
  throw new MusterError(
    'PLAN_INVALID',
    `${problems.length === 1 ? 'an input matches' : `${problems.length} inputs match`} no uploaded file (${files.length} uploaded); add the files or fix the patterns`,
    { problems },
  );
}
