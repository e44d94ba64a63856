-- The PostgreSQL roles of compose.yaml: the ingest job's, which owns the schema's tables (it
-- applies the migrations on start) and writes the stats, and the API's, which may only read them
-- (the API runs with --no-migrate). The postgres image runs this file once, as POSTGRES_USER on
-- POSTGRES_DB, when it initialises an empty data volume; on a volume made by an older
-- compose.yaml, run it by hand (docs/TOKENS.md, "Migrations and database roles", has the command). Running it again
-- changes nothing.
--
-- The passwords are the ones compose.yaml's URLs hold: change both places together, e.g.
--   ALTER ROLE logstats_api PASSWORD '...';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logstats_ingest') THEN
        CREATE ROLE logstats_ingest LOGIN PASSWORD 'logstats_ingest';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logstats_api') THEN
        CREATE ROLE logstats_api LOGIN PASSWORD 'logstats_api';
    END IF;
END
$$;

-- Only the ingest role creates tables in the schema (PostgreSQL 15 and later already refuse
-- CREATE to everyone else; older servers grant it to PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO logstats_ingest;
GRANT USAGE ON SCHEMA public TO logstats_api;

-- Every table the ingest role creates (the stats tables, diesel's migrations table) can be read,
-- and only read, by the API role.
ALTER DEFAULT PRIVILEGES FOR ROLE logstats_ingest IN SCHEMA public
    GRANT SELECT ON TABLES TO logstats_api;

-- Tables made before these roles existed (by an older compose.yaml, as POSTGRES_USER) pass to
-- the ingest role, so it can write them and apply later migrations; the API role reads them.
DO $$
DECLARE
    existing record;
BEGIN
    FOR existing IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO logstats_ingest', existing.tablename);
    END LOOP;
END
$$;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO logstats_api;
