-- A row carries a ~1.6 KB digest. In a WITHOUT ROWID table (rows stored in an index b-tree,
-- ~1 KB local payload on 4 KB pages) every row spilled onto an overflow page, so each upsert
-- touched two pages and reads followed overflow chains; a rowid table keeps a row on one page.
-- The primary key stays (customer_id, day), now served by its automatic index.
CREATE TABLE daily_stats_rowid (
    customer_id     TEXT    NOT NULL,
    day             DATE    NOT NULL,
    successful      BIGINT  NOT NULL,
    failed          BIGINT  NOT NULL,
    latency_sum_us  BIGINT  NOT NULL,
    latency_min_us  BIGINT  NOT NULL,
    latency_max_us  BIGINT  NOT NULL,
    digest          BLOB    NOT NULL,
    PRIMARY KEY (customer_id, day)
);
INSERT INTO daily_stats_rowid
    SELECT customer_id, day, successful, failed, latency_sum_us, latency_min_us, latency_max_us,
           digest
    FROM daily_stats;
DROP TABLE daily_stats;
ALTER TABLE daily_stats_rowid RENAME TO daily_stats;
