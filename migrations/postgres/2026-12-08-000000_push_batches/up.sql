-- Batches pushed to logstats-ingest --listen with an Idempotency-Key: the key and what the
-- batch counted, written in the transaction that committed its lines. A batch sent again with
-- the same key is answered from here and adds nothing. Rows older than the job's
-- --push-key-ttl are deleted by its commits.
CREATE TABLE IF NOT EXISTS push_batches (
    batch_key     TEXT NOT NULL PRIMARY KEY,
    accepted      BIGINT NOT NULL,
    rejected      BIGINT NOT NULL,
    late          BIGINT NOT NULL,
    committed_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS push_batches_by_time ON push_batches (committed_at);
