-- Tasks between joined endpoints. On a hub, `runner` names the endpoint that runs the task: the hub keeps the
-- row as its record (kept current by that endpoint's reports) and its own workers never claim it. On the
-- endpoint, `hub_report` is 1 while the hub still has to hear of the task's progress, 0 once it acknowledged
-- the task's end, NULL for a task of its own.
ALTER TABLE tasks ADD COLUMN runner TEXT;
ALTER TABLE tasks ADD COLUMN hub_report INTEGER;
-- On a hub: the per-file counts of a task an endpoint runs, as it last reported them (JSON).
ALTER TABLE tasks ADD COLUMN reported_items TEXT;
CREATE INDEX tasks_hub_report ON tasks(hub_report) WHERE hub_report = 1;
