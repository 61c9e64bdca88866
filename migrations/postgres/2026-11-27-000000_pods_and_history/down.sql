DROP TABLE commands;
DROP TABLE pod_tags;
DROP TABLE pods;
