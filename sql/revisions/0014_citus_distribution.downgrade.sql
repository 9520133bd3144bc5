-- On a plain server: the distribution function goes, nothing else changed.
--
-- On Citus this downgrade is refused, and the downgrade (one transaction) changes nothing:
-- Citus cannot turn the distributed tables back into plain ones in place, since
-- undistribute_table refuses tables with an identity column (ml_prediction_log,
-- ml_retraining_events, ...) and Citus refuses ALTER ... DROP IDENTITY on a distributed
-- table. Leaving Citus is a dump of the coordinator restored into a plain server
-- (docs/scale-out.md#leaving-citus).
DO $$
DECLARE
    distributed boolean := false;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        -- pg_dist_partition exists only with Citus: named at run time
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition p
                                  JOIN pg_class c ON c.oid = p.logicalrelid
                                 WHERE c.relnamespace = ''public''::regnamespace)'
            INTO distributed;
    END IF;
    IF distributed THEN
        RAISE EXCEPTION 'downgrading below 0014_citus_distribution on Citus is not supported: '
                        'the per-client tables stay distributed'
            USING HINT = 'to leave Citus, pg_dump the coordinator and restore the dump into a '
                         'plain PostgreSQL server (docs/scale-out.md); downgrade to '
                         '0014_citus_distribution or above instead';
    END IF;
END;
$$;

DROP FUNCTION IF EXISTS public.pgml_flow_citus_distribute(regclass[]);
