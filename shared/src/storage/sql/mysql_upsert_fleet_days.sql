-- Writes merged fleet rows (one per day) over the stored ones. The marker after VALUES is
-- replaced by one group of eight parameters per row of the statement.
INSERT INTO fleet_days (day, successful, failed, latency_sum_us, latency_min_us, latency_max_us,
    latencies, version)
VALUES {rows}
ON DUPLICATE KEY UPDATE
    successful = VALUES(successful), failed = VALUES(failed),
    latency_sum_us = VALUES(latency_sum_us), latency_min_us = VALUES(latency_min_us),
    latency_max_us = VALUES(latency_max_us), latencies = VALUES(latencies),
    version = VALUES(version)
