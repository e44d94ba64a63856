-- Writes merged fleet rows (one per day) over the stored ones. The marker after VALUES is
-- replaced by one group of eight parameters per row of the statement.
INSERT INTO fleet_days (day, successful, failed, latency_sum_us, latency_min_us, latency_max_us,
    latencies, version)
VALUES {rows}
ON CONFLICT (day) DO UPDATE SET
    successful = excluded.successful, failed = excluded.failed,
    latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us,
    latency_max_us = excluded.latency_max_us, latencies = excluded.latencies,
    version = excluded.version
