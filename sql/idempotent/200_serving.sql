-- Serving predictions to the caller's client: who the caller is, which model serves
-- them, and the one SECURITY DEFINER function that predicts, scores and logs.

-- The client of the session's login (client_bi_roles, keyed by session_user: a BI login
-- cannot change it, and SET ROLE does not either). Admins (superusers and members of
-- pgml_flow_ml) who are not mapped may pick a client with SET pgml_flow.client_id = N;
-- for anyone else that setting is ignored. NULL (no rows anywhere) otherwise.
CREATE OR REPLACE FUNCTION pgml_flow.current_client_id()
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (SELECT r.client_id FROM public.client_bi_roles r WHERE r.role_name = session_user),
        (SELECT nullif(current_setting('pgml_flow.client_id', true), '')::bigint
          WHERE pg_has_role(session_user, 'pgml_flow_ml', 'MEMBER')
            AND NOT EXISTS (SELECT 1 FROM public.client_bi_roles r
                             WHERE r.role_name = session_user)));
$$;
COMMENT ON FUNCTION pgml_flow.current_client_id() IS
    'The caller''s client: its BI login''s client, or pgml_flow.client_id for admins';

-- The pgml project of a model for one client: <model>__client_<id>.
CREATE OR REPLACE FUNCTION pgml_flow.project_name(model_name text, client_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT model_name || '__client_' || client_id $$;

-- The login pgml-flow bi grant creates by default for a client: <database>_client_<id>.
CREATE OR REPLACE FUNCTION pgml_flow.default_bi_role(client_id bigint)
RETURNS text
LANGUAGE sql STABLE STRICT
AS $$
    SELECT left(regexp_replace(lower(current_database()), '[^a-z0-9_]+', '_', 'g'), 40)
           || '_client_' || client_id
$$;

-- The model serving one client, with what is needed to score its predictions.
-- model_id is NULL when the client has no deployed model (or its ML is switched off).
-- log_rows: how many predictions of each read to log: 0 when the client's
-- prediction_logging is off, else the database setting prediction_log_rows
-- (pgml_flow_settings; default 200; -1 logs every prediction).
CREATE OR REPLACE FUNCTION pgml_flow.serving_model(p_client bigint, p_model text)
RETURNS TABLE(model_id bigint, project text, task text, feature_view text,
              trained_at timestamptz, log_rows integer, feature_mean double precision[],
              feature_stddev double precision[], target_mean double precision,
              target_stddev double precision)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN c.ml_enabled THEN d.model_id END,
           pgml_flow.project_name(r.model_name, p_client),
           r.task, r.feature_view, b.trained_at,
           CASE WHEN c.prediction_logging
                THEN coalesce((SELECT s.value::integer FROM public.pgml_flow_settings s
                                WHERE s.name = 'prediction_log_rows'), 200)
                ELSE 0 END,
           b.feature_mean, b.feature_stddev, b.target_mean, b.target_stddev
      FROM public.ml_model_registry r
      LEFT JOIN public.clients c ON c.client_id = p_client
      LEFT JOIN pgml.projects p ON p.name = pgml_flow.project_name(r.model_name, p_client)
      LEFT JOIN LATERAL (SELECT x.model_id FROM pgml.deployments x
                          WHERE x.project_id = p.id ORDER BY x.id DESC LIMIT 1) d ON true
      LEFT JOIN public.ml_model_baselines b
             ON b.client_id = p_client AND b.model_id = d.model_id
     WHERE r.model_name = p_model
$$;

-- Severity of an anomaly score: < 3 none, < 4 low, < 6 medium, else high; none for an
-- unknown score (NULL, or NaN: 'NaN' >= 6 is true in PostgreSQL, but NaN is no score).
CREATE OR REPLACE FUNCTION pgml_flow.anomaly_severity(score real)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN score IS NULL OR score < 3 OR score = 'NaN' THEN 'none'
                WHEN score < 4 THEN 'low'
                WHEN score < 6 THEN 'medium'
                ELSE 'high' END
$$;

-- How the BI surface scores an item: pgml.predict / pgml.predict_proba of its features,
-- NULL where the model gives no number. A NaN, NULL or infinite feature that the model
-- cannot score is an error of pgml.predict (SQLSTATE 22023, the same on the native and the
-- Python path; docs/sql-api.md), caught per item here so that one such item shows as
-- unknown instead of failing the whole read; a NaN or infinite prediction is NULL too
-- (PostgreSQL orders NaN above every number: 'NaN' >= 0.6 is true). Items whose features
-- are all finite (nearly all) take the plain call: the helpers below are SQL functions
-- the planner inlines, and the exception block (a subtransaction) runs for the others only.
CREATE OR REPLACE FUNCTION pgml_flow.finite_features(features real[])
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT array_position(features, NULL) IS NULL
       AND NOT features && '{NaN,Infinity,-Infinity}'::real[]
$$;

CREATE OR REPLACE FUNCTION pgml_flow.finite_or_null(value real)
RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT nullif(nullif(nullif(value, 'NaN'), 'Infinity'), '-Infinity') $$;

CREATE OR REPLACE FUNCTION pgml_flow.try_predict(model_id bigint, features real[])
RETURNS real
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgml.predict(model_id, features);
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION pgml_flow.try_predict_proba(model_id bigint, features real[])
RETURNS real[]
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pgml.predict_proba(model_id, features);
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION pgml_flow.predict_or_null(model_id bigint, features real[])
RETURNS real
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT pgml_flow.finite_or_null(
        CASE WHEN pgml_flow.finite_features(features) THEN pgml.predict(model_id, features)
             ELSE pgml_flow.try_predict(model_id, features) END)
$$;

CREATE OR REPLACE FUNCTION pgml_flow.predict_proba_or_null(model_id bigint, features real[])
RETURNS real[]
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT CASE WHEN pgml_flow.finite_features(features)
                THEN pgml.predict_proba(model_id, features)
                ELSE pgml_flow.try_predict_proba(model_id, features) END
$$;

-- Predictions of one model for the open entities of the caller's client (never another
-- client's: the client is resolved here, not passed in). Regression: prediction is the
-- predicted value. Classification: prediction is the predicted class index and
-- probability the probability of class 1 (the positive class of a 0/1 label).
-- Rows keep coming with NULL predictions when the client has no deployed model, and an
-- item the model gives no number for (pgml_flow.predict_or_null) has NULL ones: never NaN.
--
-- Logging (pgml_flow.log_predictions): one INSERT into ml_prediction_log per call
-- (batched) of a uniform random sample of at most log_rows of its predictions (all of them
-- with -1), minus those already logged unchanged, under the client's hourly cap; skipped
-- when the client's prediction_logging is off, the transaction is read-only (BI tools,
-- standbys) or logging fails (a failed log never fails the read). response_time_ms is the
-- call's prediction time divided by its rows.
CREATE OR REPLACE FUNCTION analytics.predictions(model_name text)
RETURNS TABLE(client_id bigint, model text, entity_id bigint, prediction real,
              probability real, model_id bigint, model_trained_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cid bigint := pgml_flow.current_client_id();
    m record;
    ids bigint[];
    ys real[];
    probas real[];
    feats text[];
    started timestamptz;
    per_row_ms real;
BEGIN
    IF cid IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO m FROM pgml_flow.serving_model(cid, predictions.model_name);
    IF NOT FOUND OR m.feature_view IS NULL THEN
        RETURN;
    END IF;
    started := clock_timestamp();
    IF m.task = 'classification' THEN
        EXECUTE format(
            'SELECT array_agg(f.entity_id ORDER BY f.entity_id), '
            '       array_agg((SELECT (o - 1)::real FROM unnest(p.proba) WITH ORDINALITY u(v, o) '
            '                   WHERE NOT p.proba && ''{NaN,Infinity,-Infinity}''::real[] '
            '                   ORDER BY v DESC, o LIMIT 1) ORDER BY f.entity_id), '
            '       array_agg(pgml_flow.finite_or_null(p.proba[2]) ORDER BY f.entity_id), '
            '       array_agg(f.features::text ORDER BY f.entity_id) '
            '  FROM %s f CROSS JOIN LATERAL '
            '       (SELECT pgml_flow.predict_proba_or_null($2, f.features) AS proba) p '
            ' WHERE f.client_id = $1 AND f.is_open', m.feature_view::regclass)
        INTO ids, ys, probas, feats USING cid, m.model_id;
    ELSE
        EXECUTE format(
            'SELECT array_agg(f.entity_id ORDER BY f.entity_id), '
            '       array_agg(pgml_flow.predict_or_null($2, f.features) ORDER BY f.entity_id), '
            '       NULL::real[], '
            '       array_agg(f.features::text ORDER BY f.entity_id) '
            '  FROM %s f WHERE f.client_id = $1 AND f.is_open', m.feature_view::regclass)
        INTO ids, ys, probas, feats USING cid, m.model_id;
    END IF;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    per_row_ms := extract(epoch FROM clock_timestamp() - started) * 1000
                  / cardinality(ids);

    -- a sample of the read, once per unchanged prediction, under the client's hourly
    -- cap (250_prediction_log.sql); never raises
    PERFORM pgml_flow.log_predictions(cid, predictions.model_name, m.model_id, m.log_rows,
                                      ids, ys, probas, feats, per_row_ms, m.feature_mean,
                                      m.feature_stddev, m.target_mean, m.target_stddev);

    RETURN QUERY
        SELECT cid, predictions.model_name, u.id, u.y, u.p, m.model_id, m.trained_at
          FROM unnest(ids, ys, probas) AS u(id, y, p);
END;
$$;
COMMENT ON FUNCTION analytics.predictions(text) IS
    'Predictions of a model for the caller''s client''s open entities, logged to ml_prediction_log';
