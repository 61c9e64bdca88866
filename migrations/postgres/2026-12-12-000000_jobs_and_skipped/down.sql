DELETE FROM commands WHERE status = 'skipped';
ALTER TABLE commands DROP CONSTRAINT commands_status_check;
ALTER TABLE commands ADD CONSTRAINT commands_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted', 'cancelled'));
DROP INDEX commands_by_job;
ALTER TABLE commands DROP COLUMN job_id;
DROP TABLE jobs;
