-- A command can be cancelled (POST /api/v1/commands/{id}/cancel, Ctrl-C in pwctl).
ALTER TABLE commands DROP CONSTRAINT commands_status_check;
ALTER TABLE commands ADD CONSTRAINT commands_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timeout', 'error', 'interrupted', 'cancelled'));
