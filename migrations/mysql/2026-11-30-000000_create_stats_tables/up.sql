-- The schema of migrations/postgres and migrations/sqlite as it stands today, in one step: the
-- MySQL/MariaDB backend started from it. Keys are VARBINARY so that they compare and sort byte by
-- byte, as on the other backends (a VARCHAR would take the server's collation, usually
-- case-insensitive); every table is InnoDB (transactions, row locks). Re-running it changes
-- nothing (IF NOT EXISTS, INSERT IGNORE), as the other backends' migrations.

-- One precomputed row per (customer, UTC day); `latencies` is the codec of shared/src/latency.rs
-- (an exact histogram up to 4,096 distinct latencies, a t-digest past that), `version` the commit
-- that last wrote the row.
CREATE TABLE IF NOT EXISTS daily_stats (
    customer_id     VARBINARY(255) NOT NULL,
    day             DATE           NOT NULL,
    successful      BIGINT         NOT NULL,
    failed          BIGINT         NOT NULL,
    latency_sum_us  BIGINT         NOT NULL,
    latency_min_us  BIGINT         NOT NULL,
    latency_max_us  BIGINT         NOT NULL,
    latencies       MEDIUMBLOB     NOT NULL,
    version         BIGINT         NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, day),
    -- The fleet views walk every customer's rows of a range of days in (day, customer) order.
    INDEX daily_stats_by_day (day, customer_id)
) ENGINE = InnoDB;

-- How far each source file has been committed, written in the same transaction as its stats, and
-- the lease of the job reading it.
CREATE TABLE IF NOT EXISTS source_offsets (
    source       VARBINARY(1024) NOT NULL PRIMARY KEY,
    fingerprint  BLOB            NOT NULL,
    byte_offset  BIGINT          NOT NULL,
    line_count   BIGINT          NOT NULL,
    owner        VARBINARY(255),
    lease_until  BIGINT
) ENGINE = InnoDB;

-- The newest event time committed (Unix seconds); one row, id = 1.
CREATE TABLE IF NOT EXISTS ingest_watermark (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    event_time  BIGINT  NOT NULL
) ENGINE = InnoDB;

-- Set in the same transaction as any change to a customer's rows, to one number above every
-- stored version: "what changed since version N" is one index range.
CREATE TABLE IF NOT EXISTS customer_versions (
    customer_id  VARBINARY(255) NOT NULL PRIMARY KEY,
    version      BIGINT         NOT NULL,
    INDEX customer_versions_by_version (version)
) ENGINE = InnoDB;

-- One row whose lock every writer takes first: MySQL has no table lock that lives inside a
-- transaction and that plain (MVCC) readers never wait for, as PostgreSQL's SHARE ROW EXCLUSIVE.
CREATE TABLE IF NOT EXISTS writer_lock (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    writes  BIGINT  NOT NULL
) ENGINE = InnoDB;
INSERT IGNORE INTO writer_lock (id, writes) VALUES (1, 0);
