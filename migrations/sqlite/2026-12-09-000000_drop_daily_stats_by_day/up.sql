-- Every commit wrote each daily row into two b-trees in different orders: the primary key
-- (customer_id, day), in the order commits write, and this index (day, customer_id), one
-- random page a row. Nothing reads by day any more: the last day with data comes from
-- fleet_days, fleet views walk customers through the primary key, and a prune scans.
DROP INDEX IF EXISTS daily_stats_by_day;
