-- Bumped in the same transaction as any change to a customer's daily_stats rows: a reader that
-- sees the same version twice knows the rows did not change in between.
CREATE TABLE IF NOT EXISTS customer_versions (
    customer_id  TEXT    NOT NULL PRIMARY KEY,
    version      BIGINT  NOT NULL
);
