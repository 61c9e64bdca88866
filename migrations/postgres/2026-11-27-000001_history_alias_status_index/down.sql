DROP INDEX commands_by_alias_status;
