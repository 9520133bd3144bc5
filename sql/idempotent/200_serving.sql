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
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- PL/pgSQL, not SQL: Citus plans a query with parameters of a SQL function only when it
-- reads no distributed table (ml_model_baselines is one), while PL/pgSQL's parameters
-- become constants that route the query to the client's shard (docs/scale-out.md)
#variable_conflict use_column
BEGIN
    RETURN QUERY
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
     WHERE r.model_name = p_model;
END;
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

-- A NULL feature is passed on as NaN, the missing value the tree libraries score: pgml.predict
-- refuses NULL inside the array (as PostgresML does), the BI surface scores what it can.
CREATE OR REPLACE FUNCTION pgml_flow.predict_or_null(model_id bigint, features real[])
RETURNS real
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT pgml_flow.finite_or_null(
        CASE WHEN pgml_flow.finite_features(features) THEN pgml.predict(model_id, features)
             ELSE pgml_flow.try_predict(model_id, array_replace(features, NULL, 'NaN')) END)
$$;

CREATE OR REPLACE FUNCTION pgml_flow.predict_proba_or_null(model_id bigint, features real[])
RETURNS real[]
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
    SELECT CASE WHEN pgml_flow.finite_features(features)
                THEN pgml.predict_proba(model_id, features)
                ELSE pgml_flow.try_predict_proba(model_id, array_replace(features, NULL, 'NaN'))
           END
$$;

