-- Writes daily rows no stored row can have (their days are after the last stored day). The
-- marker after VALUES is replaced by one group of nine parameters per row of the statement.
INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, latency_min_us,
    latency_max_us, latencies, version)
VALUES {rows}
