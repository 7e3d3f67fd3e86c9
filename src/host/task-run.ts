import { mkdirSync } from 'node:fs';
import type { HostStartMessage, HostToAgent } from '../protocol/host-messages.js';
import type { TaskResult, TaskStatus } from '../protocol/task-types.js';
import type { CodedError } from './errors.js';
import { codedError, toTaskError } from './errors.js';
import type { LoadedExtension, OperationContext } from './extensions.js';
import { ABORT_GRACE_MS } from './extensions.js';
import { placeInputs } from './inputs.js';
import { OutputWriter } from './output-writer.js';
import { collectOutputs } from './outputs.js';
import { killGroup } from './process-groups.js';

/** What a task needs from the host that runs it. */
export interface TaskHost {
  send: (msg: HostToAgent) => void;
  readonly blobDir: string;
  /** The host's environment without MUSTER_* variables. */
  readonly baseEnv: Readonly<Record<string, string>>;
  readonly extensions: ReadonlyMap<string, LoadedExtension>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export type AbortKind = 'cancel' | 'timeout' | 'shutdown';

const abortStatus: Record<AbortKind, TaskStatus> = {
  cancel: 'cancelled',
  timeout: 'timed-out',
  shutdown: 'cancelled',
};

/**
 * One task from `start` to its result: place inputs, run the operation with a context, enforce
 * the timeout, collect outputs. {@link run} never rejects.
 */
export class TaskRun {
  private workDirMade = false;
  /** Process groups the operation announced and has not yet released. */
  readonly groups = new Set<number>();
  private readonly controller = new AbortController();
  private readonly writer: OutputWriter;
  private abortKind: AbortKind | undefined;
  private ended = false;

  constructor(
    private readonly host: TaskHost,
    private readonly msg: HostStartMessage,
  ) {
    this.writer = new OutputWriter(msg.taskId, host.send);
  }

  get taskId(): string {
    return this.msg.taskId;
  }

  abort(kind: AbortKind): void {
    if (this.abortKind !== undefined || this.ended) return;
    this.abortKind = kind;
    const reason =
      kind === 'timeout'
        ? codedError('TASK_TIMEOUT', `the task ran longer than ${this.msg.timeoutMs} ms`)
        : codedError(
            'TASK_CANCELLED',
            kind === 'cancel' ? 'the task was cancelled' : 'the host is shutting down',
          );
    this.controller.abort(reason);
  }

  /** SIGKILLs every process group the task still tracks (the host is going away). */
  killGroups(): void {
    for (const pid of this.groups) killGroup(pid, 'SIGKILL');
  }

  async run(): Promise<TaskResult> {
    const started = performance.now();
    const { msg } = this;
    let timer: NodeJS.Timeout | undefined;
    // 0 or absent: no timeout. Beyond setTimeout's range (~24.8 days) counts as none too.
    if (msg.timeoutMs !== undefined && msg.timeoutMs > 0 && msg.timeoutMs <= MAX_TIMER_MS) {
      timer = setTimeout(() => this.abort('timeout'), msg.timeoutMs);
    }
    let result: TaskResult;
    try {
      if (msg.inputs.length > 0) {
        this.ensureWorkDir();
        await placeInputs(msg.workDir, this.host.blobDir, msg.inputs);
      }
      const ext = this.host.extensions.get(msg.extension);
      if (ext === undefined) {
        throw codedError('UNKNOWN_EXTENSION', `no extension "${msg.extension}" in this host`);
      }
      const op = ext.operations.get(msg.operation);
      if (op === undefined) {
        throw codedError(
          'UNKNOWN_OPERATION',
          `extension "${msg.extension}" has no operation "${msg.operation}"`,
        );
      }
      this.controller.signal.throwIfAborted();
      result = resultOf(await this.settle(op(msg.input, makeContext(this))));
    } catch (err) {
      result = { status: 'failed', error: toTaskError(err), durationMs: 0 };
    }
    clearTimeout(timer);
    if (this.abortKind !== undefined) {
      result.status = abortStatus[this.abortKind];
      result.error = toTaskError(this.controller.signal.reason);
    }
    if (result.status === 'succeeded' && msg.outputs.length > 0) {
      try {
        this.ensureWorkDir();
        result.outputs = await collectOutputs(msg.workDir, this.host.blobDir, msg.outputs);
      } catch (err) {
        result = { ...result, status: 'failed', error: toTaskError(err, 'STORAGE_ERROR') };
        delete result.outputs;
      }
    }
    this.end();
    result.durationMs = performance.now() - started;
    return result;
  }

