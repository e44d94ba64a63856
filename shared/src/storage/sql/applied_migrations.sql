-- The migrations diesel recorded as applied.
SELECT version FROM __diesel_schema_migrations
