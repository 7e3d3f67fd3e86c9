/**
 * Merging a build that a backup ran back into the primary's store, as a join that only moves
 * forward: either side may hold the newer view of a row (the backup ran the build last, but the
 * primary may have recorded things the backup never received before it died, or kept running a
 * build the backup only held a stale copy of), so each row keeps whichever side got further.
 *
 * - Build: matched by uid; a new one keeps its id when free, else gets the next. Status moves
 *   queued → running → finished; the further one wins (with a compile session's open flag and
 *   summary: a session the backup closed is closed here).
 * - Task: (attempts, status rank) decides; pending < queued < running < finished. In a compile
 *   session the names are numbers each side hands out (`job-N`): both sides may have given one
 *   to a different job the other never received (records sent to the primary while it took the
 *   history back, or that had not reached the backup when the primary died). Such a job of the
 *   backup's (another spec, or for a record another label or times) is added under the next
 *   number, with its attempts and logs, or found where an earlier merge of the same history put
 *   it — never dropped.
 * - Attempt: matched by agent task id; a finished one beats a running or lost one. A new attempt whose
 *   number is taken (by one the backup never heard of) gets the next number.
 * - Log chunks: appended (the caller passes each chunk once).
 * Afterwards every task's attempt counter is at least its highest attempt number, so the next
 * dispatch never reuses one.
 */
import type Database from 'better-sqlite3';
import type { BuildHistory, WireRow } from './replication.js';

const BUILD_RANK: Record<string, number> = { queued: 0, running: 1 };
const TASK_RANK: Record<string, number> = { pending: 0, queued: 1, running: 2 };
const FINISHED = 3;

function buildRank(status: unknown): number {
  return BUILD_RANK[String(status)] ?? 2;
}

function taskProgress(row: Record<string, unknown>): number {
  return Number(row.attempts) * 10 + (TASK_RANK[String(row.status)] ?? FINISHED);
}

export function mergeBuild(
  db: Database.Database,
  history: BuildHistory,
  appendLogs: WireRow[],
): number {
  const remote = history.build;
  const uid = String(remote.uid);
  const local = db.prepare('SELECT id, status FROM builds WHERE uid = ?').get(uid) as
    { id: number; status: string } | undefined;
  let id: number;
  if (local) {
    id = local.id;
    if (buildRank(remote.status) > buildRank(local.status)) {
      // A compile session the backup closed ends here too, with its summary.
      db.prepare(
        `UPDATE builds SET status = @status, started_at = @started_at,
         finished_at = @finished_at, error = @error, open = @open, summary = @summary
         WHERE id = @id`,
      ).run({
        status: remote.status,
        started_at: remote.started_at,
        finished_at: remote.finished_at,
        error: remote.error,
        open: remote.open ?? 0,
        summary: remote.summary ?? null,
        id,
      });
    }
  } else {
    const taken = db.prepare('SELECT 1 FROM builds WHERE id = ?').get(remote.id) !== undefined;
    const values = {
      status: remote.status,
      plan: remote.plan,
      files: remote.files,
      created_by: remote.created_by,
      created_at: remote.created_at,
      started_at: remote.started_at,
      finished_at: remote.finished_at,
      error: remote.error,
      uid,
      kind: remote.kind ?? 'plan',
      open: remote.open ?? 0,
      summary: remote.summary ?? null,
    };
    const insert = db.prepare(
      `INSERT INTO builds (${taken ? '' : 'id, '}status, plan, files, created_by, created_at,
         started_at, finished_at, error, uid, kind, open, summary)
       VALUES (${taken ? '' : '@id, '}@status, @plan, @files, @created_by, @created_at,
         @started_at, @finished_at, @error, @uid, @kind, @open, @summary) RETURNING id`,
    );
    id = (insert.get(taken ? values : { ...values, id: remote.id }) as { id: number }).id;
  }
  const compile = kindOf(db, id) === 'compile';
  const renamed = mergeTasks(db, id, history.tasks, compile);
  const nameHere = (name: unknown): unknown => renamed.get(String(name)) ?? name;
  mergeAttempts(
    db,
    id,
    history.attempts.map((a) => ({ ...a, task_name: nameHere(a.task_name) })),
  );
  const insertLog = db.prepare(
    `INSERT INTO log_chunks (build_id, task_name, attempt, stream, data, at)
     VALUES (?, ?, ?, ?, ?, ?)`,
  );
  for (const chunk of appendLogs) {
    const data = (chunk.data as { $b64?: unknown } | null)?.$b64;
    insertLog.run(
      id,
      nameHere(chunk.task_name),
      chunk.attempt,
      chunk.stream,
      Buffer.from(typeof data === 'string' ? data : '', 'base64'),
      chunk.at,
    );
  }
  db.prepare(
    `UPDATE tasks SET attempts = (SELECT max(number) FROM attempts a
       WHERE a.build_id = tasks.build_id AND a.task_name = tasks.name)
     WHERE build_id = ? AND attempts < (SELECT coalesce(max(number), 0) FROM attempts a
       WHERE a.build_id = tasks.build_id AND a.task_name = tasks.name)`,
  ).run(id);
  return id;
}

