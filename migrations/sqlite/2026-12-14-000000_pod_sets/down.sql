DROP INDEX commands_by_set;
ALTER TABLE commands DROP COLUMN pod_name;
ALTER TABLE commands DROP COLUMN set_name;
DROP TABLE pod_sets;
