-- Trigram (pg_trgm) indexes for the API's substring filters: device hostname/address and log text
-- search (`ILIKE '%…%'`). pg_trgm ships with PostgreSQL and is a trusted extension since 13, so a
-- database owner can create it; it is installed in `public` (shared by every NetRaven schema).
-- Where it cannot be created the indexes are skipped and those searches scan instead.
DO $$
DECLARE
    ext_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm unavailable (%); substring searches will scan', SQLERRM;
    END;
    SELECT quote_ident(n.nspname) INTO ext_schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    IF ext_schema IS NOT NULL THEN
        EXECUTE format('CREATE INDEX devices_hostname_trgm ON devices USING gin (hostname %s.gin_trgm_ops)', ext_schema);
        EXECUTE format('CREATE INDEX devices_address_trgm ON devices USING gin (address %s.gin_trgm_ops)', ext_schema);
        EXECUTE format('CREATE INDEX logs_message_trgm ON logs USING gin (message %s.gin_trgm_ops)', ext_schema);
    END IF;
END
$$;
