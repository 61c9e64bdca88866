-- Pod sets: a cluster (a [clusters.NAME] of the daemon's config), a namespace and a label
-- selector whose Ready pods the daemon keeps registered as `SET/POD`.
CREATE TABLE pod_sets (
    name TEXT PRIMARY KEY NOT NULL,
    cluster TEXT NOT NULL,
    namespace TEXT NOT NULL,
    selector TEXT NOT NULL,
    container TEXT,
    created_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL
);
-- History keeps the set and the pod name of every command, so a set's history stays one query
-- after its pods (and their aliases) are gone. NULL for pods outside any set.
ALTER TABLE commands ADD COLUMN set_name TEXT;
ALTER TABLE commands ADD COLUMN pod_name TEXT;
CREATE INDEX commands_by_set ON commands (set_name, id);
