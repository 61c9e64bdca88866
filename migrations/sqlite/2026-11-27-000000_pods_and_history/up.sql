-- Registered pods, their tags, and the command history (SQLite).
-- Every timestamp is UTC, written by the daemon as `YYYY-MM-DD HH:MM:SS[.ffffff]` text.

CREATE TABLE pods (
    alias      TEXT PRIMARY KEY NOT NULL,
    provider   TEXT NOT NULL CHECK (provider IN ('plaintty', 'kubernetes')),
    -- podwrangler::PodIdentity and podwrangler::ProviderConfig as JSON.
    identity   TEXT NOT NULL,
    config     TEXT NOT NULL,
    -- Kept so the daemon can reconnect after a restart; the API never returns it.
    token      TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE pod_tags (
    alias TEXT NOT NULL REFERENCES pods (alias) ON DELETE CASCADE ON UPDATE CASCADE,
    tag   TEXT NOT NULL,
    PRIMARY KEY (alias, tag)
);
-- `GET /api/v1/pods/?tag=T` and fan-out by tag.
CREATE INDEX pod_tags_by_tag ON pod_tags (tag, alias);

-- No foreign key to pods: history outlives a removed pod.
-- AUTOINCREMENT so an id is never reused, which keeps history cursors stable.
CREATE TABLE commands (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    alias       TEXT NOT NULL,
    pod_label   TEXT NOT NULL,
    command     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted')),
    exit_code   INTEGER,
    stdout      TEXT NOT NULL DEFAULT '',
    stderr      TEXT NOT NULL DEFAULT '',
    error       TEXT,
    truncated   BOOLEAN NOT NULL DEFAULT 0,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    duration_ms DOUBLE
);
-- History is read newest first (by id), optionally filtered by alias, status or start time.
CREATE INDEX commands_by_started_at ON commands (started_at DESC, id DESC);
CREATE INDEX commands_by_alias ON commands (alias, id DESC);
CREATE INDEX commands_by_status ON commands (status, id DESC);
