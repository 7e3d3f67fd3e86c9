/**
 * One host process: started from an instance's version directory, it runs that version's
 * operations. The agent talks to it over Node IPC (protocol/host-messages.ts). When it exits
 * unexpectedly every task it was running fails with HOST_CRASHED and the process groups those
 * tasks started are killed, so nothing is left behind. It is stopped after being idle.
 *
 * With task users (task-users.ts) it runs as its instance's user: uid/gid, HOME and TMPDIR of
 * that instance, its blob view as MUSTER_BLOB_DIR, a umask of 022 (the agent's own is 077), and
 * each finished task's outputs are taken into the shared store, verified, before the task is done.
 */
import { parseHostMessage } from './host-message-schema.js';
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MusterError } from '../protocol/errors.js';
import {
  HOST_PROTOCOL,
  type AgentToHost,
  type HostExtensionInfo,
  type HostStartMessage,
  type HostToAgent,
} from '../protocol/host-messages.js';
import type { TaskResult } from '../protocol/task-types.js';
import type { TaskRecord } from './task-record.js';
import type { HostUser } from './task-users.js';

export type HostState = 'starting' | 'ready' | 'stopping' | 'exited';

export interface HostProcessOptions {
  versionDir: string;
  entry: string;
  blobDir: string;
  idleMs: number;
  log: Logger;
  onExit(host: HostProcess): void;
  /** Run as this user (task users); else as the agent. */
  user?: HostUser;
  /** Called with each task's result before the task counts as done; must not reject. */
  finishing?: (result: TaskResult) => Promise<TaskResult>;
  /** Kills a process group the host's tasks started (default: the agent kills it itself). */
  killGroup?: (pgid: number) => void;
}

/**
 * Loaded before the host's entry: the agent runs with umask 077 when it has task users, and a
 * task's files should get the modes they would get anywhere else (they become outputs' modes).
 */
const UMASK_022 = 'data:text/javascript,process.umask(0o022)';

const START_TIMEOUT_MS = 30_000;

/**
 * The agent's environment without its own settings: MUSTER_ACCESS_KEY and every other
 * MUSTER_* variable (docs/operations.md, "Configuration") stay in the agent; a host process
 * runs extensions as a task user, who could read them in its environment. Only the test hook
 * the host reads itself passes.
 */
export function hostEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env))
    if (!name.startsWith('MUSTER_') || name === 'MUSTER_HOST_TEST_HOOKS') out[name] = value;
  return out;
}

export class HostProcess {
  state: HostState = 'starting';
  extensions: HostExtensionInfo[] = [];
  readonly ready: Promise<void>;
  private readonly child: ChildProcess;
  private readonly running = new Map<string, TaskRecord>();
  private idleTimer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;

