DROP TABLE ingest_watermark;
DROP TABLE source_offsets;
DROP TABLE daily_stats;
