/**
 * The Store on SQLite (better-sqlite3). One connection per process, in WAL mode so readers never
 * block the writer; statements are prepared once at open (sqlite-statements.ts) and the schema
 * comes from numbered migrations (migrations.ts), applied at open.
 *
 * Conventions of this implementation:
 * - In update methods, a field that is undefined is left as it is; null clears it.
 * - Updating a row that does not exist throws NOT_FOUND; inserting a name that exists, CONFLICT.
 * - setSetting(key, undefined) removes the key (getSetting answers undefined for it, as before
 *   it was ever set).
 */
import Database from 'better-sqlite3';
import { MusterError } from '../../protocol/errors.js';
import type { BuildFile, Plan } from '../../api/plan/types.js';
import { migrations } from './migrations.js';
import { migrate } from './migrator.js';
import {
  toAgent,
  toAttempt,
  toBuild,
  toExtension,
  toLogChunk,
  toTask,
  toToken,
  toUser,
} from './sqlite-rows.js';
import {
  agentPatch,
  attemptPatch,
  buildPatch,
  patchParams,
  prepareStatements,
  taskPatch,
  type Statements,
} from './sqlite-statements.js';
import { AuditStore } from './audit.js';
import { JoinTokenStore } from './join-tokens.js';
import { SecretsStore } from './secrets.js';
import { BackupsStore } from './backups.js';
import { CacheStore } from './cache.js';
import { HaStateStore } from './ha-state.js';
import { ReplicationStore } from './replication.js';
import type { Store } from './store.js';
import { MAX_SESSION_TASKS } from './types.js';
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
import type { AttemptStatus, BuildStatus, Role } from '../../api/status.js';

export interface SqliteStoreOptions {
  /** The clock for createdAt/addedAt stamps (tests pass a fixed one). */
  now?: () => Date;
  /** The audit rows kept at most (default DEFAULT_AUDIT_MAX_ROWS; tests pass a few). */
  auditMaxRows?: number;
}

const BUSY_TIMEOUT_MS = 5000;
/** A token's lastUsedAt is rewritten when it is at least this old. */
const TOKEN_USE_STAMP_MS = 60_000;
const BUILDS_LIMIT = { default: 50, max: 1000 };
const LOGS_LIMIT = { default: 1000, max: 10_000 };

/** Opens (creating if needed) and migrates the database at `file`; ':memory:' for a private one. */
export function openSqliteStore(file: string, options: SqliteStoreOptions = {}): Store {
  const now = options.now ?? (() => new Date());
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    // With WAL, NORMAL loses at most the last transactions on power loss, never consistency.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db, migrations, now);
    return new SqliteStore(db, prepareStatements(db), now, options.auditMaxRows);
  } catch (err) {
    db.close();
    throw err;
  }
}

class SqliteStore implements Store {
  private readonly runner: Database.Transaction<(fn: () => unknown) => unknown>;
  readonly replication: ReplicationStore;
  readonly backups: BackupsStore;
  readonly ha: HaStateStore;
  readonly cache: CacheStore;
  readonly audit: AuditStore;
  readonly joinTokens: JoinTokenStore;
  readonly secrets: SecretsStore;

  constructor(
    private readonly db: Database.Database,
    private readonly sql: Statements,
    private readonly now: () => Date,
    auditMaxRows?: number,
  ) {
    // better-sqlite3 turns a transaction function called inside another into a savepoint.
    this.runner = db.transaction((fn: () => unknown) => fn());
    this.replication = new ReplicationStore(db, (fn) => this.transaction(fn));
    this.backups = new BackupsStore(db);
    this.ha = new HaStateStore(db);
    this.cache = new CacheStore(db, (fn) => this.transaction(fn), now);
    this.audit = new AuditStore(db, (fn) => this.transaction(fn), now, auditMaxRows);
    this.joinTokens = new JoinTokenStore(db, now);
    this.secrets = new SecretsStore(db);
  }

