-- One row per UTC day: every customer's daily_stats row of that day merged (the same columns;
-- `version` the commit that last wrote the day). Each commit merges its deltas into the days it
-- touches in the same transaction as the customers' rows, so GET /stats reads one row a day
-- instead of one per customer and day.
CREATE TABLE IF NOT EXISTS fleet_days (
    day             DATE    NOT NULL PRIMARY KEY,
    successful      BIGINT  NOT NULL,
    failed          BIGINT  NOT NULL,
    latency_sum_us  BIGINT  NOT NULL,
    latency_min_us  BIGINT  NOT NULL,
    latency_max_us  BIGINT  NOT NULL,
    latencies       BYTEA   NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0
);

-- While this one row exists, fleet_days does not yet hold the rows committed before this
-- migration: the first process that may write builds them from daily_stats (latency summaries
-- are merged in Rust) and deletes the row in the same transaction; until then the API walks
-- daily_stats.
CREATE TABLE IF NOT EXISTS fleet_days_pending (
    id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1)
);
INSERT INTO fleet_days_pending (id) VALUES (1) ON CONFLICT DO NOTHING;
