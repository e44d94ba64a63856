-- Every SQLite connection: 16 KiB pages for a database it creates (an existing file keeps its
-- page size until a VACUUM), wait for a writer instead of failing at once, write-ahead logging
-- (readers never wait for the writer), fsync at checkpoints only, a checkpoint every 4,096
-- pages of log (64 MiB), and reads through mmap. The page size comes first: it cannot change
-- once the file is in WAL mode.
PRAGMA page_size = 16384;
PRAGMA busy_timeout = 30000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA wal_autocheckpoint = 4096;
PRAGMA mmap_size = 268435456;
