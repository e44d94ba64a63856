-- The daily rows in one b-tree, ordered by the primary key, instead of a rowid table plus the
-- primary key's automatic index: every written row was two b-tree inserts. Rows were moved
-- into a rowid table when each carried a ~1.6 KB digest (over a 4 KB page's local payload, so
-- every row spilled onto an overflow page); a day now stores an exact histogram of a few bytes
-- to a few KB, new databases use 16 KiB pages (about 4 KB of local payload), and a year of
-- 10,000 customers commits 12-26 % faster this way (docs/BENCHMARKS.md). Rebuilds the table:
-- the upgrade of a large database takes as long as a copy of its rows, and the disk space.
CREATE TABLE daily_stats_keyed (
    customer_id     TEXT    NOT NULL,
    day             DATE    NOT NULL,
    successful      BIGINT  NOT NULL,
    failed          BIGINT  NOT NULL,
    latency_sum_us  BIGINT  NOT NULL,
    latency_min_us  BIGINT  NOT NULL,
    latency_max_us  BIGINT  NOT NULL,
    latencies       BLOB    NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, day)
) WITHOUT ROWID;
INSERT INTO daily_stats_keyed
    SELECT customer_id, day, successful, failed, latency_sum_us, latency_min_us, latency_max_us,
           latencies, version
    FROM daily_stats ORDER BY customer_id, day;
DROP TABLE daily_stats;
ALTER TABLE daily_stats_keyed RENAME TO daily_stats;
