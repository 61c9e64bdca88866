ALTER TABLE commands DROP COLUMN session_restarted;
