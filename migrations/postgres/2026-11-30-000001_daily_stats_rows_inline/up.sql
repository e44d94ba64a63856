-- A day's exact latency histogram takes ~650 bytes for ~650 requests and up to ~4 kB for busy
-- days. Past PostgreSQL's default toast_tuple_target (2 kB) a row's latencies were compressed and
-- moved out of line, so each commit compressed and each read-merge-upsert fetched and
-- decompressed them from the TOAST table (the 10M-line benchmark's commits took 1.7 s instead of
-- 1.0 s). Rows up to 8 kB now stay whole on their heap page.
ALTER TABLE daily_stats SET (toast_tuple_target = 8160);
