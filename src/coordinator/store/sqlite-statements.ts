/**
 * Every SQL statement of the SQLite store, prepared once when the store opens: the scheduler
 * calls some of these thousands of times a second, and preparing is the expensive part.
 */
import type Database from 'better-sqlite3';
import type {
  AgentSql,
  AttemptSql,
  BuildSql,
  ExtensionSql,
  LogSql,
  TaskSql,
  TokenSql,
  UserSql,
} from './sqlite-rows.js';

/** Named parameters; better-sqlite3 binds numbers, strings, bigints, buffers and null. */
export type Params = Record<string, string | number | bigint | Buffer | null>;

/**
 * Fields an UPDATE may change (camelCase field → column). The statement takes @set_<field> (1 or
 * 0) and @<field> for each, so one prepared statement serves every combination of fields, and
 * a field can be set to null as well as left alone.
 */
export const agentPatch = {
  labels: 'labels',
  slots: 'slots',
  fingerprint: 'fingerprint',
  accessKey: 'access_key',
  cores: 'cores',
  host: 'host',
  approved: 'approved',
  facts: 'facts',
} as const;

export const buildPatch = {
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  error: 'error',
} as const;

export const taskPatch = {
  status: 'status',
  attempts: 'attempts',
  exitCode: 'exit_code',
  agent: 'agent',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  outputs: 'outputs',
  error: 'error',
  cache: 'cache',
  placement: 'placement',
} as const;

export const attemptPatch = {
  exitCode: 'exit_code',
  error: 'error',
} as const;

function setClause(patch: Record<string, string>): string {
  return Object.entries(patch)
    .map(([field, column]) => `${column} = iif(@set_${field}, @${field}, ${column})`)
    .join(', ');
}

/** The parameters of a patch UPDATE: fields that are undefined in `values` are left alone. */
export function patchParams(
  patch: Record<string, string>,
  values: Record<string, Params[string] | undefined>,
): Params {
  const params: Params = {};
  for (const field of Object.keys(patch)) {
    const value = values[field];
    params[`set_${field}`] = value === undefined ? 0 : 1;
    params[field] = value ?? null;
  }
  return params;
}

