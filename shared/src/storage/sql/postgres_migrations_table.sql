-- How many tables named __diesel_schema_migrations the connection sees (0 or 1).
SELECT count(*) AS n FROM (SELECT to_regclass('__diesel_schema_migrations') AS t) found
WHERE t IS NOT NULL
