-- Who asked: every history row names its caller (`unix:UID(NAME)`, `key:NAME`, `config`);
-- rows written before this migration have none.
ALTER TABLE commands ADD COLUMN actor TEXT;
CREATE INDEX commands_by_actor ON commands (actor, id DESC);

-- The private key of a Kubernetes client certificate, a secret like `token`: kept so the daemon
-- can reconnect, never returned by the API.
ALTER TABLE pods ADD COLUMN client_key TEXT;

-- Registrations, updates, removals and imports, with who made them and when. Append-only:
-- nothing in the API deletes from it.
CREATE TABLE audit_events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMP NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_by_actor ON audit_events (actor, id DESC);
