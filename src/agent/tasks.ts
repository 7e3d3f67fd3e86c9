/**
 * Starts, cancels, releases and expires tasks. A task is a TaskRecord in its instance's map;
 * it runs on the host of the version the starting connection synced, and keeps running when
 * that connection goes away.
 */
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MusterError, toMusterError } from '../protocol/errors.js';
import { checkRelativePath } from '../protocol/paths.js';
import type { TaskResult, TaskSpec } from '../protocol/task-types.js';
import type { BlobStore } from '../common/blob-store.js';
import type { HostProcess } from './host-process.js';
import { killGroup } from './host-process.js';
import type { HostSupervisor } from './host-supervisor.js';
import type { Instance } from './instances.js';
import { TaskRecord } from './task-record.js';
import type { TaskUsers } from './task-users.js';

export interface SyncedVersion {
  versionId: string;
  entry: string;
}

export interface TaskServiceOptions {
  graceMs: number;
  memoryBytes: number;
  maxBytes: number;
}

export class TaskService {
  private readonly hostOf = new Map<TaskRecord, HostProcess>();
  private readonly cancelRequested = new WeakSet<TaskRecord>();
  private readonly all = new Set<TaskRecord>();
  private readonly instanceOf = new Map<TaskRecord, Instance>();

  constructor(
    private readonly blobs: BlobStore,
    private readonly hosts: HostSupervisor,
    private readonly options: TaskServiceOptions,
    private readonly log: Logger,
    private readonly users?: TaskUsers,
  ) {}

  /** Task records kept: running, or ended and waiting for their coordinator. */
  get keptCount(): number {
    return this.all.size;
  }

  get runningCount(): number {
    let n = 0;
    for (const record of this.all) if (record.state === 'running') n++;
    return n;
  }

  /** Blobs that live tasks still refer to. */
  referencedBlobs(): Set<string> {
    const refs = new Set<string>();
    for (const record of this.all) for (const sha of record.referencedBlobs()) refs.add(sha);
    return refs;
  }

  async start(instance: Instance, version: SyncedVersion, spec: TaskSpec): Promise<TaskRecord> {
    if (instance.tasks.has(spec.taskId)) {
      throw new MusterError('TASK_EXISTS', `task ${spec.taskId} already exists in this instance`, {
        taskId: spec.taskId,
      });
    }
    for (const file of spec.inputs ?? []) checkRelativePath(file.path, 'input path');
    for (const pattern of spec.outputs ?? []) {
      if (pattern.startsWith('/') || pattern.split('/').includes('..')) {
        throw new MusterError('INVALID_PATH', `output pattern "${pattern}" leaves the work dir`, {
          pattern,
        });
      }
    }
    const missing = await this.blobs.missing((spec.inputs ?? []).map((f) => f.sha256));
    if (missing.length > 0) {
      throw new MusterError(
        'BLOB_NOT_FOUND',
        `${missing.length} input blob(s) are not on the agent; offer them first`,
        {
          missing,
        },
      );
    }
    const workDir = instance.workDir(spec.taskId);
    const record = new TaskRecord(spec, workDir, join(instance.dir, 'output', spec.taskId), {
      memoryBytes: this.options.memoryBytes,
      maxBytes: this.options.maxBytes,
    });
    instance.tasks.set(spec.taskId, record);
    this.all.add(record);
    this.instanceOf.set(record, instance);
    this.dispatch(instance, version, record).catch((err: unknown) => {
      const e = toMusterError(err);
      this.log.warn({ taskId: spec.taskId, code: e.code }, e.message);
      record.finish({
        status: 'failed',
        error: { code: e.code, message: e.message },
        durationMs: 0,
      });
    });
    return record;
  }

  cancel(instance: Instance, taskId: string): void {
    const record = this.require(instance, taskId);
    if (record.state === 'done') return;
    this.cancelRequested.add(record);
    const host = this.hostOf.get(record);
    if (host) host.cancel(taskId);
  }

  async release(instance: Instance, taskId: string): Promise<void> {
    const record = this.require(instance, taskId);
    if (record.state === 'running') {
      throw new MusterError(
        'UNEXPECTED_MESSAGE',
        `task ${taskId} is still running; cancel it first`,
        { taskId },
      );
    }
    await this.forget(instance, record);
  }