  transaction<T>(fn: () => T): T {
    // IMMEDIATE takes the write lock up front, so a read-then-write never fails half way on BUSY.
    return this.runner.immediate(fn) as T;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // users and tokens

  createUser(name: string, role: Role, passwordHash: string): User {
    const row = this.sql.insertUser.get({ name, role, passwordHash, createdAt: this.stamp() });
    if (row === undefined) throw new MusterError('CONFLICT', `A user named "${name}" exists.`);
    return toUser(row);
  }

  getUser(name: string): User | undefined {
    const row = this.sql.userByName.get(name);
    return row && toUser(row);
  }

  getUserById(id: number): User | undefined {
    const row = this.sql.userById.get(id);
    return row && toUser(row);
  }

  listUsers(): User[] {
    return this.sql.listUsers.all().map(toUser);
  }

  setPassword(name: string, passwordHash: string): void {
    if (this.sql.setPassword.run(passwordHash, name).changes === 0) throw noUser(name);
  }

  setRole(name: string, role: Role): void {
    if (this.sql.setRole.run(role, name).changes === 0) throw noUser(name);
  }

  deleteUser(name: string): boolean {
    return this.sql.deleteUser.run(name).changes > 0;
  }

  createToken(userId: number, tokenHash: string, expiresAt: string): ApiToken {
    return this.transaction(() => {
      if (this.sql.userById.get(userId) === undefined) {
        throw new MusterError('NOT_FOUND', `No user with id ${userId}.`);
      }
      const row = this.sql.insertToken.get({
        userId,
        tokenHash,
        createdAt: this.stamp(),
        expiresAt,
      });
      if (row === undefined) throw new MusterError('CONFLICT', 'A token with this hash exists.');
      return toToken(row);
    });
  }

  useToken(tokenHash: string, now: string): { token: ApiToken; user: User } | undefined {
    // Every request of every client comes here: a read, and a write only when the last use
    // stamped is a minute old (each one a write transaction cost more than the rest of the check).
    const token = this.sql.liveToken.get(tokenHash, now);
    if (token === undefined) return undefined;
    if (token.last_used_at === null || token.last_used_at <= isoBefore(now, TOKEN_USE_STAMP_MS)) {
      this.sql.touchToken.run(now, token.id);
      token.last_used_at = now;
    }
    // Tokens are deleted with their user (ON DELETE CASCADE), so the user is there.
    const user = this.sql.userById.get(token.user_id);
    return user && { token: toToken(token), user: toUser(user) };
  }

  deleteToken(tokenHash: string): void {
    this.sql.deleteToken.run(tokenHash);
  }

  deleteTokensOf(userId: number, keep = ''): number {
    return this.sql.deleteTokensOf.run(userId, keep).changes;
  }

  deleteExpiredTokens(now: string): number {
    return this.sql.deleteExpiredTokens.run(now).changes;
  }

  // settings

  getSetting(key: string): unknown {
    const row = this.sql.getSetting.get(key);
    return row && (JSON.parse(row.value) as unknown);
  }

  setSetting(key: string, value: unknown): void {
    const json = JSON.stringify(value) as string | undefined;
    if (json === undefined) this.sql.deleteSetting.run(key);
    else this.sql.putSetting.run(key, json);
  }

  listSettings(): Record<string, unknown> {
    const settings: Record<string, unknown> = {};
    for (const { key, value } of this.sql.listSettings.all()) {
      settings[key] = JSON.parse(value) as unknown;
    }
    return settings;
  }

  // agents

  addAgent(agent: NewAgent): AgentRow {
    const row = this.sql.insertAgent.get({
      name: agent.name,
      host: agent.host,
      port: agent.port,
      accessKey: agent.accessKey,
      fingerprint: agent.fingerprint,
      tls: agent.tls ? 1 : 0,
      labels: JSON.stringify(agent.labels),
      slots: agent.slots,
      createdAt: this.stamp(),
      agentId: agent.agentId ?? null,
      approved: (agent.approved ?? true) ? 1 : 0,
      facts: agent.facts ? JSON.stringify(agent.facts) : null,
    });
    if (row === undefined) {
      throw new MusterError('CONFLICT', `An agent named "${agent.name}" exists.`);
    }
    return toAgent(row);
  }

  getAgent(name: string): AgentRow | undefined {
    const row = this.sql.agentByName.get(name);
    return row && toAgent(row);
  }

  getAgentByAgentId(agentId: string): AgentRow | undefined {
    const row = this.sql.agentByAgentId.get(agentId);
    return row && toAgent(row);
  }

  listAgents(): AgentRow[] {
    return this.sql.listAgents.all().map(toAgent);
  }

  updateAgent(name: string, changes: AgentChanges): AgentRow {
    const row = this.sql.updateAgent.get({
      name,
      ...patchParams(agentPatch, {
        ...changes,
        labels: changes.labels && JSON.stringify(changes.labels),
        approved: changes.approved === undefined ? undefined : changes.approved ? 1 : 0,
        facts: changes.facts && JSON.stringify(changes.facts),
      }),
    });
    if (row === undefined) throw new MusterError('NOT_FOUND', `No agent named "${name}".`);
    return toAgent(row);
  }

  removeAgent(name: string): boolean {
    return this.sql.deleteAgent.run(name).changes > 0;
  }

  // extensions

  putExtension(extension: Omit<ExtensionRow, 'addedAt'>): ExtensionRow {
    const row = this.sql.putExtension.get({
      name: extension.name,
      version: extension.version,
      files: JSON.stringify(extension.files),
      addedAt: this.stamp(),
    });
    // An upsert with RETURNING always returns the row.
    return toExtension(row!);
  }

  listExtensions(): ExtensionRow[] {
    return this.sql.listExtensions.all().map(toExtension);
  }

  removeExtension(name: string): boolean {
    return this.sql.deleteExtension.run(name).changes > 0;
  }

  // builds, tasks, attempts

  createBuild(plan: Plan, files: BuildFile[], createdBy: string): BuildRow {
    return this.transaction(() => {
      const build = this.sql.insertBuild.get({
        plan: JSON.stringify(plan),
        files: JSON.stringify(files),
        createdBy,
        createdAt: this.stamp(),
      })!;
      plan.tasks.forEach((task, position) => {
        this.sql.insertTask.run({ buildId: build.id, name: task.name, position });
      });
      return toBuild(build);
    });
  }

  getBuild(id: number): BuildRow | undefined {
    const row = this.sql.buildById.get(id);
    return row && toBuild(row);
  }

  getBuildByUid(uid: string): BuildRow | undefined {
    const row = this.sql.buildByUid.get(uid);
    return row && toBuild(row);
  }

  listBuilds(filter: {
    status?: BuildStatus;
    limit?: number;
    beforeId?: number;
    text?: string;
  }): BuildRow[] {
    const params = {
      beforeId: filter.beforeId ?? Number.MAX_SAFE_INTEGER,
      limit: clampLimit(filter.limit, BUILDS_LIMIT),
    };
    if (filter.text !== undefined && filter.text !== '') {
      const escaped = filter.text.replace(/[\\%_]/g, (c) => `\\${c}`);
      return this.sql.searchBuilds
        .all({
          ...params,
          status: filter.status ?? null,
          pattern: `%${escaped}%`,
          text: filter.text,
        })
        .map(toBuild);
    }
    const rows =
      filter.status === undefined
        ? this.sql.listBuilds.all(params)
        : this.sql.listBuildsWithStatus.all({ ...params, status: filter.status });
    return rows.map(toBuild);
  }

  countActiveBuilds(): { queued: number; running: number } {
    const counts = { queued: 0, running: 0 };
    for (const { status, n } of this.sql.countBuildsByStatus.all()) {
      if (status === 'queued' || status === 'running') counts[status] = n;
    }
    return counts;
  }

  listActiveBuilds(): BuildRow[] {
    return this.sql.listActiveBuilds.all().map(toBuild);
  }

  setBuildStatus(
    id: number,
    status: BuildStatus,
    fields: { startedAt?: string; finishedAt?: string; error?: string | null } = {},
  ): void {
    const result = this.sql.setBuildStatus.run({ id, status, ...patchParams(buildPatch, fields) });
    if (result.changes === 0) throw new MusterError('NOT_FOUND', `No build ${id}.`);
  }

  deleteBuild(id: number): BuildRow {
    return this.transaction(() => {
      const row = this.sql.buildById.get(id);
      if (row === undefined) throw new MusterError('NOT_FOUND', `No build ${id}.`);
      if (row.open === 1 || row.status === 'queued' || row.status === 'running')
        throw new MusterError(
          'BUILD_NOT_ENDED',
          `Build ${id} is ${row.open === 1 ? 'an open compile session' : row.status}: cancel it first (muster builds cancel ${id}).`,
          { buildId: id, status: row.status },
        );
      this.sql.deleteBuildLogs.run(id);
      this.sql.deleteBuildAttempts.run(id);
      this.sql.deleteBuildTasks.run(id);
      this.sql.deleteBuild.run(id);
      return toBuild(row);
    });
  }

  listBuildsEndedBefore(before: string, limit: number): number[] {
    return this.sql.buildsEndedBefore.all(before, limit).map((row) => row.id);
  }

  // compile sessions

  createOpenBuild(build: { name: string; createdBy: string; kind: 'compile' }): BuildRow {
    const plan: Plan = { name: build.name, tasks: [] };
    return toBuild(
      this.sql.insertOpenBuild.get({
        plan: JSON.stringify(plan),
        createdBy: build.createdBy,
        createdAt: this.stamp(),
        kind: build.kind,
      })!,
    );
  }

  listOpenBuilds(): BuildRow[] {
    return this.sql.listOpenBuilds.all().map(toBuild);
  }

  countOpenBuilds(createdBy: string): number {
    return this.sql.countOpenBuildsOf.get(createdBy)?.n ?? 0;
  }

  appendRecords(buildId: number, records: readonly CompileRecord[]): TaskRow[] {
    return this.transaction(() => {
      const build = this.openBuild(buildId);
      const from = Date.parse(build.createdAt);
      const to = Math.max(from, this.now().getTime());
      let position = this.nextPosition(buildId, records.length);
      return records.map((record) => {
        // A client's clock may be off, or lie: the job ran while the session was open.
        const started = clamp(record.startedAt, from, to);
        const finished = clamp(started + record.durationMs, started, to);
        const ok = record.exitCode === 0;
        const fields = {
          buildId,
          status: ok ? 'succeeded' : 'failed',
          exitCode: record.exitCode,
          agent: record.placement,
          startedAt: new Date(started).toISOString(),
          finishedAt: new Date(finished).toISOString(),
          error: ok
            ? null
            : record.exitCode === null
              ? 'a signal ended the compiler'
              : `the compiler exited with ${record.exitCode}`,
          label: record.label,
          cache: record.cache,
          placement: record.placement,
          fallback: record.fallback ?? null,
        };
        // The remote job it settles becomes the record (its attempts stay): one row per
        // compile, also for a job that succeeded but whose result the client did not take (it
        // printed warnings: compiled here to show them). A job still queued or running, one
        // already settled, or not one of this build's, gets a new row instead.
        const settled =
          record.job === undefined
            ? undefined
            : this.sql.settleJobTask.get({ ...fields, name: record.job });
        if (settled !== undefined) return toTask(settled);
        const row = this.sql.insertFinishedTask.get({
          ...fields,
          name: `job-${position}`,
          position,
        })!;
        position++;
        return toTask(row);
      });
    });
  }

  appendJobTask(buildId: number, task: NewJobTask): TaskRow {
    return this.transaction(() => {
      this.openBuild(buildId);
      const position = this.nextPosition(buildId, 1);
      return toTask(
        this.sql.insertJobTask.get({
          buildId,
          name: `job-${position}`,
          position,
          status: task.status,
          finishedAt: task.status === 'skipped' ? this.stamp() : null,
          error: task.error ?? null,
          label: task.label,
          fallback: task.fallback ?? null,
          spec: task.spec,
        })!,
      );
    });
  }

  /** The position of the next task of an open build, if `adding` more fit under the cap. */
  private nextPosition(buildId: number, adding: number): number {
    const next = this.sql.nextTaskPosition.get(buildId)?.next ?? 1;
    if (next - 1 + adding > MAX_SESSION_TASKS)
      throw new MusterError(
        'VALIDATION_FAILED',
        `compile session ${buildId} has ${next - 1} jobs, and keeps at most ${MAX_SESSION_TASKS}: open another session`,
        { max: MAX_SESSION_TASKS },
      );
    return next;
  }

  closeBuild(buildId: number, end: CompileSessionEnd): BuildRow {
    return this.transaction(() => {
      this.openBuild(buildId);
      const ok = end.exitCode === 0 && end.error === undefined;
      const error = ok
        ? null
        : (end.error ??
          (end.exitCode === null
            ? 'a signal ended the command'
            : `the command exited with ${end.exitCode}`));
      return toBuild(
        this.sql.closeOpenBuild.get({
          id: buildId,
          status: ok ? 'succeeded' : 'failed',
          finishedAt: this.stamp(),
          error,
          summary: end.summary === null ? null : JSON.stringify(end.summary),
        })!,
      );
    });
  }

  /** The build if it is open; NOT_FOUND or COMPILE_SESSION_CLOSED. */
  private openBuild(buildId: number): BuildRow {
    const row = this.sql.buildById.get(buildId);
    if (row === undefined) throw new MusterError('NOT_FOUND', `No build ${buildId}.`);
    if (row.open !== 1)
      throw new MusterError(
        'COMPILE_SESSION_CLOSED',
        `Build ${buildId} is not an open compile session (it is ${row.status}).`,
        { buildId, status: row.status },
      );
    return toBuild(row);
  }

  listTasks(buildId: number): TaskRow[] {
    return this.sql.listTasks.all(buildId).map(toTask);
  }

  getTask(buildId: number, name: string): TaskRow | undefined {
    const row = this.sql.taskByName.get(buildId, name);
    return row && toTask(row);
  }

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
  ): void {
    const result = this.sql.updateTask.run({
      buildId,
      name,
      ...patchParams(taskPatch, {
        ...changes,
        outputs: changes.outputs && JSON.stringify(changes.outputs),
      }),
    });
    if (result.changes === 0) {
      throw new MusterError('NOT_FOUND', `No task "${name}" in build ${buildId}.`);
    }
  }

