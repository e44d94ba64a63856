DROP INDEX IF EXISTS daily_stats_by_day;
