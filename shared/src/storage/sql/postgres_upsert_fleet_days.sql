-- Writes merged fleet rows (one per day) over the stored ones: one array per column, so the
-- statement has eight parameters however many rows a chunk holds.
INSERT INTO fleet_days (day, successful, failed, latency_sum_us, latency_min_us, latency_max_us,
    latencies, version)
SELECT * FROM unnest($1::date[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
    $7::bytea[], $8::int8[])
ON CONFLICT (day) DO UPDATE SET
    successful = excluded.successful, failed = excluded.failed,
    latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us,
    latency_max_us = excluded.latency_max_us, latencies = excluded.latencies,
    version = excluded.version
