/**
 * Follows a build until it ends: live events when the coordinator streams them, polling when the
 * stream is unavailable or drops. Logs are fetched from the start first, so early output is not
 * missed, and deduplicated by chunk id (ids only grow).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BuildView, LogChunkView, TaskView } from '../api/views/builds.js';
import type { BuildStatus } from '../api/status.js';
import { MusterError } from '../protocol/errors.js';
import type { ApiClient, ApiEvent, EventStream } from './api-client.js';
import type { BuildDisplay } from './build-display.js';

export interface FollowOptions {
  /** Only this task's logs. */
  task?: string | undefined;
  /** Stop following (resolves with the build as last seen). */
  signal?: AbortSignal;
  /** Polling interval once the event stream is gone (default 1 s). */
  pollMs?: number;
  /** While streaming, how often the build is also fetched, in case an event was lost (5 s). */
  checkMs?: number;
  /** How long the coordinator may stay unreachable while polling before giving up (60 s). */
  unreachableMs?: number;
}

const ENDED: ReadonlySet<BuildStatus> = new Set(['succeeded', 'failed', 'cancelled']);
const LOG_PAGE = 1000;

export function hasEnded(status: BuildStatus): boolean {
  return ENDED.has(status);
}

export async function followBuild(
  client: ApiClient,
  buildId: number,
  display: BuildDisplay,
  options: FollowOptions = {},
): Promise<BuildView> {
  return new Follower(client, buildId, display, options).run();
}

class Follower {
  private build: BuildView | undefined;
  private readonly tasks = new Map<string, TaskView>();
  /** The largest log chunk id printed. */
  private lastLogId = 0;
  /** Where the next GET /logs continues (server's `next`). */
  private logCursor = 0;
  private ended = false;
  /** Event handling and periodic checks take turns, so output stays in order. */
  private turn: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: ApiClient,
    private readonly buildId: number,
    private readonly display: BuildDisplay,
    private readonly options: FollowOptions,
  ) {}

  async run(): Promise<BuildView> {
    const signal = this.options.signal;
    // Subscribe first, then read the state and the logs so far: whatever happens in between is
    // in the stream's buffer and is deduplicated.
    let stream: EventStream | undefined;
    try {
      stream = await this.client.openEvents(this.buildId, signal);
    } catch (err) {
      if (err instanceof MusterError && (err.code === 'UNAUTHORIZED' || err.code === 'FORBIDDEN')) {
        throw err;
      }
      stream = undefined;
    }
    try {
      await this.refresh();
      await this.catchUpLogs();
      if (stream && !this.ended && !signal?.aborted) await this.consume(stream);
    } finally {
      stream?.close();
    }
    // Chunk ids only grow, so what the stream printed need not be fetched again.
    this.logCursor = Math.max(this.logCursor, this.lastLogId);
    let unreachableSince: number | undefined;
    while (!this.ended && !signal?.aborted) {
      // eslint-disable-next-line no-restricted-syntax -- an abort ends the sleep early; the loop checks the signal next
      await sleep(this.options.pollMs ?? 1000, undefined, { signal }).catch(() => undefined);
      if (signal?.aborted) break;
      try {
        await this.refresh();
        await this.catchUpLogs();
        unreachableSince = undefined;
      } catch (err) {
        if (!(err instanceof MusterError) || err.code !== 'UNREACHABLE') throw err;
        unreachableSince ??= Date.now();
        if (Date.now() - unreachableSince > (this.options.unreachableMs ?? 60_000)) throw err;
      }
    }
    if (!signal?.aborted) {
      // The final state (task outputs) and any log written just before the end.
      await this.refresh();
      await this.catchUpLogs();
    }
    this.display.finish();
    return this.build as BuildView;
  }

  private async consume(stream: EventStream): Promise<void> {
    const check = setInterval(() => {
      // eslint-disable-next-line no-restricted-syntax -- a failed check is tried again; the stream or the poll after it reports errors
      void this.inTurn(async () => {
        await this.refresh();
        if (this.ended) stream.close();
      }).catch(() => undefined);
    }, this.options.checkMs ?? 5000);
    try {
      for await (const event of stream) {
        await this.inTurn(() => this.handle(event));
        if (this.ended) break;
      }
    } catch {
      // The stream dropped: the caller polls from here.
    } finally {
      clearInterval(check);
    }
    // eslint-disable-next-line no-restricted-syntax -- inTurn's callers got its errors; this only waits for the last turn
    await this.turn.catch(() => undefined);
  }

  private inTurn(fn: () => Promise<void> | void): Promise<void> {
    const next = this.turn.then(fn);
    // The caller gets the error from `next`; `turn` only keeps the turns in order.
    this.turn = next.catch(() => undefined);
    return next;
  }

  private handle(event: ApiEvent): void {
    switch (event.event) {
      case 'log':
        if (event.data.buildId === this.buildId) this.printLog(event.data);
        break;
      case 'task':
        if (event.data.buildId === this.buildId) {
          this.applyTask(event.data.task);
          this.display.setTasks([...this.tasks.values()]);
        }
        break;
      case 'build':
        if (event.data.id === this.buildId && hasEnded(event.data.status)) this.ended = true;
        break;
      default:
        break;
    }
  }

  private async refresh(): Promise<void> {
    const build = await this.client.getBuild(this.buildId);
    this.build = build;
    for (const task of build.tasks) this.applyTask(task);
    this.display.setTasks(build.tasks, build.startedAt ?? build.createdAt);
    if (hasEnded(build.status)) this.ended = true;
  }

  private applyTask(task: TaskView): void {
    const previous = this.tasks.get(task.name);
    this.tasks.set(task.name, task);
    this.display.taskChanged(previous, task);
  }

  private async catchUpLogs(): Promise<void> {
    for (;;) {
      const after = this.logCursor;
      const page = await this.client.buildLogs(this.buildId, {
        task: this.options.task,
        after,
        limit: LOG_PAGE,
      });
      for (const chunk of page.chunks) this.printLog(chunk);
      this.logCursor = Math.max(after, page.next);
      if (page.chunks.length === 0 || this.logCursor === after) return;
    }
  }

  private printLog(chunk: LogChunkView): void {
    if (chunk.id <= this.lastLogId) return;
    this.lastLogId = chunk.id;
    this.display.log(chunk);
  }
}