  createAttempt(
    attempt: Omit<AttemptRow, 'id' | 'finishedAt' | 'exitCode' | 'error' | 'nextSeq'>,
  ): AttemptRow {
    const row = this.sql.insertAttempt.get({
      buildId: attempt.buildId,
      taskName: attempt.taskName,
      number: attempt.number,
      agent: attempt.agent,
      agentTaskId: attempt.agentTaskId,
      status: attempt.status,
      startedAt: attempt.startedAt,
    });
    return toAttempt(row!);
  }

  getAttemptByAgentTaskId(agentTaskId: string): AttemptRow | undefined {
    const row = this.sql.attemptByAgentTaskId.get(agentTaskId);
    return row && toAttempt(row);
  }

  listAttempts(buildId: number, taskName?: string): AttemptRow[] {
    const rows =
      taskName === undefined
        ? this.sql.listAttempts.all(buildId)
        : this.sql.listTaskAttempts.all(buildId, taskName);
    return rows.map(toAttempt);
  }

  listRunningAttempts(): AttemptRow[] {
    return this.sql.listRunningAttempts.all().map(toAttempt);
  }

  finishAttempt(
    id: number,
    status: Exclude<AttemptStatus, 'running'>,
    fields: { exitCode?: number | null; error?: string | null; finishedAt: string },
  ): void {
    const result = this.sql.finishAttempt.run({
      id,
      status,
      finishedAt: fields.finishedAt,
      ...patchParams(attemptPatch, fields),
    });
    if (result.changes === 0) throw noAttempt(id);
  }

