/** Rows of the coordinator's state, as the rest of the coordinator sees them (never SQL). */
import type { AgentFacts } from '../../protocol/outbound.js';
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
  /**
   * An agent that dials out (src/protocol/outbound.ts): the id it connects with; null for an
   * agent this coordinator dials at host:port. For one that dials out, host is the address it
   * last connected from and port 0.
   */
  agentId: string | null;
  /** False while an agent that joined with a token waits for an admin's approval. */
  approved: boolean;
  /** What an agent that dials out said of its machine when it last connected. */
  facts: AgentFacts | null;
}

/** An agent as added: what the store fills in itself left out; outbound fields optional. */
export type NewAgent = Omit<AgentRow, 'createdAt' | 'cores' | 'agentId' | 'approved' | 'facts'> &
  Partial<Pick<AgentRow, 'agentId' | 'approved' | 'facts'>>;

export type AgentChanges = Partial<
  Pick<
    AgentRow,
    'labels' | 'slots' | 'fingerprint' | 'accessKey' | 'cores' | 'host' | 'approved' | 'facts'
  >
>;

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
  /** 'plan': from a plan (muster run); 'compile': a compile session's jobs (muster build). */
  kind: BuildKind;
  /** A compile session still running: not finished while open, whatever its tasks. */
  open: boolean;
  /** A closed compile session's counts, as its client reported them (null otherwise). */
  summary: CompileSummary | null;
}

export type BuildKind = 'plan' | 'compile';

/** What a compile session did, in numbers (the client's `muster build` summary). */
export interface CompileSummary {
  jobs: number;
  remote: number;
  local: number;
  cacheHits: number;
  fallbacks: number;
}

/** One job of a compile session that ran on the client or came from the cache. */
export interface CompileRecord {
  label: string;
  placement: 'local' | 'cache';
  cache: 'hit' | 'miss' | 'off';
  /** null: a signal ended it. */
  exitCode: number | null;
  /** Milliseconds since the epoch, by the client's clock (clamped to the session's window). */
  startedAt: number;
  durationMs: number;
  /** Why an infrastructure failure sent it local. */
  fallback?: string | undefined;
  /**
   * The remote job (`job-N`) this record settles: that job's row becomes the record once it
   * ended (the client compiled here after it: failed, cancelled, skipped, or succeeded with
   * messages or a result it did not take); a job still queued or running gets a new row.
   */
  job?: string | undefined;
}

/** Tasks one compile session keeps at most (records and jobs): no client grows it without bound. */
export const MAX_SESSION_TASKS = 100_000;

/** A remote compile job appended to an open build: to run (queued), or not started (skipped). */
export interface NewJobTask {
  label: string;
  /**
   * The task's own description (JSON): what the scheduler runs; for a job not started, only
   * `{ toolchain }` (a job refused at once keeps none of its arguments).
   */
  spec: string;
  status: 'queued' | 'skipped';
  /** With skipped: why it did not start (words), and the reason as a fallback. */
  error?: string | undefined;
  fallback?: string | undefined;
}

/** How a compile session ends: its command's exit code (null: a signal), or an error of ours. */
export interface CompileSessionEnd {
  exitCode: number | null;
  summary: CompileSummary | null;
  /** Overrides the error derived from the exit code ("the client went away"). */
  error?: string;
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
  /** A compile job's command line (null for a plan task). */
  label: string | null;
  /** A compile job's cache result; a `cache: true` plan task's (null for other plan tasks). */
  cache: 'hit' | 'miss' | 'off' | null;
  /** Where a compile job ran; 'cache' for a `cache: true` plan task served (else null). */
  placement: 'remote' | 'local' | 'cache' | null;
  /** Why an infrastructure failure sent a compile job local (null: none did). */
  fallback: string | null;
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

/** A blob a cache entry refers to. */
export interface CacheBlob {
  sha256: string;
  size: number;
}

/** One output of a cache entry: `name` is 'object' or 'depfile' for a compile, a path for a task. */
export interface CacheOutput extends CacheBlob {
  name: string;
  mode: number;
}

/**
 * A cached result (cache.ts): immutable once written, removed only by eviction. Every blob it
 * names was in the blob store, with its size, when it was written.
 */
export interface CacheEntryRow {
  /** sha256 hex: a preprocessor key, a direct-mode result key or a plan task's key. */
  key: string;
  kind: 'compile' | 'task';
  outputs: CacheOutput[];
  /** The compile's stderr, replayed on a hit (null: it printed nothing). */
  stderr: CacheBlob | null;
  exitCode: number;
  /** Bytes of every blob it names: what it counts against Cache.MaxBytes. */
  size: number;
  /** The toolchain id of a compile (null for a task). */
  toolchain: string | null;
  /** 'client': a user's machine reported it; 'agent': this coordinator ran it on an agent. */
  source: 'client' | 'agent';
  /** The build it was made in (its uid: the same across a primary and its backup). */
  buildUid: string | null;
  /** The user who stored it. */
  createdBy: string;
  createdAt: string;
}

/** One line of a direct key's manifest: the result that holds while each include is unchanged. */
export interface CacheManifestLine {
  direct: string;
  /** [path, sha256] of every file the compile read besides its source, in the compiler's order. */
  includes: [string, string][];
  /** The key of the cache entry it leads to. */
  entry: string;
  createdBy: string;
  createdAt: string;
}

/** A compiler by the hash of its programs (see src/cli/cc/toolchain.ts for how the id is made). */
export interface ToolchainRow {
  /** sha256 hex over its files and description. */
  id: string;
  /** Its files as agents lay them out under toolchains/<id>/. */
  files: BuildFile[];
  /** What the client said about it (driver, triple, version, glibc…), a JSON object. */
  info: Record<string, unknown>;
  createdBy: string;
  createdAt: string;
  /** Its last use: a compile job that named it, or its registration (stamped at most every 10 minutes). */
  lastUsedAt: string;
  /** The bytes of its files. */
  bytes: number;
}

/** A toolchain without its file list: what choosing the shipped ones and listing them need. */
export type ToolchainSummary = Omit<ToolchainRow, 'files'> & { files: number };

/** What a caller gives to store a row; the store adds the size and the stamp. */
export type NewCacheEntry = Omit<CacheEntryRow, 'size' | 'createdAt'>;
export type NewManifestLine = Omit<CacheManifestLine, 'createdAt'>;
export type NewToolchain = Omit<ToolchainRow, 'createdAt' | 'lastUsedAt' | 'bytes'> & {
  /** A failback's row keeps the last use it had on the backup; else the registration. */
  lastUsedAt?: string;
};

/** The size of a blob in the blob store, or undefined when it is not there. */
export type BlobSizeOf = (sha256: string) => number | undefined;
