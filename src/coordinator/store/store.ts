/**
 * The coordinator's state behind one interface; nothing else writes SQL. Methods are synchronous
 * (better-sqlite3 is), and `transaction` groups several writes so a crash never leaves half of
 * them: the scheduler relies on that when it records an attempt together with its task's status.
 */
import type { BuildFile, Plan } from '../../api/plan/types.js';
import type { AuditStore } from './audit.js';
import type { JoinTokenStore } from './join-tokens.js';
import type { SecretsStore } from './secrets.js';
import type { BackupsStore } from './backups.js';
import type { CacheStore } from './cache.js';
import type { HaStateStore } from './ha-state.js';
import type { ReplicationStore } from './replication.js';
import type {
  AgentRow,
  AgentChanges,
  NewAgent,
  ApiToken,
  AttemptRow,
  BuildRow,
  CompileRecord,
  NewJobTask,
  CompileSessionEnd,
  ExtensionRow,
  LogChunk,
  TaskRow,
  User,
} from './types.js';
import type { AttemptStatus, BuildStatus, Role, TaskStatus } from '../../api/status.js';

export interface Store {
  /** Replication to a backup and the merge of a backup's history (see replication.ts). */
  readonly replication: ReplicationStore;
  /** Backups registered with this coordinator as their primary. */
  readonly backups: BackupsStore;
  /** High availability's own state: term, takeover, failback, selection (see ha-state.ts). */
  readonly ha: HaStateStore;
  /** The shared compile cache: entries, manifests, toolchains, uses (see cache.ts). */
  readonly cache: CacheStore;
  /** The audit log of administrative changes, bounded (see audit.ts). */
  readonly audit: AuditStore;
  /** The tokens that admit new agents that dial out (see join-tokens.ts; not replicated). */
  readonly joinTokens: JoinTokenStore;
  /** Secrets, their values sealed (see secrets.ts; the key is not in the store). */
  readonly secrets: SecretsStore;
  /** Runs fn in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T;
  close(): void;

  // users and tokens
  createUser(name: string, role: Role, passwordHash: string): User;
  getUser(name: string): User | undefined;
  getUserById(id: number): User | undefined;
  listUsers(): User[];
  setPassword(name: string, passwordHash: string): void;
  setRole(name: string, role: Role): void;
  deleteUser(name: string): boolean;
  createToken(userId: number, tokenHash: string, expiresAt: string): ApiToken;
  /** The token with this hash if it exists and has not expired; touches lastUsedAt (when a minute old). */
  useToken(tokenHash: string, now: string): { token: ApiToken; user: User } | undefined;
  deleteToken(tokenHash: string): void;
  /** Ends every session and CLI token of a user but the one with hash `keep`; how many ended. */
  deleteTokensOf(userId: number, keep?: string): number;
  deleteExpiredTokens(now: string): number;

  // settings (JSON values)
  getSetting(key: string): unknown;
  setSetting(key: string, value: unknown): void;
  listSettings(): Record<string, unknown>;

  // agents
  addAgent(agent: NewAgent): AgentRow;
  getAgent(name: string): AgentRow | undefined;
  /** The agent that dials out with this id (src/protocol/outbound.ts). */
  getAgentByAgentId(agentId: string): AgentRow | undefined;
  listAgents(): AgentRow[];
  updateAgent(name: string, changes: AgentChanges): AgentRow;
  removeAgent(name: string): boolean;

  // extensions (one row per name: adding a new version replaces the old)
  putExtension(extension: Omit<ExtensionRow, 'addedAt'>): ExtensionRow;
  listExtensions(): ExtensionRow[];
  removeExtension(name: string): boolean;

  // builds, tasks, attempts
  /** Creates the build (queued) and one pending task row per plan task. */
  createBuild(plan: Plan, files: BuildFile[], createdBy: string): BuildRow;
  getBuild(id: number): BuildRow | undefined;
  /**
   * The build with this uid: the same on a primary and its backup, also when a failback gave the
   * build another id (a compile session's client addresses its build by it).
   */
  getBuildByUid(uid: string): BuildRow | undefined;
  /** Newest first; `text`: within the name or the user (any case), or the build's number. */
  listBuilds(filter: {
    status?: BuildStatus;
    limit?: number;
    beforeId?: number;
    text?: string;
  }): BuildRow[];
  /** Builds that are queued or running: what the scheduler works on (and resumes after a restart). */
  listActiveBuilds(): BuildRow[];
  /** How many builds are queued and running, without reading them. */
  countActiveBuilds(): { queued: number; running: number };
  setBuildStatus(
    id: number,
    status: BuildStatus,
    fields?: { startedAt?: string; finishedAt?: string; error?: string | null },
  ): void;

