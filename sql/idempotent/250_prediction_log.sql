-- The prediction log's whole life: what a BI read logs (a sample, once per unchanged
-- prediction, under a per-client hourly cap) and how long it is kept (by age and by rows
-- per client). Limits: pgml_flow_settings, overridden per client by the clients columns of
-- the same name (NULL: the setting); -1 means no limit. docs/operations.md explains them.

-- The limits in force for one client.
--   rows_per_hour   rows logged per client and UTC hour; further predictions are not
--                   logged, only counted (ml_prediction_log_usage.capped_rows)
--   retention_days  rows older than this are pruned
--   max_rows        only the newest max_rows rows of the client are kept
CREATE OR REPLACE FUNCTION pgml_flow.prediction_log_policy(p_client bigint)
RETURNS TABLE(rows_per_hour bigint, retention_days integer, max_rows bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(c.prediction_log_rows_per_hour, s.rows_per_hour, 10000),
           coalesce(c.prediction_log_retention_days, s.retention_days, 30),
           coalesce(c.prediction_log_max_rows, s.max_rows, 100000)
      FROM (SELECT max(value) FILTER (WHERE name = 'prediction_log_rows_per_hour')::bigint
                       AS rows_per_hour,
                   max(value) FILTER (WHERE name = 'prediction_log_retention_days')::integer
                       AS retention_days,
                   max(value) FILTER (WHERE name = 'prediction_log_max_rows')::bigint
                       AS max_rows
              FROM public.pgml_flow_settings
             WHERE name IN ('prediction_log_rows_per_hour', 'prediction_log_retention_days',
                            'prediction_log_max_rows')) s
      LEFT JOIN public.clients c ON c.client_id = p_client
$$;
COMMENT ON FUNCTION pgml_flow.prediction_log_policy(bigint) IS
    'Prediction-log limits of a client: its clients columns, else pgml_flow_settings, else defaults';

-- Log the predictions of one read (called by analytics.predictions, as pgml_flow_ml).
-- 1. a uniform random sample of at most p_log_rows of them (all with -1);
-- 2. minus those already logged unchanged: same client, model, item, features and value
--    (prediction_key, unique): a re-read of an unchanged prediction adds nothing and costs
--    one index probe per sampled row;
-- 3. at most what is left of the client's rows_per_hour this UTC hour; the rest is counted
--    as capped in ml_prediction_log_usage, where every logged row is counted too (one row
--    per session and hour: concurrent reads never wait on a shared counter).
-- Returns the rows logged. Never raises (a failed log never fails the read: written to the
-- server log instead), never waits for another read's log (while one transaction logs a
-- client's model, concurrent reads of it skip their log: busy_reads) and writes nothing in
-- a read-only transaction.
CREATE OR REPLACE FUNCTION pgml_flow.log_predictions(
    p_client bigint, p_model_name text, p_model_id bigint, p_log_rows integer,
    p_ids bigint[], p_ys real[], p_probas real[], p_features text[],
    p_response_time_ms real, p_feature_mean double precision[],
    p_feature_stddev double precision[], p_target_mean double precision,
    p_target_stddev double precision)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- every table it reads it reads by key (the log's unique key, the usage and calibration
-- rows): never a scan, whatever the statistics said when a session cached the plan (a
-- log that was nearly empty then holds up to prediction_log_max_rows rows per client now)
SET enable_seqscan = off
AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    this_hour timestamptz := date_trunc('hour', now(), 'UTC');
    picked bigint[];
    keys uuid[];
    picked_ys real[];
    picked_probas real[];
    picked_features text[];
    cap bigint;
    room integer;
    capped integer := 0;
    logged integer := 0;
    -- the model's anomaly calibration (400_monitoring.sql): 3 / the 99th percentile of
    -- the raw score on its training rows, so that >= 3 flags about 1% of such rows
    scale double precision;
BEGIN
    IF p_model_id IS NULL OR p_log_rows = 0 OR n = 0
       OR current_setting('transaction_read_only')::boolean THEN
        RETURN 0;
    END IF;
    BEGIN
        -- one transaction at a time logs a client's model: a concurrent read (another
        -- dashboard, or a BI tool idle in its transaction) skips its log instead of
        -- waiting for the other's uncommitted rows of the same keys
        IF NOT pg_try_advisory_xact_lock(hashtextextended(
                'pgml_flow.log_predictions ' || p_client || ' ' || p_model_id, 0)) THEN
            INSERT INTO public.ml_prediction_log_usage AS u
                   (client_id, period_start, backend_pid, busy_reads)
            VALUES (p_client, this_hour, pg_backend_pid(), 1)
            ON CONFLICT ON CONSTRAINT ml_prediction_log_usage_pkey DO UPDATE
               SET busy_reads = u.busy_reads + 1;
            RETURN 0;
        END IF;
        -- one pass over the read's arrays (unnest), carrying the sampled values along:
        -- a subscript of a text[] walks it from its start, so 200 subscripts of a
        -- 5,000-row read cost milliseconds
        WITH sample AS (
            SELECT a.id, a.y, a.p, a.f, random() AS r
              FROM unnest(p_ids, p_ys, p_probas, p_features) WITH ORDINALITY
                   AS a(id, y, p, f, i)
             WHERE a.i <= n
             ORDER BY 5
             LIMIT CASE WHEN p_log_rows < 0 THEN NULL ELSE p_log_rows END
        ), keyed AS (
            SELECT s.*, md5(s.f || '|' || coalesce(coalesce(s.p, s.y)::text, ''))::uuid AS k
              FROM sample s
        )
        SELECT array_agg(s.id ORDER BY s.r), array_agg(s.k ORDER BY s.r),
               array_agg(s.y ORDER BY s.r), array_agg(s.p ORDER BY s.r),
               array_agg(s.f ORDER BY s.r)
          INTO picked, keys, picked_ys, picked_probas, picked_features
          FROM keyed s
         -- one probe of the unique key per sampled row, whatever the log holds: as NOT
         -- EXISTS this became an anti join, and its generic plan (a session's sixth read,
         -- which does not know the sample's size) read every row the client's model had
         -- logged on every read; a scalar subquery with LIMIT is never made a join
         WHERE (SELECT 1 FROM public.ml_prediction_log l
                 WHERE l.client_id = p_client AND l.model_id = p_model_id
                   AND l.entity_id = s.id AND l.prediction_key = s.k
                 LIMIT 1) IS NULL;
        IF picked IS NULL THEN
            RETURN 0;
        END IF;

        SELECT p.rows_per_hour INTO cap FROM pgml_flow.prediction_log_policy(p_client) p;
        IF cap >= 0 THEN
            room := least(cardinality(picked), greatest(0, cap - (
                SELECT coalesce(sum(u.logged_rows), 0) FROM public.ml_prediction_log_usage u
                 WHERE u.client_id = p_client AND u.period_start = this_hour)));
            capped := cardinality(picked) - room;
            picked := picked[1:room];
            keys := keys[1:room];
            picked_ys := picked_ys[1:room];
            picked_probas := picked_probas[1:room];
            picked_features := picked_features[1:room];
        END IF;

        IF cardinality(picked) > 0 THEN
            SELECT c.scale INTO scale FROM public.ml_anomaly_calibration c
             WHERE c.client_id = p_client AND c.model_id = p_model_id;
            -- anomaly score: the largest absolute z-score of the features and of the
            -- prediction against the model's training distribution (ml_model_baselines);
            -- a feature that never varied in training is compared with a spread of 1, and
            -- a NaN feature is missing, like NULL (NaN would sort above every score).
            -- Set-based (one aggregate over rows x features), ~20 us per row.
            WITH u AS (
                SELECT x.id, x.y, x.p, x.f, x.k
                  FROM unnest(picked, keys, picked_ys, picked_probas, picked_features)
                       AS x(id, k, y, p, f)
            ), baseline AS (
                SELECT * FROM unnest(p_feature_mean, p_feature_stddev) WITH ORDINALITY
                           AS b(mean, sd, i)
            ), z AS (
                SELECT u.id,
                       max(abs(nullif(v.x, 'NaN') - b.mean)
                           / CASE WHEN b.sd > 0 THEN b.sd ELSE 1 END) AS zmax
                  FROM u
                 CROSS JOIN LATERAL unnest(u.f::real[]) WITH ORDINALITY AS v(x, i)
                  JOIN baseline b ON b.i = v.i
                 GROUP BY u.id
            ), scored AS (
                SELECT u.*, (greatest(z.zmax, abs(coalesce(u.p, u.y) - p_target_mean)
                                              / nullif(p_target_stddev, 0))
                             * coalesce(scale, 1))::real AS score
                  FROM u LEFT JOIN z ON z.id = u.id
            )
            INSERT INTO public.ml_prediction_log
                   (client_id, model_name, model_id, entity_id, features_hash, features,
                    prediction, response_time_ms, anomaly_score, is_anomaly, severity,
                    prediction_key)
            SELECT p_client, p_model_name, p_model_id, s.id, md5(s.f), to_jsonb(s.f::real[]),
                   -- the six significant digits of the real (8.7, not 8.699999809265137)
                   coalesce(s.p, s.y)::numeric::double precision, p_response_time_ms, s.score,
                   coalesce(s.score >= 3, false), pgml_flow.anomaly_severity(s.score), s.k
              FROM scored s
            ON CONFLICT (client_id, model_id, entity_id, prediction_key)
               WHERE prediction_key IS NOT NULL DO NOTHING;
            GET DIAGNOSTICS logged = ROW_COUNT;
        END IF;

        IF logged > 0 OR capped > 0 THEN
            INSERT INTO public.ml_prediction_log_usage AS u
                   (client_id, period_start, backend_pid, logged_rows, capped_rows, capped_reads)
            VALUES (p_client, this_hour, pg_backend_pid(), logged, capped, (capped > 0)::integer)
            ON CONFLICT ON CONSTRAINT ml_prediction_log_usage_pkey DO UPDATE
               SET logged_rows = u.logged_rows + excluded.logged_rows,
                   capped_rows = u.capped_rows + excluded.capped_rows,
                   capped_reads = u.capped_reads + excluded.capped_reads;
        END IF;
        RETURN logged;
    EXCEPTION WHEN OTHERS THEN
        RAISE LOG 'pgml-flow: prediction log of % for client % failed: %',
            p_model_name, p_client, SQLERRM;
        RETURN 0;
    END;
END;
$$;
COMMENT ON FUNCTION pgml_flow.log_predictions(bigint, text, bigint, integer, bigint[], real[],
    real[], text[], real, double precision[], double precision[], double precision,
    double precision) IS
    'Log a read''s predictions: a sample, once per unchanged prediction, under the hourly cap';

-- What the prune removes for one client now: rows created before expire_before (by age),
-- and rows with id <= prune_through_id (all but the newest max_rows). NULL: no such limit.
-- PL/pgSQL, one query per step: Citus cannot plan a SQL function's parameters against a
-- distributed table (ml_prediction_log), and here the log's query has constants only.
CREATE OR REPLACE FUNCTION pgml_flow.prediction_log_bounds(p_client bigint)
RETURNS TABLE(expire_before timestamptz, prune_through_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol record;
BEGIN
    SELECT * INTO STRICT pol FROM pgml_flow.prediction_log_policy(p_client);
    expire_before := CASE WHEN pol.retention_days >= 0
                          THEN now() - pol.retention_days * interval '1 day' END;
    prune_through_id := NULL;
    IF pol.max_rows >= 0 THEN
        SELECT l.id INTO prune_through_id FROM public.ml_prediction_log l
         WHERE l.client_id = p_client ORDER BY l.id DESC OFFSET pol.max_rows LIMIT 1;
    END IF;
    RETURN NEXT;
END;
$$;

-- Per client: its log (rows, bytes, oldest), what a prune would delete now (expired by
-- age, over the size limit), its limits, and its usage (logged this hour; capped and busy
-- in the last 24 hours). What `pgml-flow log status` and `log prune --dry-run` show.
CREATE OR REPLACE FUNCTION pgml_flow.prediction_log_status(p_client bigint DEFAULT NULL)
RETURNS TABLE(client_id bigint, client text, logged_rows bigint, bytes bigint,
              oldest timestamptz, expired_rows bigint, over_size_rows bigint,
              rows_per_hour bigint, retention_days integer, max_rows bigint,
              logged_this_hour bigint, capped_rows_24h bigint, capped_reads_24h bigint,
              busy_reads_24h bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    c record;
    pol record;
    bnd record;
BEGIN
    -- one client at a time, its limits and bounds first: each query of the log then has
    -- that client's constants, and on Citus is routed to the client's shard (Citus plans
    -- neither a SQL function's parameters nor a lateral join from the clients reference
    -- table into a distributed table)
    FOR c IN SELECT x.client_id, x.name FROM public.clients x
              WHERE p_client IS NULL OR x.client_id = p_client
              ORDER BY x.client_id LOOP
        SELECT * INTO STRICT pol FROM pgml_flow.prediction_log_policy(c.client_id);
        SELECT * INTO STRICT bnd FROM pgml_flow.prediction_log_bounds(c.client_id);
        client_id := c.client_id;
        client := c.name;
        rows_per_hour := pol.rows_per_hour;
        retention_days := pol.retention_days;
        max_rows := pol.max_rows;
        SELECT count(*), coalesce(sum(pg_column_size(l.*)), 0)::bigint, min(l.created_at),
               count(*) FILTER (WHERE l.created_at < bnd.expire_before),
               count(*) FILTER (WHERE l.id <= bnd.prune_through_id
                                  AND NOT coalesce(l.created_at < bnd.expire_before, false))
          INTO logged_rows, bytes, oldest, expired_rows, over_size_rows
          FROM public.ml_prediction_log l WHERE l.client_id = c.client_id;
        SELECT coalesce(sum(x.logged_rows) FILTER (
                            WHERE x.period_start = date_trunc('hour', now(), 'UTC')), 0),
               coalesce(sum(x.capped_rows), 0), coalesce(sum(x.capped_reads), 0),
               coalesce(sum(x.busy_reads), 0)
          INTO logged_this_hour, capped_rows_24h, capped_reads_24h, busy_reads_24h
          FROM public.ml_prediction_log_usage x
         WHERE x.client_id = c.client_id
           AND x.period_start > date_trunc('hour', now(), 'UTC') - interval '24 hours';
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pgml_flow.prediction_log_status(bigint) IS
    'Per client: prediction-log rows, what a prune would delete now, limits and hourly usage';

-- Delete each client's expired and over-size rows (pgml_flow.prediction_log_bounds) in
-- batches of batch_size rows, committing after each, so that no batch holds its row locks
-- for long and a BI read inserting the same prediction key waits at most one batch.
-- Rows another prune is deleting are skipped, not waited for. Past hours of the usage
-- counters are folded into one row per hour, and dropped with the age limit.
-- A procedure: CALL it outside a transaction block (it commits), as pg_cron does.
-- deleted: the log rows deleted.
CREATE OR REPLACE PROCEDURE pgml_flow.prune_prediction_log(
    client_id bigint DEFAULT NULL, batch_size integer DEFAULT 5000,
    INOUT deleted bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    ids bigint[];
    cid bigint;
    bound record;
    n bigint;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, got %', batch_size;
    END IF;
    deleted := 0;
    ids := ARRAY(SELECT c.client_id FROM public.clients c
                  WHERE prune_prediction_log.client_id IS NULL
                     OR c.client_id = prune_prediction_log.client_id
                  ORDER BY c.client_id);
    FOREACH cid IN ARRAY ids LOOP
        SELECT * INTO bound FROM pgml_flow.prediction_log_bounds(cid);
        LOOP
            EXIT WHEN bound.expire_before IS NULL AND bound.prune_through_id IS NULL;
            WITH doomed AS (
                SELECT l.id FROM public.ml_prediction_log l
                 WHERE l.client_id = cid
                   AND (l.created_at < bound.expire_before OR l.id <= bound.prune_through_id)
                 ORDER BY l.id
                 LIMIT batch_size
                   FOR UPDATE SKIP LOCKED
            )
            DELETE FROM public.ml_prediction_log l USING doomed d
             WHERE l.client_id = cid AND l.id = d.id;
            GET DIAGNOSTICS n = ROW_COUNT;
            deleted := deleted + n;
            COMMIT;
            EXIT WHEN n < batch_size;
        END LOOP;

        WITH old AS (
            SELECT u.period_start, u.backend_pid FROM public.ml_prediction_log_usage u
             WHERE u.client_id = cid AND u.backend_pid <> 0
               AND u.period_start < date_trunc('hour', now(), 'UTC')
               FOR UPDATE SKIP LOCKED
        ), gone AS (
            DELETE FROM public.ml_prediction_log_usage u USING old o
             WHERE u.client_id = cid AND u.period_start = o.period_start
               AND u.backend_pid = o.backend_pid
            RETURNING u.period_start, u.logged_rows, u.capped_rows, u.capped_reads,
                      u.busy_reads
        )
        INSERT INTO public.ml_prediction_log_usage AS u
               (client_id, period_start, backend_pid, logged_rows, capped_rows, capped_reads,
                busy_reads)
        SELECT cid, g.period_start, 0, sum(g.logged_rows), sum(g.capped_rows),
               sum(g.capped_reads), sum(g.busy_reads)
          FROM gone g GROUP BY g.period_start
        ON CONFLICT ON CONSTRAINT ml_prediction_log_usage_pkey DO UPDATE
           SET logged_rows = u.logged_rows + excluded.logged_rows,
               capped_rows = u.capped_rows + excluded.capped_rows,
               capped_reads = u.capped_reads + excluded.capped_reads,
               busy_reads = u.busy_reads + excluded.busy_reads;
        DELETE FROM public.ml_prediction_log_usage u
         WHERE u.client_id = cid AND u.period_start < bound.expire_before;
        COMMIT;
    END LOOP;
END;
$$;
COMMENT ON PROCEDURE pgml_flow.prune_prediction_log(bigint, integer, bigint) IS
    'Delete expired and over-size prediction-log rows per client, in committed batches';

-- Privileges (900_grants.sql covers functions, not procedures). The prune runs as the
-- schema's owner (the role that migrates; the scheduler's and pg_cron's): pgml_flow_ml, which
-- owns the BI surface's SECURITY DEFINER functions, gets no DELETE. BI logins get nothing:
-- they can neither call the logging function (it takes a client id), nor prune, nor read
-- the usage counters; their reads log through analytics.predictions.
REVOKE ALL ON FUNCTION pgml_flow.prediction_log_policy(bigint),
                       pgml_flow.log_predictions(bigint, text, bigint, integer, bigint[],
                           real[], real[], text[], real, double precision[],
                           double precision[], double precision, double precision),
                       pgml_flow.prediction_log_bounds(bigint),
                       pgml_flow.prediction_log_status(bigint)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE pgml_flow.prune_prediction_log(bigint, integer, bigint) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON public.ml_prediction_log_usage TO pgml_flow_ml;
