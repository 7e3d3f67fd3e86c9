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
  {
    version: 2,
    name: 'high availability: replication log, backups, build uids',
    sql: `
      -- Builds get a unique id that survives renumbering when a backup's history is merged back.
      ALTER TABLE builds ADD COLUMN uid TEXT;
      UPDATE builds SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
      CREATE UNIQUE INDEX builds_uid ON builds (uid);

      -- Backup coordinators registered with this one (as a primary). Not replicated.
      CREATE TABLE backups (
        name          TEXT PRIMARY KEY,
        url           TEXT NOT NULL,
        fingerprint   TEXT,
        certificate   TEXT,
        -- Shared with the backup: it proves each side to the other over TLS.
        secret        TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        last_contact  TEXT,
        acked_seq     INTEGER NOT NULL DEFAULT 0,
        acked_at      TEXT
      );

      -- Replication. On a primary with a selected backup, triggers record which rows changed
      -- (table and primary key, in commit order); the backup reads the rows as they are now.
      -- One row: recording (0/1), the stream this coordinator produces (out_stream), and, on a
      -- backup, the stream it consumes and how far it has applied it (in_stream, in_seq).
      CREATE TABLE repl_state (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        recording  INTEGER NOT NULL DEFAULT 0,
        out_stream TEXT,
        in_stream  TEXT,
        in_seq     INTEGER NOT NULL DEFAULT 0,
        in_at      TEXT
      );
      INSERT INTO repl_state (id) VALUES (1);

      CREATE TABLE repl_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tbl TEXT NOT NULL,
        key TEXT NOT NULL
      );

      CREATE TRIGGER repl_users_insert AFTER INSERT ON users
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('users', json_array(NEW.id)); END;
      CREATE TRIGGER repl_users_update AFTER UPDATE ON users
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('users', json_array(NEW.id)); END;
      CREATE TRIGGER repl_users_delete AFTER DELETE ON users
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('users', json_array(OLD.id)); END;
      CREATE TRIGGER repl_settings_insert AFTER INSERT ON settings
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('settings', json_array(NEW.key)); END;
      CREATE TRIGGER repl_settings_update AFTER UPDATE ON settings
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('settings', json_array(NEW.key)); END;
      CREATE TRIGGER repl_settings_delete AFTER DELETE ON settings
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('settings', json_array(OLD.key)); END;
      CREATE TRIGGER repl_agents_insert AFTER INSERT ON agents
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('agents', json_array(NEW.name)); END;
      CREATE TRIGGER repl_agents_update AFTER UPDATE ON agents
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('agents', json_array(NEW.name)); END;
      CREATE TRIGGER repl_agents_delete AFTER DELETE ON agents
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('agents', json_array(OLD.name)); END;
      CREATE TRIGGER repl_extensions_insert AFTER INSERT ON extensions
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('extensions', json_array(NEW.name)); END;
      CREATE TRIGGER repl_extensions_update AFTER UPDATE ON extensions
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('extensions', json_array(NEW.name)); END;
      CREATE TRIGGER repl_extensions_delete AFTER DELETE ON extensions
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('extensions', json_array(OLD.name)); END;
      CREATE TRIGGER repl_builds_insert AFTER INSERT ON builds
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('builds', json_array(NEW.id)); END;
      CREATE TRIGGER repl_builds_update AFTER UPDATE ON builds
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('builds', json_array(NEW.id)); END;
      CREATE TRIGGER repl_builds_delete AFTER DELETE ON builds
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('builds', json_array(OLD.id)); END;
      CREATE TRIGGER repl_tasks_insert AFTER INSERT ON tasks
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('tasks', json_array(NEW.build_id, NEW.name)); END;
      CREATE TRIGGER repl_tasks_update AFTER UPDATE ON tasks
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('tasks', json_array(NEW.build_id, NEW.name)); END;
      CREATE TRIGGER repl_tasks_delete AFTER DELETE ON tasks
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('tasks', json_array(OLD.build_id, OLD.name)); END;
      CREATE TRIGGER repl_attempts_insert AFTER INSERT ON attempts
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('attempts', json_array(NEW.id)); END;
      CREATE TRIGGER repl_attempts_update AFTER UPDATE ON attempts
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('attempts', json_array(NEW.id)); END;
      CREATE TRIGGER repl_attempts_delete AFTER DELETE ON attempts
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('attempts', json_array(OLD.id)); END;
      CREATE TRIGGER repl_log_chunks_insert AFTER INSERT ON log_chunks
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('log_chunks', json_array(NEW.id)); END;
      CREATE TRIGGER repl_log_chunks_delete AFTER DELETE ON log_chunks
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('log_chunks', json_array(OLD.id)); END;
      CREATE TRIGGER repl_api_tokens_insert AFTER INSERT ON api_tokens
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('api_tokens', json_array(NEW.id)); END;
      CREATE TRIGGER repl_api_tokens_delete AFTER DELETE ON api_tokens
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('api_tokens', json_array(OLD.id)); END;
    `,
  },
  {
    version: 3,
    name: 'agents: the cores an agent reported when it last connected',
    // Replicated with the rest of the row, so a backup standing by (which has no connections)
    // shows the slots the primary last saw rather than 1.
    sql: `ALTER TABLE agents ADD COLUMN cores INTEGER;`,
  },
  {
    version: 4,
    name: 'high availability: its state in ha_state, out of the user settings',
    // The term, a backup's takeover record, a primary's failback progress, selected backup, last
    // deselection and owed backups were settings (shown by GET /settings). Moved with their
    // values, under new keys (store/ha-state.ts). Replicated like settings were: a backup learns
    // the term and the selection from its primary. While recording, the triggers carry the move
    // to a selected backup (the settings go, the ha_state rows come).
    sql: `
      CREATE TABLE ha_state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      CREATE TRIGGER repl_ha_state_insert AFTER INSERT ON ha_state
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('ha_state', json_array(NEW.key)); END;
      CREATE TRIGGER repl_ha_state_update AFTER UPDATE ON ha_state
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('ha_state', json_array(NEW.key)); END;
      CREATE TRIGGER repl_ha_state_delete AFTER DELETE ON ha_state
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('ha_state', json_array(OLD.key)); END;

      INSERT INTO ha_state (key, value)
        SELECT CASE key
                 WHEN 'Cluster.Term' THEN 'term'
                 WHEN 'HA.Takeover' THEN 'takeover'
                 WHEN 'HA.Failback' THEN 'failback'
                 WHEN 'Backup.Selected' THEN 'selectedBackup'
                 WHEN 'Backup.LastDeselected' THEN 'lastDeselection'
                 WHEN 'Backup.Owed' THEN 'owed'
               END, value
        FROM settings
        WHERE key IN ('Cluster.Term', 'HA.Takeover', 'HA.Failback', 'Backup.Selected',
                      'Backup.LastDeselected', 'Backup.Owed');
      DELETE FROM settings
        WHERE key IN ('Cluster.Term', 'HA.Takeover', 'HA.Failback', 'Backup.Selected',
                      'Backup.LastDeselected', 'Backup.Owed');
    `,
  },
  {
    version: 5,
    name: 'the shared compile cache: entries, manifests, toolchains, and their use',
    // Entries, manifests and toolchains are replicated (the cache is still there after a
    // failover; their blobs travel with them, see ha/blob-sync.ts). Rows are immutable: written
    // once, deleted by eviction; the update triggers only carry a backup's copy along if a row
    // ever changes. cache_usage is not replicated: a hit would otherwise put a change on the
    // stream; a backup that takes over evicts by creation time until it has seen uses of its own.
    // Keys are sha256 hex computed by the client (src/cli/cc/cache-key.ts) or the scheduler.
    sql: `
      -- One result: its outputs (JSON [{ name, sha256, size, mode }]: name is 'object' or
      -- 'depfile' for a compile, the output path for a plan task), the stderr to replay, the
      -- exit code. size: the bytes of every blob it references, for the quota. source: who
      -- obtained it, 'client' (a user's machine compiled it) or 'agent' (this coordinator ran it).
      CREATE TABLE cache_entries (
        key           TEXT PRIMARY KEY,
        kind          TEXT NOT NULL CHECK (kind IN ('compile', 'task')),
        outputs       TEXT NOT NULL,
        stderr_sha256 TEXT,
        stderr_size   INTEGER,
        exit_code     INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        toolchain     TEXT,
        source        TEXT NOT NULL CHECK (source IN ('client', 'agent')),
        build_uid     TEXT,
        created_by    TEXT NOT NULL,
        created_at    TEXT NOT NULL
      );
      CREATE INDEX cache_entries_created ON cache_entries (created_at);

      -- Direct mode: under a direct key, results each valid while every listed include file
      -- ([[path, sha256], ...]) still has that content. includes_hash (sha256 of the includes
      -- JSON) tells lines apart; at most 16 per direct key are kept, the newest.
      CREATE TABLE cache_manifests (
        direct        TEXT NOT NULL,
        includes_hash TEXT NOT NULL,
        includes      TEXT NOT NULL,
        entry         TEXT NOT NULL REFERENCES cache_entries (key) ON DELETE CASCADE,
        created_by    TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        PRIMARY KEY (direct, includes_hash)
      );
      CREATE INDEX cache_manifests_entry ON cache_manifests (entry);
      CREATE INDEX cache_manifests_direct ON cache_manifests (direct, created_at);

      -- A compiler by the hash of its programs: files (JSON [{ path, sha256, size, mode }], the
      -- layout agents receive under toolchains/<id>/) and info (JSON: driver, triple, version,
      -- glibc, as the client described it).
      CREATE TABLE toolchains (
        id         TEXT PRIMARY KEY,
        files      TEXT NOT NULL,
        info       TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL
      );

      -- Not replicated: the last use of each entry, for LRU eviction.
      CREATE TABLE cache_usage (
        key       TEXT PRIMARY KEY REFERENCES cache_entries (key) ON DELETE CASCADE,
        last_used TEXT NOT NULL,
        hits      INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX cache_usage_last_used ON cache_usage (last_used);

      CREATE TRIGGER repl_cache_entries_insert AFTER INSERT ON cache_entries
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('cache_entries', json_array(NEW.key)); END;
      CREATE TRIGGER repl_cache_entries_update AFTER UPDATE ON cache_entries
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('cache_entries', json_array(NEW.key)); END;
      CREATE TRIGGER repl_cache_entries_delete AFTER DELETE ON cache_entries
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('cache_entries', json_array(OLD.key)); END;
      CREATE TRIGGER repl_cache_manifests_insert AFTER INSERT ON cache_manifests
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('cache_manifests', json_array(NEW.direct, NEW.includes_hash)); END;
      CREATE TRIGGER repl_cache_manifests_update AFTER UPDATE ON cache_manifests
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('cache_manifests', json_array(NEW.direct, NEW.includes_hash)); END;
      CREATE TRIGGER repl_cache_manifests_delete AFTER DELETE ON cache_manifests
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('cache_manifests', json_array(OLD.direct, OLD.includes_hash)); END;
      CREATE TRIGGER repl_toolchains_insert AFTER INSERT ON toolchains
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('toolchains', json_array(NEW.id)); END;
      CREATE TRIGGER repl_toolchains_update AFTER UPDATE ON toolchains
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('toolchains', json_array(NEW.id)); END;
      CREATE TRIGGER repl_toolchains_delete AFTER DELETE ON toolchains
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('toolchains', json_array(OLD.id)); END;
    `,
  },
  {
    version: 6,
    name: 'compile sessions: open builds of compile jobs',
    // A compile session (`muster build`, issue 13) is a build of kind 'compile' that stays open
    // while the command runs: its jobs are appended as tasks, most of them already finished (a
    // local compile, a cache hit), and it ends when the client closes it (summary: the client's
    // counts, JSON) or goes silent. Plan builds keep kind 'plan', open 0, and nulls in the new
    // task columns. tasks.spec is the own description (JSON) of a task that is not in
    // builds.plan (a remote compile job); tasks.fallback the reason an infrastructure failure
    // sent a job local. The columns travel with their rows (replication copies whole rows;
    // history-merge.ts and ha/history-schema.ts list them for failback).
    sql: `
      ALTER TABLE builds ADD COLUMN kind TEXT NOT NULL DEFAULT 'plan'
        CHECK (kind IN ('plan', 'compile'));
      ALTER TABLE builds ADD COLUMN open INTEGER NOT NULL DEFAULT 0 CHECK (open IN (0, 1));
      ALTER TABLE builds ADD COLUMN summary TEXT;
      CREATE INDEX builds_open ON builds (created_by) WHERE open = 1;

      ALTER TABLE tasks ADD COLUMN label TEXT;
      ALTER TABLE tasks ADD COLUMN cache TEXT CHECK (cache IN ('hit', 'miss', 'off'));
      ALTER TABLE tasks ADD COLUMN placement TEXT CHECK (placement IN ('remote', 'local', 'cache'));
      ALTER TABLE tasks ADD COLUMN fallback TEXT;
      ALTER TABLE tasks ADD COLUMN spec TEXT;
    `,
  },
  {
    version: 7,
    name: 'toolchains: their last use and their bytes, to ship those in use and drop the unused',
    // last_used_at: the last compile job that named it, or its registration (rewritten at most
    // every 10 minutes, see store/cache.ts touchToolchain); replicated with the row, so a backup
    // that takes over ships the same toolchains. size: the bytes of its files, so the bundle can
    // pick the toolchains it ships without reading every file list.
    sql: `
      ALTER TABLE toolchains ADD COLUMN last_used_at TEXT NOT NULL DEFAULT '';
      ALTER TABLE toolchains ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
      UPDATE toolchains SET last_used_at = created_at,
        size = (SELECT coalesce(sum(json_extract(value, '$.size')), 0) FROM json_each(files));
      CREATE INDEX toolchains_created_by ON toolchains (created_by);
    `,
  },
  {
    version: 8,
    name: 'audit: every administrative change, who made it, when, from where and what',
    // at: milliseconds since the epoch. actor: a user's name, 'system' (actor_kind 'system': a
    // change nobody asked for, such as an automatic deselection) or a backup's name (actor_kind
    // 'backup': its takeover). ip: the request's remote address (null for system changes).
    // details: JSON of what changed (field names and new values, never a password, token, key or
    // secret). uid: unique across coordinators, so the rows a backup writes while it runs the
    // cluster merge into its primary's at failback once and only once. Replicated like the rest;
    // bounded by store/audit.ts (the oldest rows beyond its limit are dropped).
    sql: `
      CREATE TABLE audit (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        uid        TEXT NOT NULL UNIQUE,
        at         INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        actor_kind TEXT NOT NULL CHECK (actor_kind IN ('user', 'system', 'backup')),
        ip         TEXT,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        details    TEXT NOT NULL
      );
      CREATE INDEX audit_action ON audit (action, id);
      CREATE INDEX audit_actor ON audit (actor, id);
      CREATE INDEX audit_at ON audit (at);

      CREATE TRIGGER repl_audit_insert AFTER INSERT ON audit
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('audit', json_array(NEW.id)); END;
      CREATE TRIGGER repl_audit_update AFTER UPDATE ON audit
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('audit', json_array(NEW.id)); END;
      CREATE TRIGGER repl_audit_delete AFTER DELETE ON audit
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('audit', json_array(OLD.id)); END;
    `,
  },
  {
    version: 9,
    name: 'agents that dial out: their id, approval and facts; join tokens',
    // agent_id: the id an agent that dials out connects with (null: an agent this coordinator
    // dials, at host:port). approved: 0 while an agent that joined waits for an admin. facts:
    // JSON of what the agent said of its machine at its last connect (src/protocol/outbound.ts).
    // join_tokens: what admits a new agent that dials out; the secret is kept (each agent's key
    // is derived from it and the agent's id, see outbound.ts) and never replicated: only a
    // primary admits new agents. expires_at: ISO time, or null for a token that does not expire.
    sql: `
      ALTER TABLE agents ADD COLUMN agent_id TEXT;
      ALTER TABLE agents ADD COLUMN approved INTEGER NOT NULL DEFAULT 1 CHECK (approved IN (0, 1));
      ALTER TABLE agents ADD COLUMN facts TEXT;
      -- NULLs are distinct in a UNIQUE index: every dialed agent has one.
      CREATE UNIQUE INDEX agents_agent_id ON agents (agent_id);

      CREATE TABLE join_tokens (
        id           TEXT PRIMARY KEY,
        secret       TEXT NOT NULL,
        labels       TEXT NOT NULL,
        auto_approve INTEGER NOT NULL CHECK (auto_approve IN (0, 1)),
        expires_at   TEXT,
        created_by   TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        uses         INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
  {
    version: 10,
    name: 'secrets: named values for tasks, encrypted at rest',
    // value: nonce ‖ AES-256-GCM ciphertext ‖ tag under the key in <data>/secrets.key, which is
    // never in the database (secrets/secret-key.ts); the name is the associated data. key_id: a
    // hash of that key, so a value sealed under another one says so. set_by: the admin's name,
    // set_at ISO. Replicated like the rest (ciphertext only: a backup receives the key over its
    // authenticated link, not in these rows).
    sql: `
      CREATE TABLE secrets (
        name   TEXT PRIMARY KEY,
        value  BLOB NOT NULL,
        key_id TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at TEXT NOT NULL
      );

      CREATE TRIGGER repl_secrets_insert AFTER INSERT ON secrets
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('secrets', json_array(NEW.name)); END;
      CREATE TRIGGER repl_secrets_update AFTER UPDATE ON secrets
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('secrets', json_array(NEW.name)); END;
      CREATE TRIGGER repl_secrets_delete AFTER DELETE ON secrets
        WHEN (SELECT recording FROM repl_state) = 1
        BEGIN INSERT INTO repl_changes (tbl, key) VALUES ('secrets', json_array(OLD.name)); END;
    `,
  },
  {
    version: 11,
    name: "the shared cache's direct keys in the order they came, for clients' key lists",
    // One row per direct key that has a manifest line, numbered in the order the keys first
    // came (AUTOINCREMENT: a number is never given twice, so "every key after N" misses none).
    // Kept by triggers, so every way a line is written (a client, an agent's result,
    // replication, a snapshot, a failback) counts. Not replicated: each coordinator numbers its
    // own; clients tell the numberings apart by the listing's epoch (GET /cache/directs).
    sql: `
      CREATE TABLE cache_directs (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        direct TEXT NOT NULL UNIQUE
      );
      INSERT INTO cache_directs (direct)
        SELECT direct FROM cache_manifests GROUP BY direct ORDER BY min(rowid);

      CREATE TRIGGER cache_directs_insert AFTER INSERT ON cache_manifests
        WHEN NOT EXISTS (SELECT 1 FROM cache_directs WHERE direct = NEW.direct)
        BEGIN INSERT OR IGNORE INTO cache_directs (direct) VALUES (NEW.direct); END;
      CREATE TRIGGER cache_directs_delete AFTER DELETE ON cache_manifests
        WHEN NOT EXISTS (SELECT 1 FROM cache_manifests WHERE direct = OLD.direct)
        BEGIN DELETE FROM cache_directs WHERE direct = OLD.direct; END;

      -- How many there are, without a scan per page.
      CREATE TABLE cache_directs_count (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n  INTEGER NOT NULL
      );
      INSERT INTO cache_directs_count (id, n) SELECT 1, count(*) FROM cache_directs;
      CREATE TRIGGER cache_directs_counted AFTER INSERT ON cache_directs
        BEGIN UPDATE cache_directs_count SET n = n + 1 WHERE id = 1; END;
      CREATE TRIGGER cache_directs_uncounted AFTER DELETE ON cache_directs
        BEGIN UPDATE cache_directs_count SET n = n - 1 WHERE id = 1; END;
    `,
  },
];
