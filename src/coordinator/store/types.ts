/** Rows of the coordinator's state, as the rest of the coordinator sees them (never SQL). */
import type { AttemptStatus, BuildStatus, Role, TaskStatus } from '../../api/status.js';
import type { BuildFile, Plan } from '../../api/plan/types.js';

export interface User {
  id: number;
  name: string;
  role: Role;
  /** scrypt: "scrypt$N$r$p$salt(b64)$hash(b64)". */
  passwordHash: string;
  createdAt: string;
}

export interface ApiToken {
  id: number;
  userId: number;
  /** SHA-256 hex of the token; the token itself is shown once and never stored. */
  tokenHash: string;
  createdAt: string;
  expiresAt: string;
  lastUsedAt: string | null;
}

export interface AgentRow {
  name: string;
  host: string;
  port: number;
  accessKey: string;
  /** Pinned SHA-256 fingerprint (colon hex), or null with tls=false or a CA. */
  fingerprint: string | null;
  tls: boolean;
  labels: string[];
  /** Null: as many as the agent's cores. */
  slots: number | null;
  /** The cores the agent reported when it last connected (null: never connected). */
  cores: number | null;
  createdAt: string;
}

export interface ExtensionRow {
  name: string;
  version: string;
  /** The extension's files, stored as blobs. */
  files: BuildFile[];
  addedAt: string;
}

export interface BuildRow {
  id: number;
  /** Unique across the cluster: a primary and its backup may give two builds one id. */
  uid: string;
  status: BuildStatus;
  plan: Plan;
  files: BuildFile[];
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Why it failed or was cancelled, in words. */
  error: string | null;
}

export interface OutputFile {
  path: string;
  sha256: string;
  size: number;
  mode: number;
}

export interface TaskRow {
  buildId: number;
  name: string;
  status: TaskStatus;
  attempts: number;
  exitCode: number | null;
  /** Agent of the latest attempt. */
  agent: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  outputs: OutputFile[];
  error: string | null;
}

export interface AttemptRow {
  id: number;
  buildId: number;
  taskName: string;
  number: number;
  agent: string;
  /** The task id on the agent: unique per attempt. */
  agentTaskId: string;
  status: AttemptStatus;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  error: string | null;
  /** Next output seq expected from the agent (for re-attach). */
  nextSeq: number;
}

export interface LogChunk {
  buildId: number;
  taskName: string;
  attempt: number;
  /** Monotonic per build: the position in the build's whole log. */
  id: number;
  stream: 'stdout' | 'stderr' | 'log';
  data: Buffer;
  at: string;
}
