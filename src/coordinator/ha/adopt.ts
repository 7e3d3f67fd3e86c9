/**
 * Adoption of attempts a coordinator of this cluster started but this store never recorded: the
 * last dispatches of a primary that died before its backup received them. An agent task id says
 * which build (by id and uid) and task it belongs to (scheduler/agent-task-id.ts); an unknown
 * attempt of a known, unfinished task with no running attempt is recorded as running on that
 * agent, and the scheduler then re-attaches it like any other instead of starting the task a
 * second time. (The scheduler adopts the same way whenever an agent connects; this runs first,
 * before a backup's scheduler starts.)
 */
import type { Logger } from 'pino';
import type { TaskInfo } from '../../protocol/messages.js';
import { isOfBuild, parseAgentTaskId } from '../scheduler/agent-task-id.js';
import type { Store } from '../store/store.js';

const UNFINISHED = new Set(['pending', 'queued', 'running']);

export interface AdoptionSource {
  name: string;
  listTasks(): Promise<TaskInfo[]>;
}

export async function adoptOrphans(
  store: Store,
  agents: AdoptionSource[],
  log: Logger,
): Promise<number> {
  let adopted = 0;
  for (const agent of agents) {
    let tasks: TaskInfo[];
    try {
      tasks = await agent.listTasks();
    } catch (err) {
      log.warn({ agent: agent.name, err }, 'could not list the tasks of an agent to adopt');
      continue;
    }
    for (const info of tasks) {
      const id = parseAgentTaskId(info.taskId);
      if (!id || store.getAttemptByAgentTaskId(info.taskId)) continue;
      const { buildId, task: taskName, attempt: number } = id;
      const build = store.getBuild(buildId);
      const task = store.getTask(buildId, taskName);
      if (!build || !task || !isOfBuild(id, build)) continue;
      if (build.status === 'succeeded' || build.status === 'failed') continue;
      if (build.status === 'cancelled' || !UNFINISHED.has(task.status)) continue;
      if (
        store
          .listAttempts(buildId, taskName)
          .some((a) => a.status === 'running' || a.number === number)
      )
        continue;
      const at = new Date().toISOString();
      store.transaction(() => {
        store.createAttempt({
          buildId,
          taskName,
          number,
          agent: agent.name,
          agentTaskId: info.taskId,
          status: 'running',
          startedAt: at,
        });
        store.updateTask(buildId, taskName, {
          status: 'running',
          attempts: Math.max(task.attempts, number),
          agent: agent.name,
          startedAt: at,
          finishedAt: null,
          exitCode: null,
          error: null,
        });
      });
      adopted++;
      log.info(
        { build: buildId, task: taskName, attempt: number, agent: agent.name },
        'adopted an attempt this coordinator had not recorded',
      );
    }
  }
  return adopted;
}
