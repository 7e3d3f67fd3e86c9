import { isAbsolute } from 'node:path';
import type { HostStartMessage, HostToAgent } from '../protocol/host-messages.js';
import type { TaskResult } from '../protocol/task-types.js';
import { toTaskError } from './errors.js';
import type { LoadedExtension } from './extensions.js';
import type { TaskHost } from './task-run.js';
import { TaskRun } from './task-run.js';

export interface HostOptions {
  send: (msg: HostToAgent) => void;
  blobDir: string;
  /** The environment child processes start from (MUSTER_* variables are dropped). */
  env: NodeJS.ProcessEnv;
  extensions: readonly LoadedExtension[];
  /** Where the host reports what it cannot attribute to a task (default: stderr). */
  warn?: (text: string) => void;
}

/**
 * The host's task table: handles `start` and `cancel` from the agent, runs tasks concurrently and
 * answers each with exactly one `done`. Knows nothing of the IPC channel (main.ts wires it), so
 * it can be driven directly.
 */
export class Host {
  private readonly tasks = new Map<string, TaskRun>();
  private readonly taskHost: TaskHost;
  private readonly warn: (text: string) => void;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: HostOptions) {
    const baseEnv: Record<string, string> = {};
    for (const [key, value] of Object.entries(options.env)) {
      if (value !== undefined && !key.startsWith('MUSTER_')) baseEnv[key] = value;
    }
    this.taskHost = {
      send: options.send,
      blobDir: options.blobDir,
      baseEnv: Object.freeze(baseEnv),
      extensions: new Map(options.extensions.map((e) => [e.name, e])),
    };
    this.warn = options.warn ?? ((text) => process.stderr.write(`muster host: ${text}\n`));
  }

  get runningTasks(): number {
    return this.tasks.size;
  }

  /** Handles one message from the agent (`shutdown` is main.ts's business). */
  handle(msg: unknown): void {
    const t = (msg as { t?: unknown } | null)?.t;
    if (t === 'start') this.start(msg as HostStartMessage);
    else if (t === 'cancel') this.tasks.get((msg as { taskId: string }).taskId)?.abort('cancel');
    else this.warn(`ignoring message ${JSON.stringify(t)}`);
  }

  /** Aborts every task and resolves once each has sent its `done`. New starts are refused. */
  shutdown(): Promise<void> {
    this.draining = true;
    for (const task of this.tasks.values()) task.abort('shutdown');
    if (this.tasks.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** SIGKILLs every process group of every task, synchronously (the host is exiting). */
  killAll(): void {
    for (const task of this.tasks.values()) task.killGroups();
  }

  private start(msg: HostStartMessage): void {
    const problem = checkStart(msg);
    if (problem !== undefined) {
      if (typeof msg.taskId === 'string' && !this.tasks.has(msg.taskId)) {
        this.done(msg.taskId, failed('INVALID_MESSAGE', `bad start message: ${problem}`));
      } else {
        this.warn(`ignoring a bad start message: ${problem}`);
      }
      return;
    }
    if (this.tasks.has(msg.taskId)) {
      // The first task keeps its id; a second `done` would be attributed to it.
      this.warn(`ignoring a second start of running task ${msg.taskId}`);
      return;
    }
    if (this.draining) {
      this.done(msg.taskId, {
        status: 'cancelled',
        error: { code: 'TASK_CANCELLED', message: 'the host is shutting down' },
        durationMs: 0,
      });
      return;
    }
    const task = new TaskRun(this.taskHost, msg);
    this.tasks.set(msg.taskId, task);
    task
      .run()
      .catch((err: unknown) => ({ ...failed('INTERNAL', ''), error: toTaskError(err, 'INTERNAL') }))
      .then((result) => {
        this.tasks.delete(msg.taskId);
        this.done(msg.taskId, result);
        if (this.tasks.size === 0) this.notifyIdle();
      })
      .catch((err: unknown) => this.warn(`task ${msg.taskId}: ${String(err)}`));
  }

  private done(taskId: string, result: TaskResult): void {
    this.options.send({ t: 'done', taskId, result });
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function failed(code: string, message: string): TaskResult {
  return { status: 'failed', error: { code, message }, durationMs: 0 };
}

/**
 * A light check of what the agent sent (the agent validates; this guards the host's own state).
 * Missing `inputs`, `outputs` and `env` are taken as empty.
 */
function checkStart(msg: HostStartMessage): string | undefined {
  msg.inputs ??= [];
  msg.outputs ??= [];
  msg.env ??= {};
  if (typeof msg.taskId !== 'string' || msg.taskId === '') return 'taskId';
  if (typeof msg.extension !== 'string') return 'extension';
  if (typeof msg.operation !== 'string') return 'operation';
  if (typeof msg.workDir !== 'string' || !isAbsolute(msg.workDir)) return 'workDir';
  if (!Array.isArray(msg.inputs)) return 'inputs';
  if (!Array.isArray(msg.outputs) || msg.outputs.some((o) => typeof o !== 'string')) {
    return 'outputs';
  }
  if (typeof msg.env !== 'object' || msg.env === null) return 'env';
  if (Object.values(msg.env).some((v) => typeof v !== 'string')) return 'env';
  if (msg.timeoutMs !== undefined && (typeof msg.timeoutMs !== 'number' || msg.timeoutMs < 0)) {
    return 'timeoutMs';
  }
  return undefined;
}
