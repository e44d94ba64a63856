-- How many tables named __diesel_schema_migrations the connection sees (0 or 1).
SELECT count(*) AS n FROM sqlite_master
WHERE type = 'table' AND name = '__diesel_schema_migrations'
