-- A random key the daemon gives each command before its first history write. Writes replayed
-- from the spool find their row by it, so a replay that runs twice never adds a second row.
-- Rows written before this migration have none.
ALTER TABLE commands ADD COLUMN uid TEXT;
CREATE UNIQUE INDEX commands_by_uid ON commands (uid);
