-- The name of daily_stats' primary key (daily_stats_pkey when the migrations made it).
SELECT conname::text AS name
FROM pg_constraint
WHERE conrelid = 'daily_stats'::regclass AND contype = 'p'
