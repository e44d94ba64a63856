-- The index on (day, customer_id) as it was.
ALTER TABLE daily_stats ADD INDEX daily_stats_by_day (day, customer_id);
