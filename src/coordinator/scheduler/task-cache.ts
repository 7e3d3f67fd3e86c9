/**
 * `cache: true` plan tasks (issue 13, design §6): before such a task is dispatched, its key
 * (task-cache-key.ts) is looked up in the shared cache — the same table as compile results
 * (store/cache.ts), in this process, synchronously. A hit: the task succeeds with the cached
 * outputs without running (an attempt on the pseudo-agent `cache`, placement 'cache', cache
 * 'hit', a log line saying so). A miss: it runs (cache 'miss'), and when it succeeds its outputs
 * are stored under the key (kind 'task', source 'agent': this coordinator obtained them).
 *
 * The outputs are right only if the command is a function of its declared inputs (Bazel's rule,
 * docs/plans.md): the key covers what is declared, nothing the command reads on its own.
 */
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { BlobStore } from '../../common/blob-store.js';
import type { Store } from '../store/store.js';
import type { CacheEntryRow, LogChunk, OutputFile, TaskRow } from '../store/types.js';
import type { ActiveBuild, TaskState } from './active-build.js';
import { newAgentTaskId } from './agent-task-id.js';
import { inputsOf } from './placement.js';
import { HOST_RUNTIME_FILES as HOST, taskCacheKey, type KeyedFile } from './task-cache-key.js';

/** The agent an attempt served from the cache is recorded on (as compile jobs use `local`). */
export const CACHE_AGENT = 'cache';

export interface TaskCacheContext {
  store: Store;
  blobs: BlobStore;
  log: Logger;
  /**
   * The files of an extension in the bundle agents run now, relative to its directory;
   * undefined when not known (no bundle yet, no such extension): such a task is not cached.
   */
  extensionFiles(name: string): readonly KeyedFile[] | undefined;
  /** The host runtime's files in that bundle (undefined: not known, and not cached). */
  hostFiles(): readonly KeyedFile[] | undefined;
}

/** What the scheduler records of a lookup: the task row's changes, and on a hit its log line. */
export type CacheLookup =
  | { hit: true; changes: Partial<TaskRow>; log: Omit<LogChunk, 'id'> }
  | { hit: false; changes: Partial<TaskRow> };

export class TaskCache {
  /** Each task's key once looked up, so a waiting task looks up once. */
  private readonly keys = new WeakMap<TaskState, string>();
  /** Extensions' and the host's files asked for in this turn of the event loop (one pass). */
  private extensionsNow: Map<string, readonly KeyedFile[] | undefined> | undefined;

  constructor(private readonly ctx: TaskCacheContext) {}

  /**
   * The first time a queued `cache: true` task is seen: its entry's outputs and attempt on a hit
   * (recorded here: the attempt, the log chunk, the entry's use), a miss otherwise; undefined for
   * other tasks and later calls. Runs inside the scheduling pass's transaction.
   */
  lookup(build: ActiveBuild, state: TaskState): CacheLookup | undefined {
    if (state.plan.cache !== true || this.keys.has(state)) return undefined;
    const key = this.keyOf(build, state);
    // No key now (the bundle is being computed again, or has no such extension): not
    // remembered, so a task still waiting is looked up again by a later pass.
    if (key === null) return undefined;
    this.keys.set(state, key);
    const entry = this.ctx.store.cache.getEntry(key);
    if (
      entry === undefined ||
      // Only what a coordinator obtained from its agents: clients write compile results only,
      // and must not be able to plant a task's outputs under its (computable) key.
      entry.kind !== 'task' ||
      entry.source !== 'agent' ||
      entry.exitCode !== 0 ||
      // Rows keep their blobs; on a backup a row may come before its blobs do.
      !entry.outputs.every((o) => this.blobSize(o.sha256) === o.size)
    )
      return { hit: false, changes: { cache: 'miss' } };
    return this.serve(build, state, entry);
  }

  /** After the task succeeded on an agent: its outputs are kept under its key. */
  remember(build: ActiveBuild, state: TaskState, outputs: readonly OutputFile[]): void {
    const key = this.keys.get(state);
    if (key === undefined) return;
    try {
      this.ctx.store.cache.putEntry(
        {
          key,
          kind: 'task',
          outputs: outputs.map(({ path, sha256, size, mode }) => ({
            name: path,
            sha256,
            size,
            mode,
          })),
          stderr: null,
          exitCode: 0,
          toolchain: null,
          source: 'agent',
          buildUid: build.row.uid,
          createdBy: build.row.createdBy,
        },
        (sha256) => this.blobSize(sha256),
      );
    } catch (err) {
      // The task's success stands; only its reuse is lost.
      this.ctx.log.warn(
        { err, build: build.id, task: state.plan.name },
        'could not store a cached task result',
      );
    }
  }

  private blobSize(sha256: string): number | undefined {
    try {
      return statSync(this.ctx.blobs.pathOf(sha256)).size;
    } catch {
      return undefined;
    }
  }

  private keyOf(build: ActiveBuild, state: TaskState): string | null {
    const { plan } = state;
    const extensionFiles = this.extensionFiles(plan.extension);
    const hostFiles = this.extensionFiles(HOST);
    if (extensionFiles === undefined || hostFiles === undefined) return null;
    return taskCacheKey({
      hostFiles,
      extension: plan.extension,
      extensionFiles,
      operation: plan.operation,
      input: plan.input,
      env: plan.env,
      inputs: inputsOf(build, state),
      outputs: plan.outputs,
      requires: plan.requires,
    });
  }

  /**
   * ctx.extensionFiles once per extension and pass (ctx.hostFiles for {@link HOST}): it reads
   * the store's extension sets.
   */
  private extensionFiles(name: string): readonly KeyedFile[] | undefined {
    if (this.extensionsNow === undefined) {
      this.extensionsNow = new Map();
      queueMicrotask(() => (this.extensionsNow = undefined));
    }
    if (!this.extensionsNow.has(name)) {
      const files = name === HOST ? this.ctx.hostFiles() : this.ctx.extensionFiles(name);
      this.extensionsNow.set(name, files);
    }
    return this.extensionsNow.get(name);
  }

  private serve(build: ActiveBuild, state: TaskState, entry: CacheEntryRow): CacheLookup {
    const { store } = this.ctx;
    const at = new Date().toISOString();
    const number = state.row.attempts + 1;
    const attempt = store.createAttempt({
      buildId: build.id,
      taskName: state.plan.name,
      number,
      agent: CACHE_AGENT,
      agentTaskId: newAgentTaskId(build.row, state.plan.name, number),
      status: 'running',
      startedAt: at,
    });
    store.finishAttempt(attempt.id, 'succeeded', { exitCode: 0, error: null, finishedAt: at });
    store.cache.touch(entry.key, at);
    return {
      hit: true,
      changes: {
        status: 'succeeded',
        attempts: number,
        agent: CACHE_AGENT,
        startedAt: at,
        finishedAt: at,
        exitCode: 0,
        outputs: entry.outputs.map(({ name, sha256, size, mode }) => ({
          path: name,
          sha256,
          size,
          mode,
        })),
        error: null,
        cache: 'hit',
        placement: 'cache',
      },
      log: {
        buildId: build.id,
        taskName: state.plan.name,
        attempt: number,
        stream: 'log',
        data: Buffer.from(
          `not run: its outputs came from the shared cache (stored ${entry.createdAt}), key ${entry.key}\n`,
        ),
        at,
      },
    };
  }
}
