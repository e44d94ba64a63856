-- The index on (day, customer_id) as it was.
CREATE INDEX IF NOT EXISTS daily_stats_by_day ON daily_stats (day, customer_id);
