-- On a Citus coordinator: the pgml tables (projects, snapshots, models, deployments, files)
-- become reference tables, replicated on every node. Nothing happens on a plain server.
--
-- Why reference tables (docs/scale-out.md#where-the-models-live): a client's predictions
-- are computed on the worker that holds the client's shard (a one-client query is routed
-- there whole, pgml.predict included), and its training runs there too. With the models
-- on every node, pgml.predict finds the model wherever the shard is, a rebalance that
-- moves the shard needs no copy step, and a model trained on a worker is written to every
-- node in one (two-phase) commit. pgml's own tables have no client_id to distribute by,
-- and node-local tables would have to move with the shards by hand. The cost: every model
-- is stored once per node, and a training's writes commit on every node.
--
-- The ids of these tables are bigserial (bigint): Citus lets a worker take values of such
-- a sequence (from a range of its own), so a training run on a worker can insert.
DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- DDL on Citus tables is run on the coordinator only (workers get it propagated)
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO STRICT t;
    IF NOT t::boolean THEN
        RETURN;
    END IF;
    -- parents first: a reference table may only reference reference tables. Making
    -- pgml.projects one turns the tables with a foreign key to it into Citus local tables
    -- (partmethod 'n', replication model 's'), which are converted next in turn.
    FOREACH t IN ARRAY ARRAY['projects', 'snapshots', 'models', 'deployments', 'files']
    LOOP
        IF to_regclass(format('pgml.%I', t)) IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_dist_partition
                            WHERE logicalrelid = format('pgml.%I', t)::regclass
                              AND repmodel = 't') THEN
            PERFORM create_reference_table(format('pgml.%I', t));
        END IF;
    END LOOP;
END;
$$;

-- The USING clause of the tenant_isolation policies (800_policies.sql): on a plain server
-- the InitPlan form, which evaluates the SECURITY DEFINER function once per query; on
-- Citus the plain call, because Citus refuses subqueries in the policies of distributed
-- tables ("Subqueries are not supported in policies on distributed tables").
CREATE OR REPLACE FUNCTION pgml_flow.tenant_filter()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')
                THEN 'client_id = pgml_flow.current_client_id()'
                ELSE 'client_id = (SELECT pgml_flow.current_client_id())' END
$$;