function kindOf(db: Database.Database, buildId: number): string {
  const row = db.prepare('SELECT kind FROM builds WHERE id = ?').get(buildId) as
    { kind: string } | undefined;
  return row?.kind ?? 'plan';
}

/** A task row as far as the merge compares it. */
interface TaskHere {
  name: string;
  attempts: number;
  status: string;
  label: string | null;
  spec: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/**
 * Whether two rows of a compile session under one name are the same job: a remote job is its
 * spec and label (what ran, and the compile it is; its status and times change as it runs, and
 * when a record settles it — with the same label), a record (no spec) its label and times,
 * which nothing changes after it is made.
 */
function sameJob(here: TaskHere, there: WireRow): boolean {
  const spec = there.spec ?? null;
  if (here.label !== (there.label ?? null)) return false;
  if (here.spec !== null || spec !== null) return here.spec === spec;
  return (
    here.started_at === (there.started_at ?? null) &&
    here.finished_at === (there.finished_at ?? null)
  );
}

/**
 * Merges the tasks; returns the backup's task names this store keeps under another name (the
 * compile jobs both sides numbered alike, see the top of this file).
 */
function mergeTasks(
  db: Database.Database,
  buildId: number,
  tasks: WireRow[],
  compile: boolean,
): Map<string, string> {
  const columns = 'name, attempts, status, label, spec, started_at, finished_at';
  const get = db.prepare(`SELECT ${columns} FROM tasks WHERE build_id = ? AND name = ?`);
  const jobTwin = db.prepare(
    `SELECT ${columns} FROM tasks WHERE build_id = ? AND spec = ? AND label IS ?`,
  );
  const recordTwin = db.prepare(
    `SELECT ${columns} FROM tasks WHERE build_id = ? AND spec IS NULL AND label IS ?
       AND started_at IS ? AND finished_at IS ?`,
  );
  const nextPosition = db.prepare(
    'SELECT coalesce(max(position), 0) + 1 AS next FROM tasks WHERE build_id = ?',
  );
  const renamed = new Map<string, string>();
  const update = db.prepare(
    `UPDATE tasks SET status = @status, attempts = @attempts, exit_code = @exit_code,
     agent = @agent, started_at = @started_at, finished_at = @finished_at, outputs = @outputs,
     error = @error, label = @label, cache = @cache, placement = @placement,
     fallback = @fallback, spec = @spec
     WHERE build_id = @build_id AND name = @name`,
  );
  const insert = db.prepare(
    `INSERT INTO tasks (build_id, name, position, status, attempts, exit_code, agent,
     started_at, finished_at, outputs, error, label, cache, placement, fallback, spec)
     VALUES (@build_id, @name, @position, @status, @attempts, @exit_code, @agent, @started_at,
     @finished_at, @outputs, @error, @label, @cache, @placement, @fallback, @spec)`,
  );
  for (const task of tasks) {
    let name = task.name;
    let position = task.position;
    let mine = get.get(buildId, task.name) as TaskHere | undefined;
    if (mine && compile && !sameJob(mine, task)) {
      const twin = (
        task.spec != null
          ? jobTwin.get(buildId, task.spec, task.label ?? null)
          : recordTwin.get(
              buildId,
              task.label ?? null,
              task.started_at ?? null,
              task.finished_at ?? null,
            )
      ) as TaskHere | undefined;
      if (twin) {
        mine = twin;
      } else {
        mine = undefined;
        position = (nextPosition.get(buildId) as { next: number }).next;
        while (get.get(buildId, `job-${String(position)}`)) position = Number(position) + 1;
      }
      name = twin?.name ?? `job-${String(position)}`;
      renamed.set(String(task.name), String(name));
    }
    const values = {
      build_id: buildId,
      name,
      position,
      status: task.status,
      attempts: task.attempts,
      exit_code: task.exit_code,
      agent: task.agent,
      started_at: task.started_at,
      finished_at: task.finished_at,
      outputs: task.outputs,
      error: task.error,
      // Compile jobs (migration 6): null for a plan task, or from a backup without them.
      label: task.label ?? null,
      cache: task.cache ?? null,
      placement: task.placement ?? null,
      fallback: task.fallback ?? null,
      spec: task.spec ?? null,
    };
    if (!mine) insert.run(values);
    else if (taskProgress(task) > taskProgress({ ...mine })) update.run(values);
  }
  return renamed;
}

function mergeAttempts(db: Database.Database, buildId: number, attempts: WireRow[]): void {
  const byTaskId = db.prepare('SELECT id, status FROM attempts WHERE agent_task_id = ?');
  const finish = db.prepare(
    `UPDATE attempts SET status = @status, finished_at = @finished_at, exit_code = @exit_code,
     error = @error, next_seq = max(next_seq, @next_seq) WHERE id = @id`,
  );
  const numberTaken = db.prepare(
    'SELECT 1 FROM attempts WHERE build_id = ? AND task_name = ? AND number = ?',
  );
  const topNumber = db.prepare(
    'SELECT coalesce(max(number), 0) AS n FROM attempts WHERE build_id = ? AND task_name = ?',
  );
  const insert = db.prepare(
    `INSERT INTO attempts (build_id, task_name, number, agent, agent_task_id, status,
     started_at, finished_at, exit_code, error, next_seq)
     VALUES (@build_id, @task_name, @number, @agent, @agent_task_id, @status, @started_at,
     @finished_at, @exit_code, @error, @next_seq)`,
  );
  for (const attempt of attempts) {
    const mine = byTaskId.get(attempt.agent_task_id) as { id: number; status: string } | undefined;
    if (mine) {
      // 'lost' only means this side stopped hearing of it; the other side may know its end.
      const open = mine.status === 'running' || mine.status === 'lost';
      if (open && attempt.status !== 'running' && attempt.status !== mine.status) {
        finish.run({
          status: attempt.status,
          finished_at: attempt.finished_at,
          exit_code: attempt.exit_code,
          error: attempt.error,
          next_seq: attempt.next_seq,
          id: mine.id,
        });
      }
      continue;
    }
    let number = Number(attempt.number);
    if (numberTaken.get(buildId, attempt.task_name, number)) {
      number = (topNumber.get(buildId, attempt.task_name) as { n: number }).n + 1;
    }
    insert.run({
      build_id: buildId,
      task_name: attempt.task_name,
      number,
      agent: attempt.agent,
      agent_task_id: attempt.agent_task_id,
      status: attempt.status,
      started_at: attempt.started_at,
      finished_at: attempt.finished_at,
      exit_code: attempt.exit_code,
      error: attempt.error,
      next_seq: attempt.next_seq,
    });
  }
}
