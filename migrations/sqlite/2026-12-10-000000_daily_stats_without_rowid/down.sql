-- Back to a rowid table with the primary key as its automatic index.
CREATE TABLE daily_stats_rowid (
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
);
INSERT INTO daily_stats_rowid
    SELECT customer_id, day, successful, failed, latency_sum_us, latency_min_us, latency_max_us,
           latencies, version
    FROM daily_stats ORDER BY customer_id, day;
DROP TABLE daily_stats;
ALTER TABLE daily_stats_rowid RENAME TO daily_stats;
