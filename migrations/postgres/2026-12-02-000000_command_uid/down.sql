DROP INDEX commands_by_uid;
ALTER TABLE commands DROP COLUMN uid;
