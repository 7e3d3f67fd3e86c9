/**
 * A build's task graph in stages: a task stands one stage right of the last task it needs, so
 * what can run together stands together and the build reads left to right. Each task shows its
 * status, agent and duration; choosing one shows its log.
 */
import type { TaskView } from './api.js';

/** The tasks by stage (0: needs nothing); `tasks` come in the plan's topological order. */
export function stagesOf(tasks: readonly TaskView[]): TaskView[][] {
  const stage = new Map<string, number>();
  const stages: TaskView[][] = [];
  for (const task of tasks) {
    const s = Math.max(-1, ...task.needs.map((n) => stage.get(n) ?? -1)) + 1;
    stage.set(task.name, s);
    (stages[s] ??= []).push(task);
  }
  return stages;
}

export function TaskGraph({
  tasks,
  selected,
  onSelect,
  duration,
}: {
  tasks: readonly TaskView[];
  selected: string | undefined;
  onSelect: (task: string | undefined) => void;
  duration: (ms: number | null) => string;
}) {
  const stages = stagesOf(tasks);
  return (
    <ol class="graph" aria-label="Task graph, in stages">
      {stages.map((stage, i) => (
        <li key={i}>
          <span class="muted small">Stage {i + 1}</span>
          {stage.map((t) => (
            <button
              key={t.name}
              type="button"
              class={`node ${t.status}`}
              aria-pressed={selected === t.name}
              title={t.needs.length > 0 ? `needs ${t.needs.join(', ')}` : 'needs nothing'}
              onClick={() => onSelect(selected === t.name ? undefined : t.name)}
            >
              <strong>{t.name}</strong>
              <span class="small">
                {t.status}
                {t.agent ? ` on ${t.agent}` : ''}
                {t.durationMs !== null ? `, ${duration(t.durationMs)}` : ''}
              </span>
            </button>
          ))}
        </li>
      ))}
    </ol>
  );
}
