/**
 * Where a ready task goes and what it takes along: the agent it runs on (labels, free slots) and
 * its input files (the build's files its globs match, and the outputs of the tasks it needs).
 */
import picomatch from 'picomatch';
import type { TaskInputFile } from '../../protocol/task-types.js';
import type { ActiveBuild, TaskState } from './active-build.js';
import type { SchedulerAgent } from './ports.js';

/**
 * The ready agent with the most free slots among those with every required label (and, for a
 * compile job, the toolchain it needs).
 */
export function pickAgent(
  agents: readonly SchedulerAgent[],
  requires: readonly string[],
  toolchain?: string,
): SchedulerAgent | undefined {
  let best: SchedulerAgent | undefined;
  for (const agent of agents) {
    if (agent.freeSlots <= 0) continue;
    if (!requires.every((label) => agent.row.labels.includes(label))) continue;
    if (toolchain !== undefined && !providesToolchain(agent, toolchain)) continue;
    if (!best || agent.freeSlots > best.freeSlots) best = agent;
  }
  return best;
}

export function providesToolchain(agent: SchedulerAgent, toolchain: string): boolean {
  return agent.provides?.(toolchain) ?? false;
}

/** The files a task reads, each once by path (a compile job's: those it lists). */
export function inputsOf(
  build: ActiveBuild,
  state: TaskState,
): (TaskInputFile & { size: number })[] {
  if (state.job) return state.job.spec.inputFiles;
  const files = new Map<string, TaskInputFile & { size: number }>();
  if (state.plan.inputs.length > 0) {
    const match = picomatch(state.plan.inputs, { dot: true });
    for (const file of build.row.files) {
      if (match(file.path)) files.set(file.path, file);
    }
  }
  // Outputs of the tasks it needs, at the same relative paths (later needs win a clash).
  for (const need of state.plan.needs) {
    for (const output of build.tasks.get(need)?.row.outputs ?? []) files.set(output.path, output);
  }
  return [...files.values()];
}
