-- Every MySQL/MariaDB connection: each statement reads the newest committed rows, as on
-- PostgreSQL (InnoDB's default, REPEATABLE READ, would keep a transaction's first snapshot); a
-- writer waits for another's commit as long as a slow commit can take; times are UTC.
SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;
SET SESSION innodb_lock_wait_timeout = 600;
SET time_zone = '+00:00';
