-- Skipped rows never ran; the older constraint has no place for them. job_id stays (unused).
DELETE FROM commands WHERE status = 'skipped';
DROP INDEX commands_by_job;
DROP TABLE jobs;
