-- One precomputed row per (customer, UTC day); the digest is the codec of shared/src/digest.rs.
CREATE TABLE IF NOT EXISTS daily_stats (
    customer_id     TEXT    NOT NULL,
    day             DATE    NOT NULL,
    successful      BIGINT  NOT NULL,
    failed          BIGINT  NOT NULL,
    latency_sum_us  BIGINT  NOT NULL,
    latency_min_us  BIGINT  NOT NULL,
    latency_max_us  BIGINT  NOT NULL,
    digest          BYTEA   NOT NULL,
    PRIMARY KEY (customer_id, day)
);

-- How far each source file has been committed, written in the same transaction as its stats.
CREATE TABLE IF NOT EXISTS source_offsets (
    source       TEXT    NOT NULL PRIMARY KEY,
    fingerprint  BYTEA   NOT NULL,
    byte_offset  BIGINT  NOT NULL,
    line_count   BIGINT  NOT NULL
);

-- The newest event time committed (Unix seconds); one row, id = 1.
CREATE TABLE IF NOT EXISTS ingest_watermark (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    event_time  BIGINT  NOT NULL
);
