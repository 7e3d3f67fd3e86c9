/**
 * Task shapes shared by the wire protocol (coordinator <-> agent) and the host IPC
 * (agent <-> host). Types only: the host runtime imports them with `import type`.
 */

export type OutputStream = 'stdout' | 'stderr' | 'log';

/** A file to place in the task's work dir from the agent's blob store before the operation runs. */
export interface TaskInputFile {
  path: string;
  sha256: string;
  mode: number;
}

/** A file collected from the work dir into the blob store after the operation ran. */
export interface TaskOutputFile {
  path: string;
  sha256: string;
  size: number;
  mode: number;
}

export type TaskStatus = 'succeeded' | 'failed' | 'cancelled' | 'timed-out' | 'lost';

export interface TaskResult {
  status: TaskStatus;
  /** Exit code of the process an operation ran (core/run), when there was one. */
  exitCode?: number | null;
  signal?: string | null;
  /** The operation's return value (JSON). */
  value?: unknown;
  error?: { code: string; message: string };
  outputs?: TaskOutputFile[];
  durationMs: number;
}

/** What a coordinator asks an agent to run. */
export interface TaskSpec {
  taskId: string;
  extension: string;
  operation: string;
  input?: unknown;
  inputs?: TaskInputFile[];
  /** Globs (picomatch syntax) relative to the work dir. */
  outputs?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
}