  /**
   * Deletes an ended build with its tasks, attempts and log chunks, in one transaction; each
   * row's deletion replicates to the selected backup (a missing row replicates as a deletion).
   * The blobs only it listed (inputs, outputs) become unreferenced, for the blob sweep. The build
   * as it was; NOT_FOUND without it; BUILD_NOT_ENDED while it is queued, running or an open
   * compile session (cancel it first).
   */
  deleteBuild(id: number): BuildRow;
  /**
   * Ids of ended builds (succeeded, failed, cancelled; never open) that ended before `before`
   * (an ISO stamp; a build without an end counts from its creation), oldest first, at most
   * `limit`: what retention deletes next.
   */
  listBuildsEndedBefore(before: string, limit: number): number[];

  // compile sessions: open builds (issue 13)
  /** Creates an open build, running from now, with no tasks: a compile session's. */
  createOpenBuild(build: { name: string; createdBy: string; kind: 'compile' }): BuildRow;
  /** Builds still open (compile sessions running), oldest first. */
  listOpenBuilds(): BuildRow[];
  /** How many builds of this user are open. */
  countOpenBuilds(createdBy: string): number;
  /**
   * Appends jobs that ran on the client or came from the cache as finished tasks `job-<n>` (n
   * counting on in the build), their times clamped to the session's window (its creation, now).
   * A record naming a remote job (`job`) that ended without a result the client took (failed,
   * cancelled, skipped) becomes that job's row instead. NOT_FOUND without the build;
   * COMPILE_SESSION_CLOSED when it is not open.
   */
  appendRecords(buildId: number, records: readonly CompileRecord[]): TaskRow[];
  /**
   * Appends a remote compile job as task `job-<n>` (placement remote, cache miss) with its own
   * description in `spec`. NOT_FOUND / COMPILE_SESSION_CLOSED as appendRecords; both refuse a
   * build that would hold more than MAX_SESSION_TASKS tasks (VALIDATION_FAILED).
   */
  appendJobTask(buildId: number, task: NewJobTask): TaskRow;
  /**
   * Ends an open build: succeeded iff the command exited 0, else failed with the error given or
   * "the command exited with N". NOT_FOUND / COMPILE_SESSION_CLOSED as appendRecords.
   */
  closeBuild(buildId: number, end: CompileSessionEnd): BuildRow;

  listTasks(buildId: number): TaskRow[];
  getTask(buildId: number, name: string): TaskRow | undefined;
  updateTask(
    buildId: number,
    name: string,
    changes: Partial<
      Pick<
        TaskRow,
        | 'status'
        | 'attempts'
        | 'exitCode'
        | 'agent'
        | 'startedAt'
        | 'finishedAt'
        | 'outputs'
        | 'error'
        | 'cache'
        | 'placement'
      >
    >,
  ): void;

  createAttempt(
    attempt: Omit<AttemptRow, 'id' | 'finishedAt' | 'exitCode' | 'error' | 'nextSeq'>,
  ): AttemptRow;
  getAttemptByAgentTaskId(agentTaskId: string): AttemptRow | undefined;
  listAttempts(buildId: number, taskName?: string): AttemptRow[];
  /** Attempts still marked running (after a restart: the ones to re-attach). */
  listRunningAttempts(): AttemptRow[];
  finishAttempt(
    id: number,
    status: Exclude<AttemptStatus, 'running'>,
    fields: { exitCode?: number | null; error?: string | null; finishedAt: string },
  ): void;
  setAttemptNextSeq(id: number, nextSeq: number): void;

  // logs
  appendLog(chunk: Omit<LogChunk, 'id'>): number;
  /** Chunks of a build (optionally one task) with id > afterId, oldest first, at most `limit`. */
  readLogs(
    buildId: number,
    options: { taskName?: string; afterId?: number; limit?: number },
  ): LogChunk[];
}

export type {
  AgentRow,
  AgentChanges,
  NewAgent,
  ApiToken,
  AttemptRow,
  BuildRow,
  ExtensionRow,
  LogChunk,
  TaskRow,
  TaskStatus,
  User,
};
