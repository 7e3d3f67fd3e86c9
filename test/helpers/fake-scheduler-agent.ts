/**
 * An agent as the scheduler sees it (scheduler/ports.ts), whose tasks end when the test says so,
 * with the compiler toolchains it provides (compile jobs). The same shape as the fake in
 * test/unit/scheduler.test.ts, plus toolchains.
 */
import type { SchedulerAgent, SchedulerClient } from '../../src/coordinator/scheduler/ports.js';
import type { OutputChunk, RemoteTask } from '../../src/protocol/client/agent-client.js';
import type { MusterError } from '../../src/protocol/errors.js';
import type { TaskResult, TaskSpec } from '../../src/protocol/task-types.js';

export interface StartedTask {
  spec: TaskSpec;
  finish(result: Partial<TaskResult>): void;
  fail(err: MusterError): void;
  output(chunk: OutputChunk): void;
}

export class FakeSchedulerAgent implements SchedulerAgent {
  busy = 0;
  connected = true;
  readonly started: StartedTask[] = [];
  readonly cancelled: string[] = [];
  readonly released: string[] = [];
  /** Tasks the agent lists on a re-attach (as after a reconnect). */
  onAgent: { taskId: string; state: 'running' | 'done' }[] = [];
  /** Toolchains it refused (refuseToolchain). */
  readonly refused: string[] = [];
  readonly row: { labels: string[] };

  constructor(
    readonly name: string,
    private readonly slotCount: number,
    readonly toolchains: string[] = [],
  ) {
    this.row = { labels: [] };
  }

  get freeSlots(): number {
    return this.connected ? this.slotCount - this.busy : 0;
  }

  noteBusy(delta: number): void {
    this.busy += delta;
  }

  provides(toolchain: string): boolean {
    return this.toolchains.includes(toolchain) && !this.refused.includes(toolchain);
  }

  refuseToolchain(toolchain: string): void {
    this.refused.push(toolchain);
  }

  get client(): SchedulerClient | undefined {
    if (!this.connected) return undefined;
    const handle = (spec: TaskSpec, onOutput?: (c: OutputChunk) => void): RemoteTask => {
      let resolve!: (r: TaskResult) => void;
      let reject!: (e: MusterError) => void;
      const result = new Promise<TaskResult>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      result.catch(() => undefined);
      this.started.push({
        spec,
        finish: (r) => resolve({ status: 'succeeded', exitCode: 0, durationMs: 1, ...r }),
        fail: (e) => reject(e),
        output: (c) => onOutput?.(c),
      });
      return { taskId: spec.taskId, result };
    };
    return {
      putBlobs: async () => ({ sentBlobs: 0, sentBytes: 0 }),
      startTask: async (spec, onOutput) => handle(spec, onOutput),
      attachTask: async (taskId, _fromSeq, onOutput) =>
        handle({ taskId, extension: 'cc', operation: 'compile' }, onOutput),
      listTasks: async () =>
        this.onAgent.map((t) => ({
          taskId: t.taskId,
          extension: 'cc',
          operation: 'compile',
          state: t.state,
          nextSeq: 0,
          startedAt: new Date().toISOString(),
          attached: false,
        })),
      cancelTask: async (taskId) => {
        this.cancelled.push(taskId);
      },
      releaseTask: async (taskId) => {
        this.released.push(taskId);
      },
      getBlob: async () => undefined,
    };
  }
}
