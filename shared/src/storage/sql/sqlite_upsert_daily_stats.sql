-- Writes a merged daily row over the stored one. The marker after VALUES is replaced by the
-- row's group of nine parameters.
INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, latency_min_us,
    latency_max_us, latencies, version)
VALUES {rows}
ON CONFLICT (customer_id, day) DO UPDATE SET
    successful = excluded.successful, failed = excluded.failed,
    latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us,
    latency_max_us = excluded.latency_max_us, latencies = excluded.latencies,
    version = excluded.version
