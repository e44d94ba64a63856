-- The fleet views read every customer's rows of a range of days, and the last day with data.
CREATE INDEX IF NOT EXISTS daily_stats_by_day ON daily_stats (day);
