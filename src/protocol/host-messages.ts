/**
 * The IPC between the agent and a host process it started (child_process.fork with
 * serialization 'advanced', so Buffers cross as Buffers). The agent core is upgraded rarely and
 * hosts of any version run under it, so this layer only ever gains optional fields.
 *
 * The host gets, in its environment:
 *   MUSTER_HOST_PROTOCOL  "1"
 *   MUSTER_BUNDLE_DIR     the materialised version directory (host runtime + extensions/)
 *   MUSTER_BLOB_DIR       the agent's blob store: <dir>/<sha256[0..2]>/<sha256>, read-only files;
 *                         new blobs are written to <dir>/.incoming/<unique> then renamed in place.
 *                         With task users, the instance's own view of the store, laid out alike:
 *                         it holds the inputs of the tasks that run, not the whole store, and
 *                         the agent verifies what a host puts there (agent/blob-view.ts).
 *   HOME, TMPDIR, USER, LOGNAME   with task users: the instance's user and its own dirs
 */
import type { OutputStream, TaskInputFile, TaskResult } from './task-types.js';

export const HOST_PROTOCOL = 1;

export interface HostStartMessage {
  t: 'start';
  taskId: string;
  extension: string;
  operation: string;
  input: unknown;
  inputs: TaskInputFile[];
  outputs: string[];
  env: Record<string, string>;
  timeoutMs?: number;
  /**
   * Absolute path of the task's own work dir. The host creates it when the task first uses it
   * (inputs, outputs, or an operation reading ctx.workDir); the agent removes it on release.
   */
  workDir: string;
}

export type AgentToHost = HostStartMessage | { t: 'cancel'; taskId: string } | { t: 'shutdown' };

export interface HostExtensionInfo {
  name: string;
  version: string;
  operations: string[];
}

export type HostToAgent =
  | { t: 'ready'; protocol: number; runtimeVersion: string; extensions: HostExtensionInfo[] }
  | { t: 'output'; taskId: string; stream: OutputStream; data: Uint8Array }
  /** A process group the task started: the agent kills it if the host dies. */
  | { t: 'process'; taskId: string; pid: number }
  | { t: 'process-exit'; taskId: string; pid: number }
  | { t: 'done'; taskId: string; result: TaskResult }
  /** The host cannot go on (for example an extension failed to load); it exits after this. */
  | { t: 'fatal'; code: string; message: string };