  get(instance: Instance, taskId: string): TaskRecord {
    return this.require(instance, taskId);
  }

  /** Forgets ended tasks whose grace period is over. */
  async sweep(now = Date.now()): Promise<void> {
    for (const record of [...this.all]) {
      if (
        record.state === 'done' &&
        record.endedAt !== undefined &&
        now - record.endedAt > this.options.graceMs
      ) {
        const instance = this.instanceOf.get(record);
        if (instance) {
          this.log.info(
            { instance: instance.key, taskId: record.taskId },
            'task expired unclaimed',
          );
          await this.forget(instance, record);
        }
      }
    }
  }

  cancelAll(): void {
    for (const record of this.all) {
      const instance = this.instanceOf.get(record);
      if (instance && record.state === 'running') this.cancel(instance, record.taskId);
    }
  }

  /** Waits (bounded) until no task runs. */
  async idle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.runningCount > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.runningCount === 0;
  }

  private async dispatch(
    instance: Instance,
    version: SyncedVersion,
    record: TaskRecord,
  ): Promise<void> {
    const started = Date.now();
    const fail = (result: Omit<TaskResult, 'durationMs'>): void =>
      record.finish({ ...result, durationMs: Date.now() - started });
    const { spec } = record;
    // Inputs are in the task user's blob view before its host can ask for them.
    if (this.users !== undefined && (spec.inputs?.length ?? 0) > 0) {
      try {
        await this.users.prepare(instance);
        await this.users.linkInputs(
          instance,
          (spec.inputs ?? []).map((f) => f.sha256),
        );
      } catch (err) {
        const e = toMusterError(err);
        fail({ status: 'failed', error: { code: e.code, message: e.message } });
        return;
      }
    }
    let host: HostProcess;
    try {
      host = await this.hosts.get(instance, version.versionId, version.entry);
    } catch (err) {
      const e =
        err instanceof MusterError ? err : new MusterError('HOST_START_FAILED', String(err));
      fail({ status: 'failed', error: { code: e.code, message: e.message } });
      return;
    }
    if (this.cancelRequested.has(record)) {
      fail({
        status: 'cancelled',
        error: { code: 'TASK_CANCELLED', message: 'cancelled before it started' },
      });
      return;
    }
    this.hostOf.set(record, host);
    host.start(record, {
      t: 'start',
      taskId: spec.taskId,
      extension: spec.extension,
      operation: spec.operation,
      input: spec.input,
      inputs: spec.inputs ?? [],
      outputs: spec.outputs ?? [],
      env: spec.env ?? {},
      ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      workDir: record.workDir,
    });
  }

  private async forget(instance: Instance, record: TaskRecord): Promise<void> {
    instance.tasks.delete(record.taskId);
    instance.lastActive = Date.now();
    this.all.delete(record);
    this.hostOf.delete(record);
    this.instanceOf.delete(record);
    for (const pgid of record.processGroups) {
      if (this.users === undefined) killGroup(pgid);
      else this.users.killGroup(instance, pgid);
    }
    await record.dispose();
    const users = this.users;
    const removeTree =
      users === undefined ? undefined : (dir: string) => users.removeTree(instance, dir);
    await removeWorkDir(record.workDir, removeTree).catch((err: unknown) =>
      this.log.warn({ err, workDir: record.workDir }, 'could not remove a work dir'),
    );
  }

  private require(instance: Instance, taskId: string): TaskRecord {
    const record = instance.tasks.get(taskId);
    if (!record) {
      throw new MusterError(
        'TASK_NOT_FOUND',
        `no task ${taskId} in this instance (never started, or expired)`,
        {
          taskId,
        },
      );
    }
    return record;
  }
}

/**
 * Removes a task's work dir. Many tasks never create one (the host makes it on first use) and
 * a plain rmdir answers those in one system call; rm's recursive walk (several lstats) is kept
 * for dirs with files in them. With task users the walk runs as the task's user (`removeTree`):
 * root must not walk a tree that user's processes may still be changing.
 */
async function removeWorkDir(
  dir: string,
  removeTree: (dir: string) => Promise<void> = (d) => rm(d, { recursive: true, force: true }),
): Promise<void> {
  try {
    await rmdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
    await removeTree(dir);
  }
}
