/**
 * Rows as SQLite returns them (snake_case, JSON as text, booleans as 0/1) and their conversion to
 * the rows the rest of the coordinator sees (types.ts). Only the SQLite store uses this file.
 */
import type { AgentFacts } from '../../protocol/outbound.js';
import type { BuildFile, Plan } from '../../api/plan/types.js';
import type {
  AgentRow,
  ApiToken,
  AttemptRow,
  BuildKind,
  BuildRow,
  CompileSummary,
  ExtensionRow,
  LogChunk,
  OutputFile,
  TaskRow,
  User,
} from './types.js';
import type { AttemptStatus, BuildStatus, Role, TaskStatus } from '../../api/status.js';

export interface UserSql {
  id: number;
  name: string;
  role: Role;
  password_hash: string;
  created_at: string;
}

export interface TokenSql {
  id: number;
  user_id: number;
  token_hash: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
}

export interface AgentSql {
  name: string;
  host: string;
  port: number;
  access_key: string;
  fingerprint: string | null;
  tls: 0 | 1;
  labels: string;
  slots: number | null;
  created_at: string;
  cores: number | null;
  agent_id: string | null;
  approved: 0 | 1;
  facts: string | null;
}

export interface ExtensionSql {
  name: string;
  version: string;
  files: string;
  added_at: string;
}

export interface BuildSql {
  id: number;
  status: BuildStatus;
  plan: string;
  files: string;
  created_by: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  uid: string;
  kind: BuildKind;
  open: 0 | 1;
  summary: string | null;
}

export interface TaskSql {
  build_id: number;
  name: string;
  position: number;
  status: TaskStatus;
  attempts: number;
  exit_code: number | null;
  agent: string | null;
  started_at: string | null;
  finished_at: string | null;
  outputs: string;
  error: string | null;
  label: string | null;
  cache: TaskRow['cache'];
  placement: TaskRow['placement'];
  fallback: string | null;
  spec: string | null;
}

export interface AttemptSql {
  id: number;
  build_id: number;
  task_name: string;
  number: number;
  agent: string;
  agent_task_id: string;
  status: AttemptStatus;
  started_at: string;
  finished_at: string | null;
  exit_code: number | null;
  error: string | null;
  next_seq: number;
}

export interface LogSql {
  id: number;
  build_id: number;
  task_name: string;
  attempt: number;
  stream: LogChunk['stream'];
  data: Buffer;
  at: string;
}

export function toUser(row: UserSql): User {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    passwordHash: row.password_hash,
    createdAt: row.created_at,
  };
}

export function toToken(row: TokenSql): ApiToken {
  return {
    id: row.id,
    userId: row.user_id,
    tokenHash: row.token_hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
  };
}

export function toAgent(row: AgentSql): AgentRow {
  return {
    name: row.name,
    host: row.host,
    port: row.port,
    accessKey: row.access_key,
    fingerprint: row.fingerprint,
    tls: row.tls === 1,
    labels: JSON.parse(row.labels) as string[],
    slots: row.slots,
    cores: row.cores,
    createdAt: row.created_at,
    agentId: row.agent_id,
    approved: row.approved === 1,
    facts: row.facts === null ? null : (JSON.parse(row.facts) as AgentFacts),
  };
}

export function toExtension(row: ExtensionSql): ExtensionRow {
  return {
    name: row.name,
    version: row.version,
    files: JSON.parse(row.files) as BuildFile[],
    addedAt: row.added_at,
  };
}

export function toBuild(row: BuildSql): BuildRow {
  return {
    id: row.id,
    uid: row.uid,
    status: row.status,
    plan: JSON.parse(row.plan) as Plan,
    files: JSON.parse(row.files) as BuildFile[],
    createdBy: row.created_by,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
    kind: row.kind,
    open: row.open === 1,
    summary: row.summary === null ? null : (JSON.parse(row.summary) as CompileSummary),
  };
}

export function toTask(row: TaskSql): TaskRow {
  return {
    buildId: row.build_id,
    name: row.name,
    status: row.status,
    attempts: row.attempts,
    exitCode: row.exit_code,
    agent: row.agent,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    outputs: JSON.parse(row.outputs) as OutputFile[],
    error: row.error,
    label: row.label,
    cache: row.cache,
    placement: row.placement,
    fallback: row.fallback,
  };
}

export function toAttempt(row: AttemptSql): AttemptRow {
  return {
    id: row.id,
    buildId: row.build_id,
    taskName: row.task_name,
    number: row.number,
    agent: row.agent,
    agentTaskId: row.agent_task_id,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    exitCode: row.exit_code,
    error: row.error,
    nextSeq: row.next_seq,
  };
}

export function toLogChunk(row: LogSql): LogChunk {
  return {
    buildId: row.build_id,
    taskName: row.task_name,
    attempt: row.attempt,
    id: row.id,
    stream: row.stream,
    data: row.data,
    at: row.at,
  };
}
