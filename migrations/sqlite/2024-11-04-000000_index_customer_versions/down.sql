DROP INDEX IF EXISTS customer_versions_by_version;
