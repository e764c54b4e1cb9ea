-- Read-only access to the warehouse for the payments API (payments_api/): SELECT on the three
-- tables it reads and nothing else (no INSERT, UPDATE, DELETE, TRUNCATE, no other table).
--
-- Run it as the owner of the warehouse tables (or a superuser), after the tables exist (the
-- pipeline's ensure_warehouse_schema task creates them), with psql:
--
--   psql "$WAREHOUSE_ADMIN_URL" -v ON_ERROR_STOP=1 -v role=totes_payments_api -v schema=public \
--        -f payments_api/sql/readonly_role.sql
--
-- The login role itself is created once beforehand, its password kept in your secret store:
--
--   CREATE ROLE totes_payments_api LOGIN PASSWORD '...' NOSUPERUSER NOCREATEDB NOCREATEROLE;
--
-- Safe to run again. payments_api.readonly_role.apply() runs this same file through psycopg.

GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON TABLE :"schema".fact_payment, :"schema".dim_currency, :"schema".dim_counterparty TO :"role";

-- Belt and braces: every session of the role starts read-only (the API also sets this on each
-- of its connections), so even a table granted by mistake later cannot be written through it.
ALTER ROLE :"role" SET default_transaction_read_only = on;
