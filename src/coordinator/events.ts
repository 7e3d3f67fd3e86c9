/**
 * The coordinator's live events (builds, tasks, logs, agents), as the scheduler and the pool
 * report them: in the coordinator's own terms (store rows, plan tasks, agent snapshots). The API maps them to the
 * views of its event stream at its edge (api/event-views.ts), so the scheduler and the pool know
 * nothing of API views.
 */
import { EventEmitter } from 'node:events';
import type { PlanTask } from '../api/plan/types.js';
import type { AgentSnapshot } from './pool/agent-snapshot.js';
import type { BuildRow, TaskRow } from './store/types.js';

export interface CoordinatorEventMap {
  /** A build changed (its status, or one of its tasks'): the build and all its tasks. */
  build: { build: BuildRow; tasks: TaskRow[] };
  /** A task changed (plan: its plan task; none for a compile session's job). */
  task: { buildId: number; row: TaskRow; plan?: PlanTask | undefined };
  /** A task wrote output (the chunk as stored, with its id in the build's log). */
  log: {
    buildId: number;
    id: number;
    task: string;
    attempt: number;
    stream: 'stdout' | 'stderr' | 'log';
    data: Buffer;
    at: string;
  };
  /** An agent's connection changed. */
  agent: AgentSnapshot;
}

export type EventName = keyof CoordinatorEventMap;
export type Listener = <K extends EventName>(event: K, data: CoordinatorEventMap[K]) => void;

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open event stream is a listener; there may be many.
    this.emitter.setMaxListeners(0);
  }

  emit<K extends EventName>(event: K, data: CoordinatorEventMap[K]): void {
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

/**
 * Narrows an event bus listener's data by the event's name: the listener is generic in the name,
 * which TypeScript does not narrow by comparing it, so without this each use would need a cast.
 */
export function isEvent<K extends EventName>(
  name: K,
  event: EventName,
  _data: CoordinatorEventMap[EventName],
): _data is CoordinatorEventMap[K] {
  return event === name;
}
