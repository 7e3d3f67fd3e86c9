/** Builds, their tasks, attempts and logs as the API shows them (/api/v1/builds/…). */
import type { AttemptStatus, BuildStatus, TaskStatus } from '../status.js';

export interface TaskView {
  name: string;
  status: TaskStatus;
  exitCode: number | null;
  agent: string | null;
  attempts: number;
  needs: string[];
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  outputs: { path: string; sha256: string; size: number; mode: number }[];
  error: string | null;
  /** A compile job's command line (null for a plan task). */
  label: string | null;
  /** A compile job's cache result; a `cache: true` plan task's (null for other plan tasks). */
  cache: 'hit' | 'miss' | 'off' | null;
  /**
   * Where a compile job ran: on an agent, on the client, or from the cache; 'cache' for a
   * `cache: true` plan task served from it (null: any other plan task).
   */
  placement: 'remote' | 'local' | 'cache' | null;
  /** Why an infrastructure failure sent a compile job local, e.g. agent-lost (null: none). */
  fallback: string | null;
  /** The names of the secrets the task is given (`secrets:` in its plan); absent: none. */
  secrets?: string[];
}

/** What a compile session did (`muster build`), in numbers. */
export interface CompileSummaryView {
  jobs: number;
  remote: number;
  local: number;
  cacheHits: number;
  fallbacks: number;
}

/** What a build's full view and its line in a list both show. */
interface BuildHeader {
  id: number;
  /** 'plan': from a plan (muster run); 'compile': a compile session's jobs (muster build). */
  kind: 'plan' | 'compile';
  name: string | null;
  status: BuildStatus;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface BuildView extends BuildHeader {
  error: string | null;
  tasks: TaskView[];
  /**
   * A compile session's counts: its client's once closed, counted from its tasks while open
   * (null for a plan build).
   */
  summary: CompileSummaryView | null;
}

export interface BuildSummary extends BuildHeader {
  counts: { total: number; succeeded: number; failed: number; running: number; pending: number };
}

export interface AttemptView {
  task: string;
  number: number;
  agent: string;
  status: AttemptStatus;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  error: string | null;
}

export interface LogChunkView {
  id: number;
  task: string;
  attempt: number;
  stream: 'stdout' | 'stderr' | 'log';
  /** UTF-8 text (invalid sequences replaced). */
  text: string;
  at: string;
}

export interface LogsView {
  chunks: LogChunkView[];
  /** Pass as `after` to continue. */
  next: number;
}
