ALTER TABLE daily_stats DROP COLUMN version;
ALTER TABLE daily_stats RENAME COLUMN latencies TO digest;