  constructor(private readonly options: HostProcessOptions) {
    const { user } = options;
    const env: NodeJS.ProcessEnv = {
      ...hostEnvironment(process.env),
      ...user?.env,
      MUSTER_HOST_PROTOCOL: String(HOST_PROTOCOL),
      MUSTER_BUNDLE_DIR: options.versionDir,
      MUSTER_BLOB_DIR: user?.blobDir ?? options.blobDir,
    };
    this.child = fork(join(options.versionDir, options.entry), [], {
      cwd: options.versionDir,
      env,
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      ...(user === undefined
        ? {}
        : { uid: user.uid, gid: user.gid, execArgv: [...process.execArgv, '--import', UMASK_022] }),
    });
    this.child.stdout?.on('data', (d: Buffer) => options.log.debug({ hostStdout: d.toString() }));
    this.child.stderr?.on('data', (d: Buffer) => {
      this.lastError = d.toString().slice(-2000);
      options.log.warn({ hostStderr: this.lastError }, 'host wrote to stderr');
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new MusterError('HOST_START_FAILED', 'the host process did not get ready in 30 s'));
        this.kill();
      }, START_TIMEOUT_MS);
      this.child.on('message', (raw: unknown) => {
        const message = parseHostMessage(raw);
        if (message === undefined) {
          options.log.warn('the host sent a message that is not one: stopping it');
          this.kill();
          return;
        }
        if (message.t === 'ready') {
          clearTimeout(timer);
          this.state = 'ready';
          this.extensions = message.extensions;
          this.armIdle();
          resolve();
        } else if (message.t === 'fatal') {
          clearTimeout(timer);
          this.lastError = message.message;
          reject(new MusterError('HOST_START_FAILED', `host failed to start: ${message.message}`));
        } else {
          try {
            this.onMessage(message);
          } catch (err) {
            // One host's message must never take the agent (and every instance) down.
            options.log.warn({ err }, 'a host message could not be handled: stopping the host');
            this.kill();
          }
        }
      });
      this.child.on('error', (err) => {
        clearTimeout(timer);
        reject(
          new MusterError('HOST_START_FAILED', `host process: ${err.message}`, undefined, {
            cause: err,
          }),
        );
      });
      this.child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new MusterError(
            'HOST_START_FAILED',
            `host exited before it was ready (code ${code}, signal ${signal})${this.lastError ? `: ${this.lastError}` : ''}`,
          ),
        );
        this.onExit(code, signal);
      });
    });
    // eslint-disable-next-line no-restricted-syntax -- whoever awaits `ready` gets the error; this keeps an unawaited one quiet
    this.ready.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Throws INVALID_INPUT when the message cannot be serialised (e.g. absurdly deep input). */
  start(record: TaskRecord, message: HostStartMessage): void {
    try {
      this.send(message);
    } catch (err) {
      throw new MusterError(
        'INVALID_INPUT',
        `the task's input cannot be passed to the host: ${(err as Error).message}`,
        undefined,
        {
          cause: err,
        },
      );
    }
    this.running.set(record.taskId, record);
    this.clearIdle();
  }

  cancel(taskId: string): void {
    if (this.running.has(taskId)) this.send({ t: 'cancel', taskId });
  }

  /** Asks the host to stop (it cancels what it runs), and kills it if it lingers. */
  stop(): Promise<void> {
    if (this.state === 'exited') return Promise.resolve();
    this.state = 'stopping';
    this.clearIdle();
    this.send({ t: 'shutdown' });
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.kill(), 5000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
    });
  }

  private send(message: AgentToHost): void {
    if (this.child.connected) this.child.send(message);
  }

  private kill(): void {
    try {
      this.child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }

  private onMessage(message: HostToAgent): void {
    switch (message.t) {
      case 'output': {
        const record = this.running.get(message.taskId);
        record?.append(
          message.stream,
          Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength),
        );
        break;
      }
      case 'process':
        this.running.get(message.taskId)?.processGroups.add(message.pid);
        break;
      case 'process-exit':
        this.running.get(message.taskId)?.processGroups.delete(message.pid);
        break;
      case 'done': {
        const record = this.running.get(message.taskId);
        if (!record) break;
        this.running.delete(message.taskId);
        record.processGroups.clear();
        if (this.options.finishing === undefined) record.finish(message.result);
        else
          void this.options
            .finishing(message.result)
            .catch((err: unknown): TaskResult => ({
              status: 'failed',
              error: { code: 'INTERNAL', message: `could not collect the outputs: ${String(err)}` },
              durationMs: message.result.durationMs,
            }))
            .then((result) => record.finish(result));
        if (this.running.size === 0) this.armIdle();
        break;
      }
      default:
        break;
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    const expected = this.state === 'stopping';
    this.state = 'exited';
    this.clearIdle();
    if (!expected || this.running.size > 0) {
      this.options.log.warn({ code, signal, tasks: this.running.size }, 'host process exited');
    }
    for (const record of this.running.values()) {
      for (const pgid of record.processGroups) (this.options.killGroup ?? killGroup)(pgid);
      record.finish({
        status: 'failed',
        error: {
          code: 'HOST_CRASHED',
          message: `the host process exited (code ${code}, signal ${signal}) while the task ran${this.lastError ? `: ${this.lastError.trim()}` : ''}`,
        },
        durationMs: Date.now() - record.startedAt.getTime(),
      });
    }
    this.running.clear();
    this.options.onExit(this);
  }

  private armIdle(): void {
    this.clearIdle();
    this.idleTimer = setTimeout(() => {
      if (this.running.size === 0 && this.state === 'ready') void this.stop();
    }, this.options.idleMs);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}

/**
 * SIGKILLs a process group a host announced. A host is not trusted with the number: 0 would be
 * the agent's own group and 1 every process the agent may signal.
 */
export function killGroup(pgid: number): void {
  if (!Number.isInteger(pgid) || pgid <= 1) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}
