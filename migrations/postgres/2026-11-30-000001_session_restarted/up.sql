-- True when the command ran in a new shell (the previous one exited or dropped, so cd/export
-- state was lost) or ended the shell itself.
ALTER TABLE commands ADD COLUMN session_restarted BOOLEAN NOT NULL DEFAULT false;
