UPDATE commands SET status = 'interrupted' WHERE status = 'cancelled';
ALTER TABLE commands DROP CONSTRAINT commands_status_check;
ALTER TABLE commands ADD CONSTRAINT commands_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted'));
