/**
 * The coordinator's events (events.ts) as the API's event stream shows them (EventMap): the one
 * place a scheduler or pool event becomes a view. Each event is mapped once, however many
 * streams are open.
 */
import type { EventMap } from '../../api/events.js';
import type { CoordinatorEventMap, EventName } from '../events.js';
import { agentView, buildSummary, taskView } from './views.js';

const mapped = new WeakMap<object, unknown>();

export function eventView<K extends EventName>(
  event: K,
  data: CoordinatorEventMap[K],
): EventMap[K] {
  const known = mapped.get(data);
  if (known !== undefined) return known as EventMap[K];
  const view = toView(event, data) as EventMap[K];
  mapped.set(data, view);
  return view;
}

function toView(event: EventName, data: CoordinatorEventMap[EventName]): EventMap[EventName] {
  switch (event) {
    case 'build': {
      const { build, tasks } = data as CoordinatorEventMap['build'];
      return buildSummary(build, tasks);
    }
    case 'task': {
      const { buildId, row, plan } = data as CoordinatorEventMap['task'];
      return { buildId, task: taskView(row, plan) };
    }
    case 'log': {
      const { data: bytes, ...rest } = data as CoordinatorEventMap['log'];
      return {
        buildId: rest.buildId,
        id: rest.id,
        task: rest.task,
        attempt: rest.attempt,
        stream: rest.stream,
        text: bytes.toString('utf8'),
        at: rest.at,
      };
    }
    case 'agent':
      return agentView(data as CoordinatorEventMap['agent']);
  }
}
