-- The first day kept: every day before it was pruned (logstats-ingest prune, or --retain) and
-- is never stored again. One row, id = 1; NULL until the first prune. A prune deletes the days
-- and moves it forward in one transaction, and each commit reads it in its own, so a line of a
-- pruned day that arrives later is counted (as late) but never stored.
CREATE TABLE IF NOT EXISTS prune_horizon (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    first_day  DATE
);
INSERT INTO prune_horizon (id, first_day) VALUES (1, NULL) ON CONFLICT DO NOTHING;
