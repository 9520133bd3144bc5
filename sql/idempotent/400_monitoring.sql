-- Monitoring: drift that means something, calibrated anomaly scores, and the views a
-- person's dashboard reads (docs/operations.md, "Monitoring and drift").
--
-- Drift compares, per client, deployed model and feature, the rows the model was trained
-- on (ml_drift_reference, stored at training) with a recent window of *distinct* scored
-- rows: the newest logged prediction of each item (entity) in the window, so that a BI
-- tool re-reading the same open issues twelve times is one piece of evidence, not twelve.
-- Population stability index over the reference's bins, and for numeric features the
-- two-sample Kolmogorov-Smirnov test; both stored in ml_drift_checks.

-- A setting of pgml_flow_settings as text, or the default.
CREATE OR REPLACE FUNCTION pgml_flow.monitoring_setting(p_name text, p_default text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT s.value FROM public.pgml_flow_settings s WHERE s.name = p_name),
                    p_default)
$$;

-- Two-sample Kolmogorov-Smirnov test, in SQL: the statistic D (the largest distance
-- between the two samples' empirical distribution functions, ties handled by evaluating
-- after each distinct value) and its two-sided p-value from the asymptotic Kolmogorov
-- distribution with Stephens' small-sample correction, lambda = (en + 0.12 + 0.11 / en) * D,
-- en = sqrt(n m / (n + m)) (Numerical Recipes' probks; within about 0.01 of
-- scipy.stats.ks_2samp for samples of 100 or more). NULL when either sample is empty.
-- In SQL rather than scipy: importing scipy.stats costs the backend 1-5 s.
CREATE OR REPLACE FUNCTION pgml_flow.ks_2samp(reference double precision[],
                                              recent double precision[],
                                              OUT statistic double precision,
                                              OUT pvalue double precision)
LANGUAGE sql IMMUTABLE
AS $$
    WITH sizes AS (
        SELECT cardinality(reference)::double precision AS n,
               cardinality(recent)::double precision AS m
    ), v AS (
        SELECT u.x, 1 AS a, 0 AS b FROM unnest(reference) AS u(x) WHERE u.x IS NOT NULL
        UNION ALL
        SELECT u.x, 0, 1 FROM unnest(recent) AS u(x) WHERE u.x IS NOT NULL
    ), steps AS (
        SELECT v.x, sum(v.a) AS a, sum(v.b) AS b FROM v GROUP BY v.x
    ), gaps AS (
        SELECT abs(sum(t.a) OVER w / z.n - sum(t.b) OVER w / z.m) AS gap
          FROM steps t, sizes z
        WINDOW w AS (ORDER BY t.x)
    ), distance AS (
        SELECT max(g.gap) AS d FROM gaps g
    ), lambda AS (
        SELECT d.d, (sqrt(z.n * z.m / (z.n + z.m)) + 0.12
                     + 0.11 / sqrt(z.n * z.m / (z.n + z.m))) * d.d AS l
          FROM distance d, sizes z
         WHERE z.n > 0 AND z.m > 0
    )
    SELECT l.d,
           CASE WHEN l.l < 0.2 THEN 1.0
                ELSE least(1.0, greatest(0.0, 2 * (
                    SELECT coalesce(sum((-1) ^ (k - 1) * exp(-2 * k * k * l.l * l.l)), 0)
                      FROM generate_series(1, 100) AS k
                     WHERE 2 * k * k * l.l * l.l < 700))) END  -- the rest underflow to 0
      FROM lambda l
$$;
COMMENT ON FUNCTION pgml_flow.ks_2samp(double precision[], double precision[]) IS
    'Two-sample Kolmogorov-Smirnov test: statistic and asymptotic p-value';

-- Population stability index of recent counts against reference shares, bin by bin:
-- sum((r - e) * ln(r / e)). The recent shares are smoothed (half a row added to every bin)
-- so that an empty bin of a small window does not count as an infinite shift.
CREATE OR REPLACE FUNCTION pgml_flow.psi(reference_shares double precision[],
                                         recent_counts bigint[])
RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
    SELECT sum((r - e) * ln(r / e))
      FROM (SELECT greatest(s.e, 1e-6) AS e,
                   (coalesce(s.c, 0) + 0.5)
                   / (sum(coalesce(s.c, 0)) OVER () + 0.5 * count(*) OVER ()) AS r
              FROM unnest(reference_shares, recent_counts) AS s(e, c)
             -- a bin neither population has (an empty tail bin) says nothing
             WHERE s.e IS NOT NULL AND NOT (s.e = 0 AND coalesce(s.c, 0) = 0)) x
$$;