export function prepareStatements(db: Database.Database) {
  const one = <R>(sql: string) => db.prepare<[Params], R>(sql);
  return {
    // users and tokens
    insertUser: one<UserSql>(
      `INSERT INTO users (name, role, password_hash, created_at)
       VALUES (@name, @role, @passwordHash, @createdAt)
       ON CONFLICT (name) DO NOTHING RETURNING *`,
    ),
    userByName: db.prepare<[string], UserSql>('SELECT * FROM users WHERE name = ?'),
    userById: db.prepare<[number], UserSql>('SELECT * FROM users WHERE id = ?'),
    listUsers: db.prepare<[], UserSql>('SELECT * FROM users ORDER BY name'),
    setPassword: db.prepare<[string, string]>('UPDATE users SET password_hash = ? WHERE name = ?'),
    setRole: db.prepare<[string, string]>('UPDATE users SET role = ? WHERE name = ?'),
    deleteUser: db.prepare<[string]>('DELETE FROM users WHERE name = ?'),
    insertToken: one<TokenSql>(
      `INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at)
       VALUES (@userId, @tokenHash, @createdAt, @expiresAt)
       ON CONFLICT (token_hash) DO NOTHING RETURNING *`,
    ),
    // ISO-8601 UTC timestamps compare correctly as text.
    liveToken: db.prepare<[string, string], TokenSql>(
      'SELECT * FROM api_tokens WHERE token_hash = ? AND expires_at > ?',
    ),
    touchToken: db.prepare<[string, number]>('UPDATE api_tokens SET last_used_at = ? WHERE id = ?'),
    deleteToken: db.prepare<[string]>('DELETE FROM api_tokens WHERE token_hash = ?'),
    deleteTokensOf: db.prepare<[number, string]>(
      'DELETE FROM api_tokens WHERE user_id = ? AND token_hash != ?',
    ),
    deleteExpiredTokens: db.prepare<[string]>('DELETE FROM api_tokens WHERE expires_at <= ?'),

    // settings
    getSetting: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
    putSetting: db.prepare<[string, string]>(
      `INSERT INTO settings (key, value) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ),
    deleteSetting: db.prepare<[string]>('DELETE FROM settings WHERE key = ?'),
    listSettings: db.prepare<[], { key: string; value: string }>(
      'SELECT key, value FROM settings ORDER BY key',
    ),

    // agents
    insertAgent: one<AgentSql>(
      `INSERT INTO agents (name, host, port, access_key, fingerprint, tls, labels, slots, created_at,
                           agent_id, approved, facts)
       VALUES (@name, @host, @port, @accessKey, @fingerprint, @tls, @labels, @slots, @createdAt,
               @agentId, @approved, @facts)
       ON CONFLICT (name) DO NOTHING RETURNING *`,
    ),
    agentByName: db.prepare<[string], AgentSql>('SELECT * FROM agents WHERE name = ?'),
    agentByAgentId: db.prepare<[string], AgentSql>('SELECT * FROM agents WHERE agent_id = ?'),
    listAgents: db.prepare<[], AgentSql>('SELECT * FROM agents ORDER BY name'),
    updateAgent: one<AgentSql>(
      `UPDATE agents SET ${setClause(agentPatch)} WHERE name = @name RETURNING *`,
    ),
    deleteAgent: db.prepare<[string]>('DELETE FROM agents WHERE name = ?'),

    // extensions
    putExtension: one<ExtensionSql>(
      `INSERT INTO extensions (name, version, files, added_at)
       VALUES (@name, @version, @files, @addedAt)
       ON CONFLICT (name) DO UPDATE SET
         version = excluded.version, files = excluded.files, added_at = excluded.added_at
       RETURNING *`,
    ),
    listExtensions: db.prepare<[], ExtensionSql>('SELECT * FROM extensions ORDER BY name'),
    deleteExtension: db.prepare<[string]>('DELETE FROM extensions WHERE name = ?'),

    // builds
    insertBuild: one<BuildSql>(
      `INSERT INTO builds (status, plan, files, created_by, created_at, uid)
       VALUES ('queued', @plan, @files, @createdBy, @createdAt, lower(hex(randomblob(16))))
       RETURNING *`,
    ),
    buildById: db.prepare<[number], BuildSql>('SELECT * FROM builds WHERE id = ?'),
    buildByUid: db.prepare<[string], BuildSql>('SELECT * FROM builds WHERE uid = ?'),
    listBuilds: one<BuildSql>(
      'SELECT * FROM builds WHERE id < @beforeId ORDER BY id DESC LIMIT @limit',
    ),
    listBuildsWithStatus: one<BuildSql>(
      `SELECT * FROM builds WHERE status = @status AND id < @beforeId
       ORDER BY id DESC LIMIT @limit`,
    ),
    // A search: the text within the name or the user, or the build's number (status optional).
    searchBuilds: one<BuildSql>(
      `SELECT * FROM builds WHERE id < @beforeId AND (@status IS NULL OR status = @status)
       AND (json_extract(plan, '$.name') LIKE @pattern ESCAPE '\\'
            OR created_by LIKE @pattern ESCAPE '\\' OR CAST(id AS TEXT) = @text)
       ORDER BY id DESC LIMIT @limit`,
    ),
    countBuildsByStatus: db.prepare<[], { status: string; n: number }>(
      `SELECT status, COUNT(*) AS n FROM builds WHERE status IN ('queued', 'running') GROUP BY status`,
    ),
    listActiveBuilds: db.prepare<[], BuildSql>(
      `SELECT * FROM builds WHERE status IN ('queued', 'running') ORDER BY id`,
    ),
    // A build that reaches an end is no longer open (a compile session cancelled like any build).
    setBuildStatus: one(
      `UPDATE builds SET status = @status, ${setClause(buildPatch)},
         open = iif(@status IN ('succeeded', 'failed', 'cancelled'), 0, open)
       WHERE id = @id`,
    ),

    // compile sessions: open builds
    insertOpenBuild: one<BuildSql>(
      `INSERT INTO builds (status, plan, files, created_by, created_at, started_at, uid, kind, open)
       VALUES ('running', @plan, '[]', @createdBy, @createdAt, @createdAt,
               lower(hex(randomblob(16))), @kind, 1)
       RETURNING *`,
    ),
    // Deleting a build: its rows one table at a time (each deletion fires its replication
    // trigger), logs and attempts before the tasks and build they hang from.
    deleteBuildLogs: db.prepare<[number]>('DELETE FROM log_chunks WHERE build_id = ?'),
    deleteBuildAttempts: db.prepare<[number]>('DELETE FROM attempts WHERE build_id = ?'),
    deleteBuildTasks: db.prepare<[number]>('DELETE FROM tasks WHERE build_id = ?'),
    deleteBuild: db.prepare<[number]>('DELETE FROM builds WHERE id = ?'),
    buildsEndedBefore: db.prepare<[string, number], { id: number }>(
      `SELECT id FROM builds
       WHERE status IN ('succeeded', 'failed', 'cancelled') AND open = 0
         AND coalesce(finished_at, created_at) < ?
       ORDER BY id LIMIT ?`,
    ),
    closeOpenBuild: one<BuildSql>(
      `UPDATE builds SET status = @status, finished_at = @finishedAt, error = @error,
         summary = @summary, open = 0
       WHERE id = @id AND open = 1 RETURNING *`,
    ),
    listOpenBuilds: db.prepare<[], BuildSql>('SELECT * FROM builds WHERE open = 1 ORDER BY id'),
    countOpenBuildsOf: db.prepare<[string], { n: number }>(
      'SELECT COUNT(*) AS n FROM builds WHERE open = 1 AND created_by = ?',
    ),
    nextTaskPosition: db.prepare<[number], { next: number }>(
      'SELECT coalesce(max(position), 0) + 1 AS next FROM tasks WHERE build_id = ?',
    ),
    insertFinishedTask: one<TaskSql>(
      `INSERT INTO tasks (build_id, name, position, status, attempts, exit_code, agent,
         started_at, finished_at, error, label, cache, placement, fallback)
       VALUES (@buildId, @name, @position, @status, 0, @exitCode, @agent,
         @startedAt, @finishedAt, @error, @label, @cache, @placement, @fallback)
       RETURNING *`,
    ),

    insertJobTask: one<TaskSql>(
      `INSERT INTO tasks (build_id, name, position, status, finished_at, error, label, cache,
         placement, fallback, spec)
       VALUES (@buildId, @name, @position, @status, @finishedAt, @error, @label, 'miss',
         'remote', @fallback, @spec)
       RETURNING *`,
    ),
    settleJobTask: one<TaskSql>(
      `UPDATE tasks SET status = @status, exit_code = @exitCode, agent = @agent,
         started_at = @startedAt, finished_at = @finishedAt, error = @error, label = @label,
         cache = @cache, placement = @placement, fallback = @fallback
       WHERE build_id = @buildId AND name = @name AND spec IS NOT NULL
         AND placement = 'remote' AND status IN ('succeeded', 'failed', 'cancelled', 'skipped')
       RETURNING *`,
    ),

    // tasks
    insertTask: one(
      `INSERT INTO tasks (build_id, name, position, status)
       VALUES (@buildId, @name, @position, 'pending')`,
    ),
    listTasks: db.prepare<[number], TaskSql>(
      'SELECT * FROM tasks WHERE build_id = ? ORDER BY position',
    ),
    taskByName: db.prepare<[number, string], TaskSql>(
      'SELECT * FROM tasks WHERE build_id = ? AND name = ?',
    ),
    updateTask: one(
      `UPDATE tasks SET ${setClause(taskPatch)} WHERE build_id = @buildId AND name = @name`,
    ),

    // attempts
    insertAttempt: one<AttemptSql>(
      `INSERT INTO attempts (build_id, task_name, number, agent, agent_task_id, status, started_at)
       VALUES (@buildId, @taskName, @number, @agent, @agentTaskId, @status, @startedAt)
       RETURNING *`,
    ),
    attemptByAgentTaskId: db.prepare<[string], AttemptSql>(
      'SELECT * FROM attempts WHERE agent_task_id = ?',
    ),
    listAttempts: db.prepare<[number], AttemptSql>(
      'SELECT * FROM attempts WHERE build_id = ? ORDER BY id',
    ),
    listTaskAttempts: db.prepare<[number, string], AttemptSql>(
      'SELECT * FROM attempts WHERE build_id = ? AND task_name = ? ORDER BY id',
    ),
    listRunningAttempts: db.prepare<[], AttemptSql>(
      `SELECT * FROM attempts WHERE status = 'running' ORDER BY id`,
    ),
    finishAttempt: one(
      `UPDATE attempts SET status = @status, finished_at = @finishedAt, ${setClause(attemptPatch)}
       WHERE id = @id`,
    ),
    setAttemptNextSeq: db.prepare<[number, number]>(
      'UPDATE attempts SET next_seq = ? WHERE id = ?',
    ),

    // logs
    insertLog: one(
      `INSERT INTO log_chunks (build_id, task_name, attempt, stream, data, at)
       VALUES (@buildId, @taskName, @attempt, @stream, @data, @at)`,
    ),
    readLogs: one<LogSql>(
      `SELECT * FROM log_chunks WHERE build_id = @buildId AND id > @afterId
       ORDER BY id LIMIT @limit`,
    ),
    readTaskLogs: one<LogSql>(
      `SELECT * FROM log_chunks WHERE build_id = @buildId AND task_name = @taskName AND id > @afterId
       ORDER BY id LIMIT @limit`,
    ),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
