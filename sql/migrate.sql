-- Queries of the schema migrations (pgml_flow.migrate), loaded by name.
-- A downgrade removes pgml-flow's schemas object by object, never with CASCADE: these list
-- what is in them, so that each kind is dropped in one statement (objects of one statement
-- may depend on each other) and PostgreSQL refuses when an object outside depends on one.

-- name: product_policies
-- The RLS policies of sql/idempotent/800_policies.sql (they use pgml_flow.current_client_id).
SELECT schemaname, tablename, policyname
  FROM pg_policies
 WHERE schemaname = 'public' AND policyname = ANY(%(names)s)
 ORDER BY tablename, policyname;

-- name: drop_worker_training_views
-- On a Citus coordinator: each client trains on the worker that holds its rows
-- (pgml_flow/citus_tenants.py), so its training view is that worker's own, not propagated;
-- a downgrade's DROP of the feature views it reads, propagated to the workers, would fail
-- on it. They are dropped there first (the next training makes them again). Run only
-- where citus_tenants.sql's has_citus says so (the function does not exist elsewhere).
-- No percent sign: the driver would take it for a parameter.
SELECT nodename, nodeport, success, result FROM pg_catalog.run_command_on_workers($cmd$
DO $do$
DECLARE
    v regclass;
BEGIN
    FOR v IN SELECT c.oid::regclass FROM pg_class c
              WHERE c.relnamespace = to_regnamespace('pgml_flow_training') AND c.relkind = 'v'
    LOOP
        EXECUTE 'DROP VIEW IF EXISTS ' || v::text;  -- regclass's text is quoted
    END LOOP;
END
$do$$cmd$);

-- name: schema_relations
-- Relations of one kind (pg_class.relkind) in the schemas, except members of an extension
-- (they go with the extension) and relations that go with another one (sequences owned by
-- a column, listed after their tables are dropped, are gone by then).
SELECT n.nspname, c.relname
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = ANY(%(kinds)s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('e', 'a', 'i'))
 ORDER BY n.nspname, c.relname;

-- name: schema_extensions
SELECT e.extname
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE n.nspname = ANY(%(schemas)s)
 ORDER BY e.extname;

-- name: schema_routines
-- Functions, procedures and aggregates (DROP ROUTINE takes all three), with the argument
-- types that identify each overload, as PostgreSQL prints them (quoted where needed).
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                      AND d.deptype = 'e')
 ORDER BY n.nspname, p.proname, 3;

-- name: schema_types
-- Enums, domains, ranges and standalone composite types (a table's row type and array
-- types go with their table or element type; a multirange with its range).
SELECT n.nspname, t.typname, t.typtype
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
  LEFT JOIN pg_class c ON c.oid = t.typrelid
 WHERE n.nspname = ANY(%(schemas)s)
   AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                      AND d.deptype = 'e')
 ORDER BY n.nspname, t.typname;

-- name: pgml_damage
-- Which of the pgml API's tables (sql/pgml/0000_schema.sql) are missing, and the foreign
-- keys between them that are gone (a table dropped with CASCADE takes them along).
SELECT to_regnamespace('pgml') IS NOT NULL AS schema_exists,
       ARRAY(SELECT t FROM unnest(ARRAY['projects', 'snapshots', 'models', 'deployments',
                                        'files']) t
              WHERE to_regclass(format('pgml.%I', t)) IS NULL) AS missing_tables,
       ARRAY(SELECT tab FROM (VALUES ('models', 'models_project_id_fkey'),
                                     ('deployments', 'deployments_model_id_fkey'),
                                     ('files', 'files_model_id_fkey')) AS k(tab, con)
              WHERE to_regclass(format('pgml.%I', tab)) IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM pg_constraint
                                 WHERE conname = k.con
                                   AND conrelid = to_regclass(format('pgml.%I', tab))))
           AS orphaned_tables;