-- Calibration of a classifier trained with class weights. Weights that balance the classes
-- (class_weight 'balanced', LightGBM's is_unbalance) make the model learn as if both
-- classes were equally frequent: its probability of class 1 is a balanced score (0.5 is
-- its decision boundary), whose odds are the true odds times (1 - pi) / pi, pi being the
-- share of class 1 in the training rows. Multiplying the score's odds by pi / (1 - pi)
-- undoes that (prior-shift correction); XGBoost's scale_pos_weight w multiplies the odds
-- by w, undone by 1 / w. The factor for the odds of a model: 1 (the identity) for a model
-- trained without such weights; NULL when it needs pi and pi is unknown or not in (0, 1).
-- class_prior: ml_model_baselines.target_mean of the model (the mean of a 0/1 target).
CREATE OR REPLACE FUNCTION pgml_flow.calibration_odds(hyperparams jsonb,
                                                      class_prior double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN hyperparams ->> 'class_weight' = 'balanced'
             OR hyperparams ->> 'is_unbalance' = 'true'
            THEN CASE WHEN class_prior > 0 AND class_prior < 1
                      THEN class_prior / (1 - class_prior) END
        WHEN jsonb_typeof(hyperparams -> 'scale_pos_weight') = 'number'
             AND (hyperparams ->> 'scale_pos_weight')::double precision > 0
            THEN 1 / (hyperparams ->> 'scale_pos_weight')::double precision
        ELSE 1 END
$$;
COMMENT ON FUNCTION pgml_flow.calibration_odds(jsonb, double precision) IS
    'Odds factor that turns a class-weighted classifier''s score into a probability (1: none needed)';

-- The calibrated probability of a score (a model's probability of class 1) with the odds
-- factor of pgml_flow.calibration_odds: odds(p) = odds(score) * factor. Exactly the score
-- when the factor is 1; NULL when the score or the factor is.
CREATE OR REPLACE FUNCTION pgml_flow.calibrated(score double precision,
                                                odds_factor double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN odds_factor = 1 THEN score
                ELSE score * odds_factor / (score * odds_factor + (1 - score)) END
$$;
COMMENT ON FUNCTION pgml_flow.calibrated(double precision, double precision) IS
    'A classifier''s score with its odds multiplied by odds_factor (prior-shift correction)';

-- analytics.predictions(text) became analytics.predictions(text, boolean) with results in
-- double precision and a score: the old function goes first, with the analytics views on
-- it (300_bi.sql creates them again).
SELECT pgml_flow.drop_function_for_upgrade('analytics.predictions(text)');
SELECT pgml_flow.drop_function_for_upgrade('analytics.predictions(text, boolean)',
    'TABLE(client_id bigint, model text, entity_id bigint, prediction double precision, '
    'probability double precision, score double precision, model_id bigint, '
    'model_trained_at timestamp with time zone, serving_state text, serving_reason text)');

-- Predictions of one model for the open entities of the caller's client (never another
-- client's: the client is resolved here, not passed in). Regression: prediction is the
-- predicted value, in the unit of the model's target. Classification: prediction is the
-- predicted class index (the model's decision, argmax of its scores), score the model's
-- own probability of class 1 (the positive class of a 0/1 label; pgml.predict_proba's) and
-- probability that score calibrated (pgml_flow.calibration_odds: the same as score unless
-- the model was trained with class weights; NULL when it was but the class prevalence of
-- its training rows is unknown).
-- pgml.predict gives real; the result is double precision, converted through numeric: the
-- six significant digits a real holds (8.7, not 8.699999809265137; pgml_flow.real_digits,
-- in C where the native scorer is, 096_real_digits.sql); probability is computed from
-- that score, so that it equals score exactly when no calibration applies.
-- An unknown model name is an error (42704) that lists the models served, and so is a
-- registered model without a feature_view (22023); with missing_ok (as the views of
-- 300_bi.sql call it: a model is registered when it is first trained) such a model has no
-- rows instead.
-- Rows keep coming with NULL predictions when the client has no deployed model, and an
-- item the model gives no number for (pgml_flow.predict_or_null) has NULL ones: never NaN.
-- serving_state / serving_reason: the kill switch and rollout (pgml_flow.rollout_state,
-- 260_rollout.sql; shadow and disabled rows have NULL predictions and model_id), no_model,
-- or the A/B test whose challenger a split test served the item.
--
-- Logging (pgml_flow.log_predictions): one INSERT into ml_prediction_log per call
-- (batched) of a uniform random sample of at most log_rows of its predictions (all of them
-- with -1), minus those already logged unchanged, under the client's hourly cap; skipped
-- when the client's prediction_logging is off, the transaction is read-only (BI tools,
-- standbys) or logging fails (a failed log never fails the read). response_time_ms is the
-- call's prediction time divided by its rows.
CREATE OR REPLACE FUNCTION analytics.predictions(model_name text,
                                                  missing_ok boolean DEFAULT false)
RETURNS TABLE(client_id bigint, model text, entity_id bigint, prediction double precision,
              probability double precision, score double precision, model_id bigint,
              model_trained_at timestamptz, serving_state text, serving_reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cid bigint := pgml_flow.current_client_id();
    m record;
    ids bigint[];
    ys real[];
    scores real[];
    probas real[];
    odds double precision := 1;
    feats text[];
    started timestamptz;
    per_row_ms real;
    registered boolean;
    servable boolean;
    served text;
    python_rows boolean;
    logs boolean;
    v_state text;
    v_reason text;
    ab record;
BEGIN
    SELECT true, r.feature_view IS NOT NULL INTO registered, servable
      FROM public.ml_model_registry r WHERE r.model_name = predictions.model_name;
    IF registered IS NULL OR NOT servable THEN
        IF predictions.missing_ok THEN
            RETURN;
        END IF;
        SELECT string_agg(r.model_name, ', ' ORDER BY r.model_name) INTO served
          FROM public.ml_model_registry r WHERE r.feature_view IS NOT NULL;
        IF registered THEN
            RAISE EXCEPTION 'model % has no feature_view, so analytics.predictions cannot '
                            'serve it; the models it serves: %',
                            quote_literal(predictions.model_name), coalesce(served, '(none)')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Give the model''s spec a feature_view (docs/models.md).';
        END IF;
        RAISE EXCEPTION 'unknown model %; the models analytics.predictions serves: %',
                        quote_literal(predictions.model_name),
                        coalesce(served, '(none: no model is registered yet)')
            USING ERRCODE = 'undefined_object',
                  HINT = 'The model_name column of analytics.model_quality lists them too.';
    END IF;
    IF cid IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO m FROM pgml_flow.serving_model(cid, predictions.model_name);
    -- the kill switch and rollout (260_rollout.sql), read on every call: disabled is not
    -- scored at all, shadow is scored and logged but shown as NULL
    SELECT r.state, r.reason INTO v_state, v_reason
      FROM pgml_flow.rollout_state(cid, predictions.model_name) r;
    IF m.model_id IS NULL THEN
        v_state := 'no_model';
        v_reason := 'the client has no deployed ' || predictions.model_name
                    || ' model, or its ML is switched off (clients.ml_enabled)';
    ELSIF v_state = 'disabled' THEN
        m.model_id := NULL;
    END IF;
    -- whether log_predictions can log this read (it returns at once otherwise): only then
    -- is every row's features array printed for it (FILTER (WHERE $3) below)
    logs := m.model_id IS NOT NULL AND m.log_rows <> 0
            AND NOT current_setting('transaction_read_only')::boolean;
    started := clock_timestamp();
    IF m.task = 'classification' THEN
        EXECUTE format(
            'SELECT array_agg(f.entity_id ORDER BY f.entity_id), '
            '       array_agg((SELECT (o - 1)::real FROM unnest(p.proba) WITH ORDINALITY u(v, o) '
            '                   WHERE NOT p.proba && ''{NaN,Infinity,-Infinity}''::real[] '
            '                   ORDER BY v DESC, o LIMIT 1) ORDER BY f.entity_id), '
            '       array_agg(pgml_flow.finite_or_null(p.proba[2]) ORDER BY f.entity_id), '
            '       array_agg(f.features::text ORDER BY f.entity_id) FILTER (WHERE $3) '
            '  FROM %s f CROSS JOIN LATERAL '
            '       (SELECT pgml_flow.predict_proba_or_null($2, f.features) AS proba) p '
            ' WHERE f.client_id = $1 AND f.is_open', m.feature_view::regclass)
        INTO ids, ys, scores, feats USING cid, m.model_id, logs;
        IF m.model_id IS NOT NULL THEN
            -- a model trained with calibration (engine.targets) serves probabilities already
            SELECT CASE WHEN x.metrics ? 'calibration' THEN 1
                        ELSE pgml_flow.calibration_odds(x.hyperparams, m.target_mean) END INTO odds
              FROM pgml.models x WHERE x.id = m.model_id;
        END IF;
        probas := ARRAY(SELECT pgml_flow.calibrated(pgml_flow.real_digits(u.s), odds)::real
                          FROM unnest(scores) WITH ORDINALITY AS u(s, o) ORDER BY u.o);
    ELSE
        FOR python_rows IN SELECT unnest(ARRAY[false, true]) LOOP
            BEGIN
                EXECUTE format(
                    'SELECT array_agg(f.entity_id ORDER BY f.entity_id), '
                    '       %s, '
                    '       NULL::real[], '
                    '       array_agg(f.features::text ORDER BY f.entity_id) '
                    '           FILTER (WHERE $3) '
                    '  FROM %s f WHERE f.client_id = $1 AND f.is_open',
                    -- a spec with preprocess: its model reads the view's columns (the ROW
                    -- form), in C per row or in one Python call (195_native_rows.sql)
                    CASE WHEN pgml_flow.reads_rows(predictions.model_name)
                         THEN pgml_flow.row_scores_sql(m.model_id, python_rows)
                         ELSE 'array_agg(pgml_flow.predict_or_null($2, f.features) '
                              'ORDER BY f.entity_id)' END,
                    m.feature_view::regclass)
                INTO ids, ys, scores, feats USING cid, m.model_id, logs;
                EXIT;
            EXCEPTION WHEN data_exception OR object_not_in_prerequisite_state THEN
                -- a row the C scorer leaves to Python, which raised: read again on the
                -- Python path, where that row is NULL
                IF python_rows OR NOT pgml_flow.reads_rows(predictions.model_name) THEN
                    RAISE;
                END IF;
            END;
        END LOOP;
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

    -- a running A/B test (260_rollout.sql): the challenger scores the same items, both are
    -- logged; arm: the items a split test serves the challenger's prediction
    SELECT * INTO ab FROM pgml_flow.abtest_serve(cid, predictions.model_name, m.model_id,
        m.task, m.feature_view, ids, ys, scores) a;
    RETURN QUERY
        SELECT cid, predictions.model_name, u.id,
               CASE WHEN v_state = 'enabled' THEN
                   pgml_flow.real_digits(CASE WHEN u.arm THEN u.cy ELSE u.y END) END,
               CASE WHEN v_state = 'enabled' THEN pgml_flow.calibrated(
                   pgml_flow.real_digits(CASE WHEN u.arm THEN u.cs ELSE u.s END),
                   CASE WHEN u.arm THEN ab.odds ELSE odds END) END,
               CASE WHEN v_state = 'enabled' THEN
                   pgml_flow.real_digits(CASE WHEN u.arm THEN u.cs ELSE u.s END) END,
               CASE WHEN v_state = 'enabled' THEN
                   CASE WHEN u.arm THEN ab.model_id ELSE m.model_id END END,
               CASE WHEN v_state = 'enabled' THEN
                   CASE WHEN u.arm THEN ab.trained_at ELSE m.trained_at END END,
               v_state,
               CASE WHEN u.arm THEN 'challenger of A/B test ' || ab.abtest_id || ' (split '
                                    || ab.split_percent || '% of items)'
                    ELSE v_reason END
          FROM unnest(ids, ys, scores, ab.arms, ab.ys, ab.scores) AS u(id, y, s, arm, cy, cs);
END;
$$;
COMMENT ON FUNCTION analytics.predictions(text, boolean) IS
    'Predictions of a model for the caller''s client''s open entities, logged to ml_prediction_log';