  setAttemptNextSeq(id: number, nextSeq: number): void {
    if (this.sql.setAttemptNextSeq.run(nextSeq, id).changes === 0) throw noAttempt(id);
  }

  // logs

  appendLog(chunk: Omit<LogChunk, 'id'>): number {
    const result = this.sql.insertLog.run({
      buildId: chunk.buildId,
      taskName: chunk.taskName,
      attempt: chunk.attempt,
      stream: chunk.stream,
      data: chunk.data,
      at: chunk.at,
    });
    return Number(result.lastInsertRowid);
  }

  readLogs(
    buildId: number,
    options: { taskName?: string; afterId?: number; limit?: number },
  ): LogChunk[] {
    const params = {
      buildId,
      afterId: options.afterId ?? 0,
      limit: clampLimit(options.limit, LOGS_LIMIT),
    };
    const rows =
      options.taskName === undefined
        ? this.sql.readLogs.all(params)
        : this.sql.readTaskLogs.all({ ...params, taskName: options.taskName });
    return rows.map(toLogChunk);
  }

  private stamp(): string {
    return this.now().toISOString();
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max);
}

function clampLimit(limit: number | undefined, bounds: { default: number; max: number }): number {
  if (limit === undefined || !Number.isFinite(limit)) return bounds.default;
  return Math.min(Math.max(Math.trunc(limit), 1), bounds.max);
}

function noUser(name: string): MusterError {
  return new MusterError('NOT_FOUND', `No user named "${name}".`);
}

function noAttempt(id: number): MusterError {
  return new MusterError('NOT_FOUND', `No attempt ${id}.`);
}

/** The ISO-8601 stamp `ms` before `iso` (stamps compare as text); `iso` itself if unreadable. */
function isoBefore(iso: string, ms: number): string {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? iso : new Date(at - ms).toISOString();
}
