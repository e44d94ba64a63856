-- Every commit wrote each daily row into two b-trees in different orders: the primary key
-- (customer_id, day), in the order commits write, and this index (day, customer_id), one
-- random page a row. Nothing reads by day any more: the last day with data comes from
-- fleet_days, fleet views walk customers through the primary key, and a prune scans.
-- MySQL has no DROP INDEX IF EXISTS: the statement is chosen by whether the index is there.
SET @drop_by_day = (
    SELECT IF(COUNT(*) > 0, 'ALTER TABLE daily_stats DROP INDEX daily_stats_by_day', 'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'daily_stats'
      AND index_name = 'daily_stats_by_day'
);
PREPARE drop_by_day FROM @drop_by_day;
EXECUTE drop_by_day;
DEALLOCATE PREPARE drop_by_day;
