-- Stores the watermark.
INSERT INTO ingest_watermark (id, event_time) VALUES (1, ?)
ON CONFLICT (id) DO UPDATE SET event_time = excluded.event_time
