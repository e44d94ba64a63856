-- A lease per source: the job that holds it is the only one that reads and commits the source.
ALTER TABLE source_offsets ADD COLUMN owner TEXT;
ALTER TABLE source_offsets ADD COLUMN lease_until BIGINT;
