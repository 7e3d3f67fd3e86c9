/** The coordinator's live events (builds, tasks, logs, agents) for the API's event stream. */
import { EventEmitter } from 'node:events';
import type { EventMap, EventName } from '../api/events.js';
export type Listener = <K extends EventName>(event: K, data: EventMap[K]) => void;

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open event stream is a listener; there may be many.
    this.emitter.setMaxListeners(0);
  }

  emit<K extends EventName>(event: K, data: EventMap[K]): void {
    this.emitter.emit('event', event, data);
  }

  subscribe(listener: Listener): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  get listenerCount(): number {
    return this.emitter.listenerCount('event');
  }
}
