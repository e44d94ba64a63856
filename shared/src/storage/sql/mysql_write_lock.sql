-- First statement of every MySQL/MariaDB write transaction: the lock of the one writer_lock row
-- excludes every other writer (plain reads take no locks).
UPDATE writer_lock SET writes = writes + 1 WHERE id = 1
