/**
 * The schema, as numbered migrations. Append only: a migration that has shipped is never edited
 * or removed, because databases in the field have already run it; change the schema by adding
 * the next number. migrator.ts applies the ones a database lacks, in order, and refuses a
 * database whose version is newer than the last one here.
 *
 * Conventions: timestamps are ISO-8601 UTC strings (they sort as text), JSON values are TEXT,
 * log data is a BLOB, booleans are 0/1.
 */

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE users (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT NOT NULL UNIQUE,
        role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL
      );

      CREATE TABLE api_tokens (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        token_hash   TEXT NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        expires_at   TEXT NOT NULL,
        last_used_at TEXT
      );
      CREATE INDEX api_tokens_user ON api_tokens (user_id);
      CREATE INDEX api_tokens_expires ON api_tokens (expires_at);

      CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE agents (
        name        TEXT PRIMARY KEY,
        host        TEXT NOT NULL,
        port        INTEGER NOT NULL,
        access_key  TEXT NOT NULL,
        fingerprint TEXT,
        tls         INTEGER NOT NULL CHECK (tls IN (0, 1)),
        labels      TEXT NOT NULL,
        slots       INTEGER,
        created_at  TEXT NOT NULL
      );

      CREATE TABLE extensions (
        name     TEXT PRIMARY KEY,
        version  TEXT NOT NULL,
        files    TEXT NOT NULL,
        added_at TEXT NOT NULL
      );

      -- AUTOINCREMENT: a build id is never reused, even after the newest build is deleted.
      CREATE TABLE builds (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        status      TEXT NOT NULL
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        plan        TEXT NOT NULL,
        files       TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT,
        error       TEXT
      );
      CREATE INDEX builds_status ON builds (status, id);

      -- position: the task's index in plan.tasks, so listTasks keeps the plan's order.
      CREATE TABLE tasks (
        build_id    INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        position    INTEGER NOT NULL,
        status      TEXT NOT NULL CHECK (status IN
                    ('pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        exit_code   INTEGER,
        agent       TEXT,
        started_at  TEXT,
        finished_at TEXT,
        outputs     TEXT NOT NULL DEFAULT '[]',
        error       TEXT,
        PRIMARY KEY (build_id, name)
      );

      -- agent is a name, not a foreign key: history outlives a removed agent.
      CREATE TABLE attempts (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        build_id      INTEGER NOT NULL,
        task_name     TEXT NOT NULL,
        number        INTEGER NOT NULL,
        agent         TEXT NOT NULL,
        agent_task_id TEXT NOT NULL UNIQUE,
        status        TEXT NOT NULL CHECK (status IN
                      ('running', 'succeeded', 'failed', 'cancelled', 'timed-out', 'lost')),
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        exit_code     INTEGER,
        error         TEXT,
        next_seq      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (build_id, task_name, number),
        FOREIGN KEY (build_id, task_name) REFERENCES tasks (build_id, name) ON DELETE CASCADE
      );
      CREATE INDEX attempts_running ON attempts (id) WHERE status = 'running';

      -- One global AUTOINCREMENT id: monotonic across the table, so monotonic within a build.
      -- task_name is not a foreign key so that build-wide lines can be logged too.
      CREATE TABLE log_chunks (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        build_id  INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        task_name TEXT NOT NULL,
        attempt   INTEGER NOT NULL,
        stream    TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'log')),
        data      BLOB NOT NULL,
        at        TEXT NOT NULL
      );
      CREATE INDEX log_chunks_build ON log_chunks (build_id, id);
      CREATE INDEX log_chunks_task ON log_chunks (build_id, task_name, id);
    `,
  },
];
