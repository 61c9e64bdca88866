-- History filtered by alias AND status: without it the planner walks one of the single-column
-- indexes and checks the other column row by row (tens of ms at a million rows).
CREATE INDEX commands_by_alias_status ON commands (alias, status, id DESC);
