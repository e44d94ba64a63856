-- Batches pushed to logstats-ingest --listen with an Idempotency-Key: the key and what the
-- batch counted, written in the transaction that committed its lines. A batch sent again with
-- the same key is answered from here and adds nothing. Rows older than the job's
-- --push-key-ttl are deleted by its commits.
-- Keys are compared byte for byte (ascii_bin): "a" and "A" are two keys.
CREATE TABLE IF NOT EXISTS push_batches (
    batch_key     VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    accepted      BIGINT NOT NULL,
    rejected      BIGINT NOT NULL,
    late          BIGINT NOT NULL,
    committed_at  BIGINT NOT NULL,
    INDEX push_batches_by_time (committed_at)
) ENGINE = InnoDB;
