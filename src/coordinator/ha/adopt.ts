/**
 * Adoption of attempts a coordinator of this cluster started but this store never recorded: the
 * last dispatches of a primary that died before its backup received them. Agent task ids are
 * `b<build>:<task>:<attempt>`, so the agent's task list says which build and task each belongs
 * to; an unknown attempt of a known, unfinished task with no running attempt is recorded as
 * running on that agent, and the scheduler then re-attaches it like any other instead of
 * starting the task a second time.
 */
import type { Logger } from 'pino';
import type { TaskInfo } from '../../protocol/messages.js';
import type { Store } from '../store/store.js';

const TASK_ID = /^b(\d+):([A-Za-z0-9][A-Za-z0-9._-]{0,63}):(\d+)$/;
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
      const match = TASK_ID.exec(info.taskId);
      if (!match || store.getAttemptByAgentTaskId(info.taskId)) continue;
      const buildId = Number(match[1]);
      const taskName = match[2] ?? '';
      const number = Number(match[3]);
      const build = store.getBuild(buildId);
      const task = store.getTask(buildId, taskName);
      if (!build || !task || build.status === 'succeeded' || build.status === 'failed') continue;
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