-- The raw anomaly score of one row against a model's training distribution: the largest
-- absolute z-score of its features and of its value (the prediction when serving, the
-- target on training rows). The same formula as pgml_flow.log_predictions
-- (250_prediction_log.sql), which applies it set-based.
CREATE OR REPLACE FUNCTION pgml_flow.anomaly_raw_score(
    features real[], value double precision, feature_mean double precision[],
    feature_stddev double precision[], target_mean double precision,
    target_stddev double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$
    SELECT greatest(
        (SELECT max(abs(nullif(v.x, 'NaN') - feature_mean[v.i])
                    / CASE WHEN feature_stddev[v.i] > 0 THEN feature_stddev[v.i] ELSE 1 END)
           FROM unnest(features) WITH ORDINALITY AS v(x, i)
          WHERE v.i <= cardinality(feature_mean)),
        abs(value - target_mean) / nullif(target_stddev, 0))
$$;

-- Store what a client's model was trained on: per feature, its distribution on the feature
-- view's training rows of the client (the rows the training view had when the model was
-- trained: call it in the training's transaction), and the anomaly score's calibration.
-- Numeric features are the features array's elements (names from ml_model_baselines);
-- categorical ones the spec's text columns of the feature view. Needs the model's
-- baseline (ml_model_baselines). Returns the number of features stored.
CREATE OR REPLACE FUNCTION pgml_flow.store_drift_reference(p_client bigint, p_model_id bigint,
                                                           p_source text DEFAULT 'training')
RETURNS integer
LANGUAGE plpgsql VOLATILE
-- no JIT: the feature views look expensive to the planner, and compiling these queries
-- took 10 s under load for what runs in 30 ms
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
    fv regclass;
    col text;
    stored integer := 0;
    raw_p99 double precision;
    n bigint;
BEGIN
    SELECT x.model_name, x.feature_names, x.feature_mean, x.feature_stddev, x.target_mean,
           x.target_stddev, r.feature_view, r.features, r.target
      INTO b
      FROM public.ml_model_baselines x
      JOIN public.ml_model_registry r ON r.model_name = x.model_name
     WHERE x.client_id = p_client AND x.model_id = p_model_id;
    IF NOT FOUND OR b.feature_view IS NULL OR to_regclass(b.feature_view) IS NULL THEN
        RETURN 0;
    END IF;
    fv := b.feature_view::regclass;
    DELETE FROM public.ml_drift_reference WHERE client_id = p_client AND model_id = p_model_id;

    -- numeric: deciles as bin edges, the share of rows per bin, the values for the KS test
    EXECUTE format($q$
        WITH v AS (
            SELECT u.i::integer AS i, u.x::double precision AS x
              FROM %s f CROSS JOIN LATERAL unnest(f.features) WITH ORDINALITY AS u(x, i)
             WHERE f.client_id = $1 AND f.is_training AND u.x IS NOT NULL
               AND u.x NOT IN ('NaN', 'Infinity', '-Infinity')
               AND u.i <= cardinality($3::text[])
        ), q AS (
            SELECT v.i, percentile_disc(ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
                        WITHIN GROUP (ORDER BY v.x) AS qs,
                   count(*) AS n
              FROM v GROUP BY v.i
        ), edges AS (
            SELECT q.i, ARRAY(SELECT DISTINCT u.e FROM unnest(q.qs) AS u(e) ORDER BY u.e)
                       AS edges, q.n
              FROM q
        ), binned AS (
            SELECT v.i, width_bucket(v.x, e.edges) AS bin, count(*) AS c
              FROM v JOIN edges e ON e.i = v.i GROUP BY 1, 2
        ), ranked AS (
            SELECT v.i, v.x, row_number() OVER (PARTITION BY v.i ORDER BY v.x) AS k, e.n
              FROM v JOIN edges e ON e.i = v.i
        )
        INSERT INTO public.ml_drift_reference
               (client_id, model_id, feature, model_name, kind, position, edges, shares,
                sample, rows, source)
        SELECT $1, $2, $3[e.i], $4, 'numeric', e.i, e.edges,
               ARRAY(SELECT coalesce((SELECT b.c FROM binned b
                                       WHERE b.i = e.i AND b.bin = g.k), 0)::double precision
                            / e.n
                       FROM generate_series(0, cardinality(e.edges)) AS g(k) ORDER BY g.k),
               ARRAY(SELECT r.x FROM ranked r
                      WHERE r.i = e.i AND (r.k - 1) %% ceil(e.n / 5000.0)::bigint = 0
                      ORDER BY r.x),
               e.n, $5
          FROM edges e
    $q$, fv) USING p_client, p_model_id, b.feature_names, b.model_name, p_source;
    GET DIAGNOSTICS stored = ROW_COUNT;

    -- categorical: the spec's scalar text columns with at most 50 distinct values in the
    -- training rows (a type, a priority; not a title); their 20 most frequent values (NULL
    -- as '(none)') get a bin each, the others share one
    FOR col IN
        SELECT a.attname::text FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = fv AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid IN ('text'::regtype, 'varchar'::regtype)
           AND a.attname = ANY (b.features)
         ORDER BY array_position(b.features, a.attname::text)
    LOOP
        EXECUTE format('SELECT count(DISTINCT f.%I) FROM %s f '
                       'WHERE f.client_id = $1 AND f.is_training', col, fv)
           INTO n USING p_client;
        CONTINUE WHEN n > 50;
        EXECUTE format($q$
            WITH v AS (
                SELECT coalesce(f.%I::text, '(none)') AS x
                  FROM %s f WHERE f.client_id = $1 AND f.is_training
            ), counted AS (
                SELECT v.x, count(*) AS c FROM v GROUP BY v.x
            ), top AS (
                SELECT c.x, c.c FROM counted c ORDER BY c.c DESC, c.x LIMIT 20
            ), total AS (SELECT sum(c.c) AS n FROM counted c)
            INSERT INTO public.ml_drift_reference
                   (client_id, model_id, feature, model_name, kind, categories, shares, rows,
                    source)
            SELECT $1, $2, $3, $4, 'categorical',
                   ARRAY(SELECT t.x FROM top t ORDER BY t.c DESC, t.x),
                   ARRAY(SELECT t.c::double precision / total.n FROM top t
                          ORDER BY t.c DESC, t.x)
                   || ((total.n - (SELECT sum(t.c) FROM top t))::double precision / total.n),
                   total.n, $5
              FROM total WHERE total.n > 0
        $q$, col, fv) USING p_client, p_model_id, col, b.model_name, p_source;
        GET DIAGNOSTICS n = ROW_COUNT;
        stored := stored + n;
    END LOOP;

    -- the anomaly score's scale: its 99th percentile on the training rows becomes 3
    EXECUTE format($q$
        SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY s.score), count(*)
          FROM (SELECT pgml_flow.anomaly_raw_score(f.features, f.%I::double precision,
                                                   $2, $3, $4, $5) AS score
                  FROM %s f WHERE f.client_id = $1 AND f.is_training) s
         WHERE s.score IS NOT NULL
    $q$, b.target, fv)
    INTO raw_p99, n
    USING p_client, b.feature_mean, b.feature_stddev, b.target_mean, b.target_stddev;
    IF raw_p99 > 0 THEN
        INSERT INTO public.ml_anomaly_calibration AS c
               (client_id, model_id, model_name, raw_p99, scale, rows)
        VALUES (p_client, p_model_id, b.model_name, raw_p99, 3 / raw_p99, n)
        ON CONFLICT ON CONSTRAINT ml_anomaly_calibration_pkey DO UPDATE
           SET raw_p99 = excluded.raw_p99, scale = excluded.scale, rows = excluded.rows,
               -- its default, now(): Citus refuses now() in DO UPDATE SET
               created_at = excluded.created_at;
    END IF;
    RETURN stored;
END;
$$;
COMMENT ON FUNCTION pgml_flow.store_drift_reference(bigint, bigint, text) IS
    'Store a client''s model''s training distribution per feature (drift reference) and its anomaly calibration';

-- Check drift now: for each client (p_client, or every active one) and deployed model, per
-- feature, the PSI (and KS test) of the distinct items scored in the last p_window
-- (setting drift_window, default 7 days) against the reference, stored in
-- ml_drift_checks and returned. A feature is drifted when its PSI is at least
-- drift_psi_threshold (0.25: the usual "major shift"; 0.1-0.25 is "moderate") and, for a
-- numeric feature, the KS test rejects the same distribution at drift_ks_alpha (0.01).
-- With fewer than drift_min_rows (100) distinct items in the window there is no verdict
-- (PSI NULL, not drifted): PSI's own noise is about (bins - 1) / rows. A model without a
-- reference (trained before monitoring existed) gets one from its client's current
-- training rows, marked as such.
CREATE OR REPLACE FUNCTION pgml_flow.check_drift(p_client bigint DEFAULT NULL,
                                                 p_window interval DEFAULT NULL)
RETURNS SETOF public.ml_drift_checks
LANGUAGE plpgsql VOLATILE
-- no JIT: the feature views look expensive to the planner, and compiling these queries
-- took 10 s under load for what runs in 30 ms
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    win interval := coalesce(p_window,
                             pgml_flow.monitoring_setting('drift_window', '7 days')::interval);
    min_rows bigint := pgml_flow.monitoring_setting('drift_min_rows', '100')::bigint;
    threshold double precision :=
        pgml_flow.monitoring_setting('drift_psi_threshold', '0.25')::double precision;
    alpha double precision :=
        pgml_flow.monitoring_setting('drift_ks_alpha', '0.01')::double precision;
    m record;
    ref record;
    ids bigint[];
    feats jsonb[];
    recent double precision[];
    labels text[];
    counts bigint[];
    psi double precision;
    ks_stat double precision;
    ks_p double precision;
    verdict boolean;
    note text;
BEGIN
    FOR m IN
        SELECT c.client_id, r.model_name, r.feature_view, s.model_id
          FROM public.clients c
         CROSS JOIN public.ml_model_registry r
         CROSS JOIN LATERAL pgml_flow.serving_model(c.client_id, r.model_name) s
         WHERE (p_client IS NULL AND c.active OR c.client_id = p_client)
           AND s.model_id IS NOT NULL AND r.feature_view IS NOT NULL
         ORDER BY c.client_id, r.model_name
    LOOP
        IF NOT EXISTS (SELECT 1 FROM public.ml_drift_reference x
                        WHERE x.client_id = m.client_id AND x.model_id = m.model_id) THEN
            PERFORM pgml_flow.store_drift_reference(
                m.client_id, m.model_id, 'training rows at the first drift check');
        END IF;
        -- the distinct items scored in the window: each item's newest logged prediction
        SELECT array_agg(d.entity_id), array_agg(d.features) INTO ids, feats
          FROM (SELECT DISTINCT ON (l.entity_id) l.entity_id, l.features
                  FROM public.ml_prediction_log l
                 WHERE l.client_id = m.client_id AND l.model_name = m.model_name
                   AND l.created_at >= now() - win AND l.entity_id IS NOT NULL
                 ORDER BY l.entity_id, l.created_at DESC, l.id DESC) d;
        FOR ref IN
            SELECT * FROM public.ml_drift_reference x
             WHERE x.client_id = m.client_id AND x.model_id = m.model_id
             ORDER BY x.kind DESC, x.position, x.feature
        LOOP
            psi := NULL;
            ks_stat := NULL;
            ks_p := NULL;
            verdict := false;
            note := NULL;
            IF ref.kind = 'numeric' THEN
                recent := ARRAY(SELECT (f ->> (ref.position - 1))::double precision
                                  FROM unnest(feats) AS f
                                 WHERE jsonb_typeof(f -> (ref.position - 1)) = 'number');
            ELSE
                EXECUTE format('SELECT array_agg(coalesce(f.%I::text, ''(none)'')) FROM %s f '
                               'WHERE f.client_id = $1 AND f.entity_id = ANY ($2)',
                               ref.feature, m.feature_view::regclass)
                   INTO labels USING m.client_id, coalesce(ids, '{}');
                labels := coalesce(labels, '{}');
            END IF;
            IF coalesce(cardinality(CASE WHEN ref.kind = 'numeric' THEN recent::text[]
                                         ELSE labels END), 0) < min_rows THEN
                note := format('only %s distinct items scored in the last %s (drift_min_rows %s)',
                               coalesce(cardinality(ids), 0), win, min_rows);
            ELSIF ref.kind = 'numeric' THEN
                counts := ARRAY(SELECT count(x.v) FILTER (WHERE width_bucket(x.v, ref.edges) = g.k)
                                  FROM generate_series(0, cardinality(ref.edges)) AS g(k)
                                  CROSS JOIN unnest(recent) AS x(v)
                                 GROUP BY g.k ORDER BY g.k);
                psi := pgml_flow.psi(ref.shares, counts);
                SELECT k.statistic, k.pvalue INTO ks_stat, ks_p
                  FROM pgml_flow.ks_2samp(ref.sample, recent) k;
                verdict := coalesce(psi >= threshold AND ks_p < alpha, false);
            ELSE
                counts := ARRAY(SELECT count(*) FILTER (WHERE
                                    CASE WHEN g.k <= cardinality(ref.categories)
                                         THEN x.v = ref.categories[g.k]
                                         ELSE NOT x.v = ANY (ref.categories) END)
                                  FROM generate_series(1, cardinality(ref.categories) + 1) AS g(k)
                                  CROSS JOIN unnest(labels) AS x(v)
                                 GROUP BY g.k ORDER BY g.k);
                psi := pgml_flow.psi(ref.shares, counts);
                verdict := coalesce(psi >= threshold, false);
            END IF;
            RETURN QUERY
                INSERT INTO public.ml_drift_checks
                       (client_id, model_name, model_id, feature, kind, psi, ks_statistic,
                        ks_pvalue, drifted, reference_rows, recent_rows, window_length, detail)
                VALUES (m.client_id, m.model_name, m.model_id, ref.feature, ref.kind, psi,
                        ks_stat, ks_p, verdict, ref.rows,
                        coalesce(cardinality(CASE WHEN ref.kind = 'numeric' THEN recent::text[]
                                                  ELSE labels END), 0),
                        win, note)
                RETURNING *;
        END LOOP;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pgml_flow.check_drift(bigint, interval) IS
    'PSI and KS drift of each client''s deployed models, per feature, against their training rows; stored in ml_drift_checks';

-- The latest drift check of each client, model and feature (what the exporter's metrics
-- and the retraining decision read). The first seven columns are a contract.
CREATE OR REPLACE VIEW pgml_flow.latest_drift WITH (security_invoker = true) AS
SELECT DISTINCT ON (d.client_id, d.model_name, d.feature)
       d.client_id::integer AS client_id, d.model_name, d.feature, d.psi, d.ks_pvalue,
       d.drifted, d.checked_at, d.model_id, d.kind, d.ks_statistic, d.reference_rows,
       d.recent_rows, d.window_length, d.detail
  FROM public.ml_drift_checks d
 ORDER BY d.client_id, d.model_name, d.feature, d.checked_at DESC, d.id DESC;
COMMENT ON VIEW pgml_flow.latest_drift IS
    'The latest drift check per client, model and feature: PSI, KS p-value, drifted';

-- -- Monitoring for people --------------------------------------------------------------------
-- The monitoring schema: set-returning functions a dashboard calls with a time range
-- (SELECT * FROM monitoring.model_performance('7 days')). Operators (pgml_flow_ml) see
-- every client, or the one of SET pgml_flow.client_id; a BI login sees its own client
-- only (pgml_flow.monitor_sees), whatever it sets. SECURITY DEFINER (owned by
-- pgml_flow_ml, 900_grants.sql) because they read the deployed models in pgml, which BI
-- logins cannot.
CREATE SCHEMA IF NOT EXISTS monitoring;
COMMENT ON SCHEMA monitoring IS
    'Monitoring for dashboards: performance, volume, anomalies, retraining, drift, health (docs/operations.md)';

-- Whether the session's user may see a client in the monitoring functions.
CREATE OR REPLACE FUNCTION pgml_flow.monitor_sees(p_client bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM public.client_bi_roles r WHERE r.role_name = session_user)
            THEN p_client IS NOT DISTINCT FROM pgml_flow.current_client_id()
        WHEN pg_has_role(session_user, 'pgml_flow_ml', 'MEMBER')
            THEN coalesce(nullif(current_setting('pgml_flow.client_id', true), '')::bigint
                          = p_client, true)
        ELSE false END
$$;

-- The clients the session's user may see (pgml_flow.monitor_sees), resolved once per call
-- where the caller's session is. The monitoring functions filter the per-client tables with
-- client_id = ANY(this): on Citus a filter evaluated inside the shard query would run on a
-- worker, in a session of the function's owner, where session_user is not the caller.
CREATE OR REPLACE FUNCTION pgml_flow.monitored_client_ids()
RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(c.client_id ORDER BY c.client_id), '{}')
      FROM public.clients c WHERE pgml_flow.monitor_sees(c.client_id)
