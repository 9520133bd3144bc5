-- Revision 0012_pgml_compat: PostgresML's pgml.status enum (in_progress, successful,
-- failed), in pgml-flow's own pgml schema only (the real extension has its own). Its head
-- state, with every other pgml table and type, is sql/pgml/0000_schema.sql, which also
-- recreates it after a DROP SCHEMA pgml CASCADE.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pgml_flow_settings WHERE name = 'pgml_backend'
                                                  AND value = 'pgml-flow')
       AND to_regnamespace('pgml') IS NOT NULL AND to_regtype('pgml.status') IS NULL THEN
        CREATE TYPE pgml.status AS ENUM ('in_progress', 'successful', 'failed');
    END IF;
END;
$$;
