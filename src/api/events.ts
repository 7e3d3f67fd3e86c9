/** The live events of the API's event stream: each event's name and the view it carries. */
import type { AgentView } from './views/agents.js';
import type { BuildSummary, LogChunkView, TaskView } from './views/builds.js';

/** Server-sent events on GET /api/v1/events[?build=ID]: `event:` is the key, `data:` the JSON. */
export interface EventMap {
  build: BuildSummary;
  task: { buildId: number; task: TaskView };
  log: { buildId: number } & LogChunkView;
  agent: AgentView;
}

export type EventName = keyof EventMap;
