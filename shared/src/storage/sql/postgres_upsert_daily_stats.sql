-- Writes merged daily rows over the stored ones: one array per column, so the statement has
-- nine parameters however many rows a chunk holds.
INSERT INTO daily_stats (customer_id, day, successful, failed, latency_sum_us, latency_min_us,
    latency_max_us, latencies, version)
SELECT * FROM unnest($1::text[], $2::date[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
    $7::int8[], $8::bytea[], $9::int8[])
ON CONFLICT (customer_id, day) DO UPDATE SET
    successful = excluded.successful, failed = excluded.failed,
    latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us,
    latency_max_us = excluded.latency_max_us, latencies = excluded.latencies,
    version = excluded.version
