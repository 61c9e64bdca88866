-- Fan-out jobs: every POST /api/v1/exec is one, and its history rows point at it. A pod a job
-- did not run (failure budget spent, canary failed) gets a row with status `skipped`.
CREATE TABLE jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
ALTER TABLE commands ADD COLUMN job_id BIGINT;
CREATE INDEX commands_by_job ON commands (job_id, id);
ALTER TABLE commands DROP CONSTRAINT commands_status_check;
ALTER TABLE commands ADD CONSTRAINT commands_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted', 'cancelled', 'skipped'));
