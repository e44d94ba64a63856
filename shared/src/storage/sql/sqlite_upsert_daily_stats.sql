-- Writes merged daily rows over the stored ones. The marker after VALUES is replaced by one
-- group of nine parameters per row of the statement.
INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, latency_min_us,
    latency_max_us, latencies, version)
VALUES {rows}
ON CONFLICT (customer_id, day) DO UPDATE SET
    successful = excluded.successful, failed = excluded.failed,
    latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us,
    latency_max_us = excluded.latency_max_us, latencies = excluded.latencies,
    version = excluded.version
