/**
 * Narrows an event bus listener's data by the event's name: the listener is generic in the name,
 * which TypeScript does not narrow by comparing it, so without this each use would need a cast.
 */
import type { CoordinatorEventMap, EventName } from './events.js';

export function isEvent<K extends EventName>(
  name: K,
  event: EventName,
  _data: CoordinatorEventMap[EventName],
): _data is CoordinatorEventMap[K] {
  return event === name;
}
