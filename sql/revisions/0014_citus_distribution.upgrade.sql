-- Citus: the per-client tables distributed by client_id and co-located, the small shared
-- tables as reference tables (a copy on every node). Nothing changes on a plain server.
--
-- Keys: every primary key, unique constraint and foreign key of a per-client table already
-- leads with client_id (tests/test_migrations.py::test_client_id_leads_every_key), so that
-- Citus can enforce them on each shard. The two unique constraints without client_id,
-- clients.slug and client_bi_roles.role_name, are on reference tables, where Citus
-- enforces them as on one server; nothing has to change on a plain server.
--
-- The work is one function, kept after this revision: sql/idempotent/003_citus.sql calls it
-- on every upgrade, so that a table a later revision adds is distributed too (a per-client
-- table: any table of schema public with a client_id column). What lives elsewhere
-- (pgml's tables: sql/idempotent/055_citus_pgml.sql) is named in the argument.
CREATE OR REPLACE FUNCTION public.pgml_flow_citus_distribute(extra_reference regclass[] DEFAULT '{}')
RETURNS TABLE (table_name regclass, distributed_as text)
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $fn$
DECLARE
    -- small tables read by every node (the RLS function reads client_bi_roles; every feature
    -- view joins issuetypes and clients): a copy on each node, joined locally with any shard
    shared text[] := ARRAY['clients', 'client_bi_roles', 'issuetypes', 'pgml_flow_settings',
                           'pgml_flow_secrets', 'ml_model_registry', 'ml_rollout_global',
                           'ml_job_runs'];
    -- the co-location anchor: every distributed table is co-located with it, so a client's
    -- rows of all tables are on one node and joins on client_id stay there
    anchor constant regclass := 'public.issues';
    rel regclass;
    kind text;
    fk record;
    fks text[] := '{}';
    is_coordinator boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- DDL on Citus tables runs on the coordinator only (the workers get it propagated)
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO is_coordinator;
    IF NOT is_coordinator THEN
        RETURN;
    END IF;

    CREATE TEMP TABLE IF NOT EXISTS pg_temp.citus_plan (rel regclass PRIMARY KEY, kind text)
        ON COMMIT DROP;
    TRUNCATE pg_temp.citus_plan;
    INSERT INTO pg_temp.citus_plan
    SELECT c.oid::regclass,
           CASE WHEN c.relname = ANY (shared) OR c.oid = ANY (extra_reference)
                THEN 'reference' ELSE 'distributed' END
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND ((n.nspname = 'public'
             AND (c.relname = ANY (shared)
                  OR EXISTS (SELECT 1 FROM pg_attribute a
                              WHERE a.attrelid = c.oid AND a.attname = 'client_id'
                                AND NOT a.attisdropped)))
            OR c.oid = ANY (extra_reference))
       -- already a reference or distributed table: nothing to do (a Citus local table,
       -- which Citus makes of a table linked to a reference table, is converted)
       AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p
                        WHERE p.logicalrelid = c.oid
                          AND (p.partmethod = 'h' OR p.repmodel = 't'));
    IF NOT EXISTS (SELECT 1 FROM pg_temp.citus_plan) THEN
        RETURN;
    END IF;

    -- Citus accepts foreign keys between its tables only once both ends are converted, and
    -- converting a table linked to a reference table by a foreign key first turns the whole
    -- linked group into Citus local tables: the foreign keys that touch a table of the plan
    -- are dropped, the tables converted, the keys added back, unchanged.
    FOR fk IN
        SELECT con.conname, con.conrelid::regclass AS child, pg_get_constraintdef(con.oid) AS def
          FROM pg_constraint con
         WHERE con.contype = 'f'
           AND (con.conrelid IN (SELECT p.rel FROM pg_temp.citus_plan p)
                OR con.confrelid IN (SELECT p.rel FROM pg_temp.citus_plan p))
         ORDER BY con.conrelid::regclass::text, con.conname
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.child, fk.conname);
        fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.child, fk.conname, fk.def);
    END LOOP;

    FOR rel, kind IN
        SELECT p.rel, p.kind FROM pg_temp.citus_plan p
         ORDER BY p.kind DESC,  -- reference tables first
                  p.rel <> anchor, p.rel::text
    LOOP
        IF kind = 'reference' THEN
            PERFORM create_reference_table(rel);
        ELSIF rel = anchor OR NOT EXISTS (SELECT 1 FROM pg_dist_partition d
                                           WHERE d.logicalrelid = anchor
                                             AND d.partmethod = 'h') THEN
            PERFORM create_distributed_table(rel, 'client_id');
        ELSE
            PERFORM create_distributed_table(rel, 'client_id', colocate_with => anchor::text);
        END IF;
        table_name := rel;
        distributed_as := kind;
        RETURN NEXT;
    END LOOP;

    FOREACH kind IN ARRAY fks LOOP
        EXECUTE kind;
    END LOOP;
END;
$fn$;

REVOKE ALL ON FUNCTION public.pgml_flow_citus_distribute(regclass[]) FROM PUBLIC;

SELECT * FROM public.pgml_flow_citus_distribute();
