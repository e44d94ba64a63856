-- Writes a daily row of a key that has no stored row (a day after the last stored day). The
-- marker after VALUES is replaced by the row's group of nine parameters.
INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, latency_min_us,
    latency_max_us, latencies, version)
VALUES {rows}
