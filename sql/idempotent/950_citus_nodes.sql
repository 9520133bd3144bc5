-- On a Citus coordinator, after every other idempotent file: what the workers need to
-- serve and train a client next to its shard (docs/scale-out.md), by
-- pgml_flow.citus_sync_nodes(), which pgml_flow.citus_tenants.rebalance also runs after a
-- worker was added (a new node gets the views without their privileges). Nothing happens
-- on a plain server.
--
-- 1. Functions that read Citus tables while they run inside a one-client query on a
--    worker (a shard query): a one-client BI query is routed to the client's worker whole,
--    analytics.predictions included, which reads the registry, the client's deployed
--    model and baseline; pgml.predict and pgml_flow.predict_rows load models from the pgml
--    reference tables; the tenant policies' pgml_flow.current_client_id() reads the role
--    map. Citus refuses such a nested query ("cannot execute a distributed query from
--    a query on a shard") unless citus.allow_nested_distributed_execution is on; it is set
--    on these functions only, for the time of each call. Its warning ("possible
--    incorrectness") is about nested queries that go to other nodes and miss the outer
--    transaction's writes: these read reference tables, which have a placement on every
--    node and are read locally, in the same transaction.
-- 2. Privileges on views: Citus propagates views to the workers, and an explicit
--    GRANT ... ON <view>, but not GRANT ... ON ALL TABLES IN SCHEMA (900_grants.sql); the
--    views' privileges are granted again here one view at a time, so the workers' views
--    have the coordinator's privileges (and no more: a view created on a worker has its
--    owner's only).
-- 3. pgml_flow_ml may log in. Citus runs a query's pieces on the workers over connections
--    made as the current user, and inside the BI surface's SECURITY DEFINER functions that
--    is their owner, pgml_flow_ml: a NOLOGIN role is refused ("role pgml_flow_ml is not
--    permitted to log in"). It gets no password, so it can log in only where pg_hba.conf
--    trusts the connection or takes a certificate: on the local cluster, the nodes' unix
--    sockets, which only the server's OS user can reach (and which let that user in as the
--    superuser anyway); on a real deployment, what the operator sets up for Citus's own
--    node-to-node connections (docs/scale-out.md). Still no member of pgml_flow_bi can
--    become it (the isolation audit checks that).
CREATE OR REPLACE FUNCTION pgml_flow.citus_sync_nodes()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
    v record;
    granted integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN 0;
    END IF;
    -- every function of pgml, pgml_flow, analytics and monitoring but those in LANGUAGE
    -- sql (a SET clause would stop the planner inlining them; what they read, they read
    -- through the others), and current_client_id() (SQL with a SET clause already)
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE (p.pronamespace IN ('pgml'::regnamespace, 'pgml_flow'::regnamespace,
                                        'analytics'::regnamespace, 'monitoring'::regnamespace)
                     AND p.prokind = 'f'
                     AND p.prolang <> (SELECT l.oid FROM pg_language l
                                        WHERE l.lanname = 'sql')
                     OR p.oid = 'pgml_flow.current_client_id()'::regprocedure)
                AND NOT coalesce('citus.allow_nested_distributed_execution=on'
                                 = ANY (p.proconfig), false)
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET citus.allow_nested_distributed_execution = on', f);
    END LOOP;
    ALTER ROLE pgml_flow_ml LOGIN;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgml_flow_ml', current_database());
    FOR v IN SELECT c.oid::regclass AS rel, a.privilege_type AS privilege,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                         ELSE quote_ident(a.grantee::regrole::text) END AS grantee
               FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
              WHERE c.relkind = 'v' AND a.grantee <> c.relowner
                AND c.relnamespace::regnamespace::text IN
                    ('public', 'analytics', 'pgml', 'pgml_flow', 'monitoring')
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o
                             WHERE o.classid = 'pg_class'::regclass AND o.objid = c.oid)
    LOOP
        EXECUTE format('GRANT %s ON %s TO %s', v.privilege, v.rel, v.grantee);
        granted := granted + 1;
    END LOOP;
    RETURN granted;
END;
$$;
COMMENT ON FUNCTION pgml_flow.citus_sync_nodes() IS
    'Citus: gives every node the views'' privileges and what the workers need to predict (run after adding a worker)';
-- (900_grants.sql grants every pgml_flow function to pgml_flow_ml: not this one, which
-- changes roles and privileges)
REVOKE ALL ON FUNCTION pgml_flow.citus_sync_nodes() FROM PUBLIC, pgml_flow_ml;

DO $$
DECLARE
    coordinator boolean := false;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO STRICT coordinator;
    END IF;
    -- DDL on Citus objects is the coordinator's (the workers get it propagated)
    IF coordinator THEN
        PERFORM pgml_flow.citus_sync_nodes();
    END IF;
END;
$$;
