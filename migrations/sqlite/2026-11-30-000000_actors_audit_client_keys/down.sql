DROP TABLE audit_events;
ALTER TABLE pods DROP COLUMN client_key;
DROP INDEX commands_by_actor;
ALTER TABLE commands DROP COLUMN actor;
