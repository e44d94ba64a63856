-- First statement of every PostgreSQL write transaction: excludes every other writer, while
-- plain reads (ACCESS SHARE) never wait for it.
LOCK TABLE daily_stats, source_offsets IN SHARE ROW EXCLUSIVE MODE
