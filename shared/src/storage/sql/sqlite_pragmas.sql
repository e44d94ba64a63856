-- Every SQLite connection: wait for a writer instead of failing at once, write-ahead logging
-- (readers never wait for the writer), fsync at checkpoints only, a checkpoint every 64 MiB of
-- log, and reads through mmap.
PRAGMA busy_timeout = 30000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA wal_autocheckpoint = 16384;
PRAGMA mmap_size = 268435456;
