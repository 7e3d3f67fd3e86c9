/**
 * Writing a finished build's outputs into the plan's directory. The paths come from the
 * coordinator, which took them from agents: neither is trusted to choose where `muster run`
 * writes. Every path must be one the local plan declared for that task, outside `.git/`
 * (api/plan/outputs.ts, the coordinator's own rule); one refused path and nothing is written.
 * The writing itself never follows a symlink already in the directory (confined.ts).
 */
import type { TaskView } from '../api/views/builds.js';
import { DeclaredOutputs, refuseOutputs } from '../api/plan/outputs.js';
import type { Plan } from '../api/plan/types.js';
import type { ApiClient } from './api-client.js';
import { downloadFiles } from './files.js';

export async function writeOutputs(
  client: Pick<ApiClient, 'getBlob'>,
  dir: string,
  plan: Plan,
  tasks: readonly Pick<TaskView, 'name' | 'outputs'>[],
): Promise<{ files: number; bytes: number }> {
  const declared = new Map(plan.tasks.map((t) => [t.name, t.outputs]));
  const refused = refuseOutputs(
    tasks
      .filter((t) => t.outputs.length > 0)
      .map((t) => ({
        // A task the local plan does not have declares nothing.
        declared: new DeclaredOutputs(t.name, declared.get(t.name) ?? []),
        paths: t.outputs.map((o) => o.path),
      })),
    'no output was written',
  );
  if (refused) throw refused;
  return downloadFiles(
    client,
    dir,
    tasks.flatMap((t) => t.outputs),
  );
}
