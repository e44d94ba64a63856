-- A row's latency summary is now an exact histogram while the day has at most 4,096 distinct
-- latencies (first byte 2), a t-digest past that (first byte 1, as every row written before this
-- migration, which keeps what it holds: those rows give estimates until they are re-ingested).
ALTER TABLE daily_stats RENAME COLUMN digest TO latencies;
-- The version (customer_versions' number) of the commit that last wrote the row: a reader that
-- holds a customer's rows as of version V fetches only the rows with version > V.
ALTER TABLE daily_stats ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
UPDATE daily_stats SET version = v.version
    FROM customer_versions v WHERE v.customer_id = daily_stats.customer_id;
