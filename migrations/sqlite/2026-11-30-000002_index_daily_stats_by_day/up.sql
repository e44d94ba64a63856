-- The fleet views walk every customer's rows of a range of days in (day, customer) order, a page
-- at a time, and read the last day with data.
CREATE INDEX IF NOT EXISTS daily_stats_by_day ON daily_stats (day, customer_id);
