DROP TABLE writer_lock;
DROP TABLE customer_versions;
DROP TABLE ingest_watermark;
DROP TABLE source_offsets;
DROP TABLE daily_stats;
