-- A read-only role for auditors on a ddh-renewd PostgreSQL database.
-- Run it as the role that owns the schema (the one `db copy` connected as), in that database:
--   psql -h HOST -U ddh -d ddh -f contrib/postgres/auditor-role.sql
-- then give the auditor a password with `\password ddh_auditor`.
CREATE ROLE ddh_auditor LOGIN;
GRANT USAGE ON SCHEMA public TO ddh_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ddh_auditor;
-- Tables and views added by later versions are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ddh_auditor;
-- Every session of the role is read-only, even for a statement the grants would allow.
ALTER ROLE ddh_auditor SET default_transaction_read_only = on;
