-- Fan-out jobs: every POST /api/v1/exec is one, and its history rows point at it. A pod a job
-- did not run (failure budget spent, canary failed) gets a row with status `skipped`. SQLite
-- cannot change a CHECK constraint, so the commands table is rebuilt with every row, its
-- indexes, and its AUTOINCREMENT counter (ids are never reused), and gains `job_id`.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    command     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    -- Which pods, as text: `aliases: a,b`, `tag: T`, `all`, `rerun-failed of job N`.
    targets     TEXT NOT NULL,
    -- podwrangler::api::JobOptions as JSON text.
    options     TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    total       BIGINT NOT NULL,
    -- Results by status as JSON text, written when the job ends.
    counts      TEXT NOT NULL DEFAULT '{}',
    stopped     TEXT
);
CREATE TABLE commands_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    alias             TEXT NOT NULL,
    pod_label         TEXT NOT NULL,
    command           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted', 'cancelled', 'skipped')),
    exit_code         INTEGER,
    stdout            TEXT NOT NULL DEFAULT '',
    stderr            TEXT NOT NULL DEFAULT '',
    error             TEXT,
    truncated         BOOLEAN NOT NULL DEFAULT 0,
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP,
    duration_ms       DOUBLE,
    actor             TEXT,
    session_restarted BOOLEAN NOT NULL DEFAULT false,
    uid               TEXT,
    job_id            BIGINT
);
INSERT INTO commands_new (id, alias, pod_label, command, status, exit_code, stdout, stderr, error,
                          truncated, started_at, finished_at, duration_ms, actor, session_restarted,
                          uid)
    SELECT id, alias, pod_label, command, status, exit_code, stdout, stderr, error,
           truncated, started_at, finished_at, duration_ms, actor, session_restarted, uid
    FROM commands;
UPDATE sqlite_sequence
    SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'commands'))
    WHERE name = 'commands_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'commands_new', seq FROM sqlite_sequence
    WHERE name = 'commands' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'commands_new');
DROP TABLE commands;
ALTER TABLE commands_new RENAME TO commands;
CREATE INDEX commands_by_started_at ON commands (started_at DESC, id DESC);
CREATE INDEX commands_by_alias ON commands (alias, id DESC);
CREATE INDEX commands_by_status ON commands (status, id DESC);
CREATE INDEX commands_by_alias_status ON commands (alias, status, id DESC);
CREATE INDEX commands_by_actor ON commands (actor, id DESC);
CREATE UNIQUE INDEX commands_by_uid ON commands (uid);
CREATE INDEX commands_by_job ON commands (job_id, id);