$$;

-- The deployed model of each visible client and registered model.
CREATE OR REPLACE FUNCTION pgml_flow.monitored_models()
RETURNS TABLE(client_id bigint, client text, model_name text, model_id bigint,
              key_metric text, key_metric_value double precision,
              performance_threshold double precision, meets_threshold boolean,
              deployed_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.client_id, c.name, r.model_name, d.model_id, r.key_metric,
           (m.metrics ->> r.key_metric)::double precision,
           r.performance_threshold::numeric::double precision,
           CASE WHEN r.key_metric IN ('mean_absolute_error', 'mean_squared_error')
                THEN (m.metrics ->> r.key_metric)::double precision
                     <= r.performance_threshold::numeric::double precision
                ELSE (m.metrics ->> r.key_metric)::double precision
                     >= r.performance_threshold::numeric::double precision END,
           d.created_at::timestamptz
      FROM public.clients c
     CROSS JOIN public.ml_model_registry r
      LEFT JOIN pgml.projects p ON p.name = pgml_flow.project_name(r.model_name, c.client_id)
      LEFT JOIN LATERAL (SELECT x.model_id, x.created_at FROM pgml.deployments x
                          WHERE x.project_id = p.id ORDER BY x.id DESC LIMIT 1) d ON true
      LEFT JOIN pgml.models m ON m.id = d.model_id
     WHERE pgml_flow.monitor_sees(c.client_id)
$$;

-- Per client and model over the last `since`: logged predictions (each unchanged
-- prediction once; a sample of at most prediction_log_rows per read), the distinct items,
-- p50/p95 prediction latency per row, the anomaly rate, critical (high severity)
-- predictions, and the deployed model's key metric.
CREATE OR REPLACE FUNCTION monitoring.model_performance(since interval DEFAULT '24 hours')
RETURNS TABLE(client_id bigint, client text, model_name text, model_id bigint,
              predictions bigint, distinct_items bigint, p50_latency_ms double precision,
              p95_latency_ms double precision, anomaly_rate double precision,
              anomalies bigint, critical_predictions bigint, key_metric text,
              key_metric_value double precision, range_start timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    visible constant bigint[] := pgml_flow.monitored_client_ids();
    logged jsonb;
BEGIN
    -- PL/pgSQL, the log aggregated per client and model by a query of its own, then joined
    -- here: Citus plans neither a SQL function's parameters nor a lateral join into a
    -- distributed table, and one query for both would be routed whole to the worker of a
    -- single visible client, where monitored_models() would run in the session of this
    -- function's owner (monitor_sees: every client)
    SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO logged
      FROM (SELECT x.client_id, x.model_name, count(*) AS n,
                   count(DISTINCT x.entity_id) AS items,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY x.response_time_ms) AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY x.response_time_ms) AS p95,
                   count(*) FILTER (WHERE x.is_anomaly) AS anomalies,
                   count(*) FILTER (WHERE x.severity = 'high') AS critical
              FROM public.ml_prediction_log x
             WHERE x.client_id = ANY (visible) AND x.created_at >= now() - since
             GROUP BY x.client_id, x.model_name) a;
    RETURN QUERY
    SELECT mm.client_id, mm.client, mm.model_name, mm.model_id, coalesce(l.n, 0),
           coalesce(l.items, 0), l.p50, l.p95,
           CASE WHEN l.n > 0 THEN l.anomalies::double precision / l.n END,
           coalesce(l.anomalies, 0), coalesce(l.critical, 0), mm.key_metric,
           mm.key_metric_value, now() - since
      FROM pgml_flow.monitored_models() mm
      LEFT JOIN jsonb_to_recordset(logged)
                AS l(client_id bigint, model_name text, n bigint, items bigint,
                     p50 double precision, p95 double precision, anomalies bigint,
                     critical bigint)
             ON l.client_id = mm.client_id AND l.model_name = mm.model_name
     ORDER BY 1, 3;