  /** Announce a process group (ctx.trackProcess). */
  track(pid: number): void {
    if (this.ended) {
      // An operation that outlived its task: nothing may be left running behind it.
      killGroup(pid, 'SIGKILL');
      return;
    }
    if (this.groups.has(pid)) return;
    this.groups.add(pid);
    this.host.send({ t: 'process', taskId: this.msg.taskId, pid });
  }

  untrack(pid: number): void {
    if (!this.groups.delete(pid)) return;
    this.host.send({ t: 'process-exit', taskId: this.msg.taskId, pid });
  }

  write(stream: 'stdout' | 'stderr' | 'log', data: string | Uint8Array): void {
    this.writer.write(stream, data);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * The work dir exists from the first time anything uses it: most tasks do, but a task that
   * never touches it (core/noop) costs no file-system work, which on a busy disk is most of a
   * no-op's time.
   */
  ensureWorkDir(): string {
    if (!this.workDirMade) {
      mkdirSync(this.msg.workDir, { recursive: true });
      this.workDirMade = true;
    }
    return this.msg.workDir;
  }

  get workDir(): string {
    return this.msg.workDir;
  }

  makeEnv(): Record<string, string> {
    return { ...this.host.baseEnv, ...this.msg.env };
  }

  /** Kills what the operation left tracked, flushes output, refuses anything later. */
  private end(): void {
    for (const pid of this.groups) {
      killGroup(pid, 'SIGKILL');
      this.untrack(pid);
    }
    this.writer.close();
    this.ended = true;
  }

  /**
   * The operation's outcome, except that once the task is aborted the host waits at most
   * {@link ABORT_GRACE_MS} for an operation that ignores its signal.
   */
  private async settle(pending: unknown): Promise<unknown> {
    const signal = this.controller.signal;
    let grace: NodeJS.Timeout | undefined;
    let onAbort = (): void => undefined;
    const gaveUp = new Promise<never>((_resolve, reject) => {
      onAbort = () => {
        grace = setTimeout(() => reject(signal.reason as CodedError), ABORT_GRACE_MS);
      };
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await Promise.race([pending, gaveUp]);
    } finally {
      clearTimeout(grace);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * The ctx an operation gets: a plain object (destructuring `const { log } = ctx` works) whose
 * `env` is built on first use, so core/noop never pays for it.
 */
function makeContext(run: TaskRun): OperationContext {
  let env: Record<string, string> | undefined;
  return {
    taskId: run.taskId,
    get workDir() {
      return run.ensureWorkDir();
    },
    signal: run.signal,
    get env() {
      env ??= run.makeEnv();
      return env;
    },
    stdout: (data) => run.write('stdout', data),
    stderr: (data) => run.write('stderr', data),
    log: (text) => {
      const line = String(text);
      run.write('log', line.endsWith('\n') ? line : line + '\n');
    },
    trackProcess: (pid) => run.track(pid),
    untrackProcess: (pid) => run.untrack(pid),
  };
}

/** A succeeded result from an operation's return value (see extensions.ts for the rules). */
function resultOf(value: unknown): TaskResult {
  const result: TaskResult = { status: 'succeeded', durationMs: 0 };
  if (value === undefined) return result;
  result.value = toJson(value);
  if (typeof value === 'object' && value !== null) {
    const { exitCode, signal } = value as { exitCode?: unknown; signal?: unknown };
    if (typeof exitCode === 'number' || exitCode === null) {
      result.exitCode = exitCode;
      result.signal = typeof signal === 'string' ? signal : null;
      if (exitCode !== 0 || result.signal !== null) result.status = 'failed';
    }
  }
  return result;
}

/** The value as plain JSON data (what crosses to the coordinator), or OPERATION_FAILED. */
function toJson(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw codedError(
      'OPERATION_FAILED',
      `the operation returned a value that is not JSON: ${String(err)}`,
    );
  }
  return text === undefined ? undefined : (JSON.parse(text) as unknown);
}
