/**
 * An agent as the scheduler sees it (scheduler/ports.ts), whose tasks end when the test says so,
 * with its labels and the compiler toolchains it provides (compile jobs), and switches for the
 * agent's answers a test needs (a start refused as TASK_EXISTS, an attach as TASK_NOT_FOUND).
 */
import type { SchedulerAgent, SchedulerClient } from '../../src/coordinator/scheduler/ports.js';
import type { OutputChunk, RemoteTask } from '../../src/protocol/client/agent-client.js';
import { MusterError } from '../../src/protocol/errors.js';
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
  /** Blobs the scheduler fetched from this agent. */
  readonly fetched: string[] = [];
  readonly attached: { taskId: string; fromSeq: number }[] = [];
  /** Starts refused with TASK_EXISTS, as by an agent that already has the id. */
  refuseStarts = 0;
  /** Attaches refused with TASK_NOT_FOUND, as by an agent that forgot the task. */
  forgetOnAttach = false;
  /** What its re-attached and listed tasks say they run. */
  taskKind = { extension: 'cc', operation: 'compile' };
  readonly row: { labels: string[] };

  constructor(
    readonly name: string,
    private readonly slotCount: number,
    readonly toolchains: string[] = [],
    labels: string[] = [],
  ) {
    this.row = { labels };
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
      startTask: async (spec, onOutput) => {
        if (this.refuseStarts > 0) {
          this.refuseStarts--;
          throw new MusterError('TASK_EXISTS', `task ${spec.taskId} already exists`);
        }
        return handle(spec, onOutput);
      },
      attachTask: async (taskId, fromSeq = 0, onOutput) => {
        this.attached.push({ taskId, fromSeq });
        if (this.forgetOnAttach) throw new MusterError('TASK_NOT_FOUND', `no task ${taskId}`);
        return handle({ taskId, ...this.taskKind }, onOutput);
      },
      listTasks: async () =>
        this.onAgent.map((t) => ({
          taskId: t.taskId,
          ...this.taskKind,
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
      getBlob: async (sha256) => {
        this.fetched.push(sha256);
        return undefined;
      },
    };
  }
}
