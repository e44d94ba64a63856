-- How many tables named __diesel_schema_migrations the connection sees (0 or 1).
SELECT count(*) AS n FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name = '__diesel_schema_migrations'
