-- Stores the watermark.
INSERT INTO ingest_watermark (id, event_time) VALUES (1, ?)
ON DUPLICATE KEY UPDATE event_time = VALUES(event_time)
