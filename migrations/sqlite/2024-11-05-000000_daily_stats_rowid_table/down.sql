CREATE TABLE daily_stats_without_rowid (
    customer_id     TEXT    NOT NULL,
    day             DATE    NOT NULL,
    successful      BIGINT  NOT NULL,
    failed          BIGINT  NOT NULL,
    latency_sum_us  BIGINT  NOT NULL,
    latency_min_us  BIGINT  NOT NULL,
    latency_max_us  BIGINT  NOT NULL,
    digest          BLOB    NOT NULL,
    PRIMARY KEY (customer_id, day)
) WITHOUT ROWID;
INSERT INTO daily_stats_without_rowid SELECT * FROM daily_stats;
DROP TABLE daily_stats;
ALTER TABLE daily_stats_without_rowid RENAME TO daily_stats;