END;
$$;

-- The bucket of a time range's plots: 5 minutes up to an hour, hourly up to a day, every
-- 6 hours up to a week, daily beyond.
CREATE OR REPLACE FUNCTION pgml_flow.monitoring_bucket(since interval)
RETURNS interval
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN since <= interval '1 hour' THEN interval '5 minutes'
                WHEN since <= interval '1 day' THEN interval '1 hour'
                WHEN since <= interval '7 days' THEN interval '6 hours'
                ELSE interval '1 day' END
$$;

-- A plot bucket checked before date_bin sees it: date_bin refuses months and years with a
-- bare "feature not supported", which does not say which argument or what to pass instead.
CREATE OR REPLACE FUNCTION pgml_flow.checked_bucket(bucket interval)
RETURNS interval
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF bucket IS NULL OR bucket <= interval '0' THEN
        RAISE EXCEPTION 'bucket must be a positive interval, not %', coalesce(bucket::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass days, hours or minutes, e.g. bucket => ''1 day''.';
    END IF;
    IF extract(month FROM bucket) <> 0 OR extract(year FROM bucket) <> 0 THEN
        RAISE EXCEPTION 'bucket % contains months or years, which have no fixed length', bucket
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass days instead, e.g. bucket => ''30 days'' or ''365 days''.';
    END IF;
    RETURN bucket;
END
$$;

-- Logged predictions per client, model and time bucket (bucket: pgml_flow.monitoring_bucket
-- of the range unless given); buckets without predictions have no row.
CREATE OR REPLACE FUNCTION monitoring.prediction_volume(since interval DEFAULT '24 hours',
                                                        bucket interval DEFAULT NULL)
RETURNS TABLE(client_id bigint, model_name text, bucket_start timestamptz,
              predictions bigint, anomalies bigint, p95_latency_ms double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    visible constant bigint[] := pgml_flow.monitored_client_ids();
    width constant interval := pgml_flow.checked_bucket(
        coalesce(bucket, pgml_flow.monitoring_bucket(since)));
BEGIN
    RETURN QUERY
    SELECT x.client_id, x.model_name,
           date_bin(width, x.created_at, timestamptz '2000-01-01 00:00+00') AS b,
           count(*), count(*) FILTER (WHERE x.is_anomaly),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY x.response_time_ms)
      FROM public.ml_prediction_log x
     WHERE x.created_at >= now() - since AND x.client_id = ANY (visible)
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3;
END;
$$;

-- Anomalies per client, model and severity over the range (severity none: not flagged).
CREATE OR REPLACE FUNCTION monitoring.anomaly_summary(since interval DEFAULT '24 hours')
RETURNS TABLE(client_id bigint, model_name text, severity text, predictions bigint,
              share double precision, max_score double precision, last_seen timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    visible constant bigint[] := pgml_flow.monitored_client_ids();
BEGIN
    RETURN QUERY
    SELECT x.client_id, x.model_name, x.severity, count(*),
           count(*)::double precision / sum(count(*)) OVER (PARTITION BY x.client_id,
                                                                         x.model_name),
           max(x.anomaly_score)::numeric::double precision, max(x.created_at)
      FROM public.ml_prediction_log x
     WHERE x.created_at >= now() - since AND x.client_id = ANY (visible)
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3;
END;
$$;

-- Retraining runs that started in the range, with the key metric before and after.
CREATE OR REPLACE FUNCTION monitoring.retraining_history(since interval DEFAULT '30 days')
RETURNS TABLE(client_id bigint, model_name text, started_at timestamptz,
              finished_at timestamptz, status text, reason text, champion_model_id bigint,
              challenger_model_id bigint, key_metric text,
              metric_before double precision, metric_after double precision,
              duration_seconds double precision, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    visible constant bigint[] := pgml_flow.monitored_client_ids();
BEGIN
    RETURN QUERY
    SELECT e.client_id, e.model_name, e.started_at, e.finished_at, e.status, e.reason,
           e.champion_model_id, e.challenger_model_id, r.key_metric,
           (e.metrics_before ->> r.key_metric)::double precision,
           (e.metrics_after ->> r.key_metric)::double precision,
           e.duration_seconds::double precision, coalesce(e.detail, e.error)
      FROM public.ml_retraining_events e
      LEFT JOIN public.ml_model_registry r ON r.model_name = e.model_name
     WHERE e.started_at >= now() - since AND e.client_id = ANY (visible)
     ORDER BY e.client_id, e.model_name, e.started_at;
END;
$$;

-- The key metric of each model deployed in the range (and of the one deployed before it),
-- per client: the metric over time.
CREATE OR REPLACE FUNCTION monitoring.metric_history(since interval DEFAULT '90 days')
RETURNS TABLE(client_id bigint, model_name text, model_id bigint, deployed_at timestamptz,
              key_metric text, key_metric_value double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.client_id, r.model_name, d.model_id, d.created_at::timestamptz, r.key_metric,
           (m.metrics ->> r.key_metric)::double precision
      FROM public.clients c
     CROSS JOIN public.ml_model_registry r
      JOIN pgml.projects p ON p.name = pgml_flow.project_name(r.model_name, c.client_id)
      JOIN pgml.deployments d ON d.project_id = p.id
      JOIN pgml.models m ON m.id = d.model_id
     WHERE pgml_flow.monitor_sees(c.client_id)
       AND d.id >= coalesce((SELECT max(y.id) FROM pgml.deployments y
                              WHERE y.project_id = p.id
                                AND y.created_at::timestamptz < now() - since), 0)
     ORDER BY 1, 2, 4
$$;

-- Drift checks in the range, per client, model and feature: the drift over time.
CREATE OR REPLACE FUNCTION monitoring.drift(since interval DEFAULT '7 days')
RETURNS TABLE(client_id bigint, model_name text, model_id bigint, feature text, kind text,
              psi double precision, ks_pvalue double precision, drifted boolean,
              recent_rows bigint, checked_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    visible constant bigint[] := pgml_flow.monitored_client_ids();
BEGIN
    RETURN QUERY
    SELECT d.client_id, d.model_name, d.model_id, d.feature, d.kind, d.psi, d.ks_pvalue,
           d.drifted, d.recent_rows, d.checked_at
      FROM public.ml_drift_checks d
     WHERE d.checked_at >= now() - since AND d.client_id = ANY (visible)
     ORDER BY 1, 2, 4, 10;
END;
$$;

-- Health per client and model, now: ok, warning or critical, and why. critical: no
-- deployed model, the last run failed, or a feature drifted; warning: the key metric misses
-- the spec's threshold, or more than 5% of the last 24 hours' predictions are anomalies
-- (calibrated to 1% on training data).
CREATE OR REPLACE FUNCTION monitoring.health()
RETURNS TABLE(client_id bigint, client text, model_name text, model_id bigint,
              key_metric text, key_metric_value double precision, meets_threshold boolean,
              model_age_hours double precision, predictions_24h bigint,
              anomaly_rate_24h double precision, drifted_features text[],
              max_psi double precision, last_run_status text, last_run_at timestamptz,
              status text, reasons text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    visible constant bigint[] := pgml_flow.monitored_client_ids();
    logged jsonb;
    drifts jsonb;
    runs jsonb;
BEGIN
    -- the per-client tables aggregated per client and model, a query each, then joined
    -- here to the deployed models (why: monitoring.model_performance)
    SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO logged
      FROM (SELECT x.client_id, x.model_name, count(*) AS n,
                   count(*) FILTER (WHERE x.is_anomaly) AS anomalies
              FROM public.ml_prediction_log x
             WHERE x.client_id = ANY (visible)
               AND x.created_at >= now() - interval '24 hours'
             GROUP BY x.client_id, x.model_name) a;
    SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO drifts
      FROM (SELECT z.client_id, z.model_name, z.model_id,
                   array_agg(z.feature ORDER BY z.feature) FILTER (WHERE z.drifted)
                       AS drifted,
                   max(z.psi) AS max_psi
              FROM pgml_flow.latest_drift z
             WHERE z.client_id = ANY (visible)
             GROUP BY z.client_id, z.model_name, z.model_id) a;
    SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO runs
      FROM (SELECT DISTINCT ON (v.client_id, v.model_name) v.client_id, v.model_name,
                   v.status, v.finished_at, v.started_at
              FROM public.ml_retraining_events v
             WHERE v.client_id = ANY (visible)
             ORDER BY v.client_id, v.model_name, v.started_at DESC, v.id DESC) a;
    RETURN QUERY
    SELECT h.*,
           CASE WHEN h.model_id IS NULL OR h.last_run_status = 'failed'
                     OR cardinality(h.drifted_features) > 0 THEN 'critical'
                WHEN NOT coalesce(h.meets_threshold, true) OR h.anomaly_rate_24h > 0.05
                    THEN 'warning'
                ELSE 'ok' END,
           nullif(concat_ws('; ',
               CASE WHEN h.model_id IS NULL THEN 'no deployed model' END,
               CASE WHEN h.last_run_status = 'failed' THEN 'the last retraining run failed' END,
               CASE WHEN cardinality(h.drifted_features) > 0
                    THEN 'drift: ' || array_to_string(h.drifted_features, ', ') END,
               CASE WHEN NOT coalesce(h.meets_threshold, true)
                    THEN h.key_metric || ' misses the performance threshold' END,
               CASE WHEN h.anomaly_rate_24h > 0.05
                    THEN round((h.anomaly_rate_24h * 100)::numeric, 1)
                         || '% anomalies in 24 hours' END), '')
      FROM (
        SELECT mm.client_id, mm.client, mm.model_name, mm.model_id, mm.key_metric,
               mm.key_metric_value, mm.meets_threshold,
               (extract(epoch FROM now() - mm.deployed_at) / 3600)::double precision
                   AS model_age_hours,
               coalesce(l.n, 0) AS predictions_24h,
               CASE WHEN l.n > 0 THEN l.anomalies::double precision / l.n END
                   AS anomaly_rate_24h,
               coalesce(d.drifted, '{}') AS drifted_features, d.max_psi,
               e.status AS last_run_status, coalesce(e.finished_at, e.started_at) AS last_run_at
          FROM pgml_flow.monitored_models() mm
          LEFT JOIN jsonb_to_recordset(logged) AS l(client_id bigint, model_name text,
                                                   n bigint, anomalies bigint)
                 ON l.client_id = mm.client_id AND l.model_name = mm.model_name
          LEFT JOIN jsonb_to_recordset(drifts) AS d(client_id bigint, model_name text,
                                                   model_id bigint, drifted text[],
                                                   max_psi double precision)
                 ON d.client_id = mm.client_id AND d.model_name = mm.model_name
                AND d.model_id = mm.model_id
          LEFT JOIN jsonb_to_recordset(runs) AS e(client_id bigint, model_name text,
                                                 status text, finished_at timestamptz,
                                                 started_at timestamptz)
                 ON e.client_id = mm.client_id AND e.model_name = mm.model_name
      ) h
     ORDER BY 1, 3;
END;
$$;
