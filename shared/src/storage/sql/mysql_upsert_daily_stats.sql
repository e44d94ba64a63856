-- Writes merged daily rows over the stored ones. The marker after VALUES is replaced by one
-- group of nine parameters per row of the statement.
INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, latency_min_us,
    latency_max_us, latencies, version)
VALUES {rows}
ON DUPLICATE KEY UPDATE
    successful = VALUES(successful), failed = VALUES(failed),
    latency_sum_us = VALUES(latency_sum_us), latency_min_us = VALUES(latency_min_us),
    latency_max_us = VALUES(latency_max_us), latencies = VALUES(latencies),
    version = VALUES(version)
