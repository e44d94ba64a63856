DROP TABLE IF EXISTS push_batches;
