-- The kill switch, the rollout to a share of clients, and online A/B tests (revision
-- 0011_rollout's tables; docs/operations.md). analytics.predictions (200_serving.sql) asks
-- pgml_flow.rollout_state and pgml_flow.abtest_serve on every read: one lookup each in
-- small tables, nothing cached across statements, so a flip shows on the next query of a
-- BI connection that is already open (in READ COMMITTED, PostgreSQL's default).

-- A stable bucket 0..99 of (client, key): the first 32 bits of an md5, so that the same
-- client (and item) always lands in the same bucket, on any server and in Python
-- (pgml_flow.rollout.bucket). Rollout: key = the model; split test: key = model|item.
CREATE OR REPLACE FUNCTION pgml_flow.rollout_bucket(client_id bigint, key text)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT (('x' || left(md5(client_id::text || '|' || key), 8))::bit(32)::bigint % 100)::integer
$$;
COMMENT ON FUNCTION pgml_flow.rollout_bucket(bigint, text) IS
    'Deterministic bucket 0..99 of a client and a key (md5): the rollout and the split of A/B tests';

-- What the BI surface does with a client's model now, and why. The first that applies:
-- 1. the global switch (ml_rollout_global '*') when it is not enabled;
-- 2. the model's switch (ml_rollout_global model) when it is disabled;
-- 3. the client's switch of the model, then the client's switch of all its models;
-- 4. the model's switch with its rollout: a client whose bucket is not below
--    rollout_percent is disabled;
-- 5. enabled.
-- enabled: served; shadow: scored and logged, but the BI surface shows NULL; disabled:
-- not scored at all, NULL. reason is NULL when enabled.
CREATE OR REPLACE FUNCTION pgml_flow.rollout_state(p_client bigint, p_model text)
RETURNS TABLE(state text, reason text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- PL/pgSQL, not SQL: Citus cannot plan a SQL function's parameters against a distributed
-- table (ml_rollout), PL/pgSQL's become constants (as pgml_flow.serving_model's)
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT s.state, CASE WHEN s.state <> 'enabled' THEN s.reason END
      FROM (
        SELECT 1 AS rank, g.state,
               'global switch (every model): ' || coalesce(g.reason, 'no reason given') AS reason
          FROM public.ml_rollout_global g
         WHERE g.model_name = '*' AND g.state <> 'enabled'
        UNION ALL
        SELECT 2, g.state, 'model switch of ' || g.model_name || ': '
                           || coalesce(g.reason, 'no reason given')
          FROM public.ml_rollout_global g
         WHERE g.model_name = p_model AND g.state = 'disabled'
        UNION ALL
        SELECT CASE WHEN r.model_name = '*' THEN 4 ELSE 3 END, r.state,
               CASE WHEN r.model_name = '*' THEN 'client switch (every model): '
                    ELSE 'client switch of ' || r.model_name || ': ' END
               || coalesce(r.reason, 'no reason given')
          FROM public.ml_rollout r
         WHERE r.client_id = p_client AND r.model_name IN (p_model, '*')
        UNION ALL
        SELECT 5,
               CASE WHEN pgml_flow.rollout_bucket(p_client, g.model_name) >= g.rollout_percent
                    THEN 'disabled' ELSE g.state END,
               CASE WHEN pgml_flow.rollout_bucket(p_client, g.model_name) >= g.rollout_percent
                    THEN 'not in the rollout of ' || g.model_name || ' to '
                         || g.rollout_percent || '% of clients'
                    ELSE 'model switch of ' || g.model_name || ': '
                         || coalesce(g.reason, 'no reason given') END
          FROM public.ml_rollout_global g
         WHERE g.model_name = p_model
        UNION ALL
        SELECT 6, 'enabled', NULL
      ) s
     ORDER BY s.rank
     LIMIT 1;
END;
$$;
COMMENT ON FUNCTION pgml_flow.rollout_state(bigint, text) IS
    'enabled, shadow or disabled, and why: what the BI surface does with a client''s model now';

-- The operator's switch (superusers and pgml_flow_ml; BI logins may not execute it nor
-- write the tables). p_model '*': every model; p_client NULL: every client. p_state
-- enabled, shadow, disabled, or clear (remove the row: back to what the others say).
-- p_percent: the share of clients a model is rolled out to (a model's row for every
-- client only). Returns the row's state after the change (NULL after clear).
CREATE OR REPLACE FUNCTION pgml_flow.set_rollout(p_state text, p_model text DEFAULT '*',
                                                 p_client bigint DEFAULT NULL,
                                                 p_percent integer DEFAULT NULL,
                                                 p_reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_state IS NULL OR p_state NOT IN ('enabled', 'shadow', 'disabled', 'clear') THEN
        RAISE EXCEPTION 'unknown rollout state %', coalesce(quote_literal(p_state), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use enabled, shadow, disabled, or clear (remove the switch).';
    END IF;
    IF p_model IS NULL OR (p_model <> '*' AND NOT EXISTS (
            SELECT 1 FROM public.ml_model_registry r WHERE r.model_name = p_model)) THEN
        RAISE EXCEPTION 'unknown model %', coalesce(quote_literal(p_model), 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Name a trained model (the model_name column of ml_model_registry), '
                         'or * for every model.';
    END IF;
    IF p_percent IS NOT NULL AND (p_client IS NOT NULL OR p_model = '*') THEN
        RAISE EXCEPTION 'a rollout percentage applies to one model for every client'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a model and no client with the percentage.';
    END IF;
    IF p_percent IS NOT NULL AND p_percent NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION 'rollout percentage must be 0..100, got %', p_percent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_client IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM public.clients c WHERE c.client_id = p_client) THEN
        RAISE EXCEPTION 'client % does not exist', p_client
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'See the clients table.';
    END IF;
    IF p_state = 'clear' THEN
        IF p_client IS NULL THEN
            DELETE FROM public.ml_rollout_global g WHERE g.model_name = p_model;
        ELSE
            DELETE FROM public.ml_rollout r
             WHERE r.client_id = p_client AND r.model_name = p_model;
        END IF;
        RETURN NULL;
    END IF;
    IF p_client IS NULL THEN
        INSERT INTO public.ml_rollout_global AS g (model_name, state, rollout_percent, reason)
        VALUES (p_model, p_state, coalesce(p_percent, 100), p_reason)
        ON CONFLICT ON CONSTRAINT ml_rollout_global_pkey DO UPDATE
           SET state = excluded.state,
               rollout_percent = coalesce(p_percent, g.rollout_percent),
               reason = excluded.reason, updated_at = now(), updated_by = session_user;
    ELSE
        INSERT INTO public.ml_rollout AS r (client_id, model_name, state, reason)
        VALUES (p_client, p_model, p_state, p_reason)
        ON CONFLICT ON CONSTRAINT ml_rollout_pkey DO UPDATE
           SET state = excluded.state, reason = excluded.reason, updated_at = now(),
               updated_by = session_user;
    END IF;
    RETURN p_state;
END;
$$;
COMMENT ON FUNCTION pgml_flow.set_rollout(text, text, bigint, integer, text) IS
    'Flip the kill switch or the rollout of a model (or *), for one client or every client';

-- A/B test of a read (called by analytics.predictions, as pgml_flow_ml): when the client's
-- model has a running test whose champion is p_model_id, score the challenger on the same
-- open items, log both arms' predictions per item (ml_abtest_predictions: one row per item,
-- updated while the item stays open, so the last prediction before its outcome counts), and
-- return the challenger's predictions aligned with p_ids with arms: true where the item is
-- served the challenger (split tests: bucket of (client, model|item) < split_percent; never
-- in shadow tests). No row: no test, or the challenger failed (written to the server log: a
-- challenger never fails the read). Writes nothing in a read-only transaction, and skips
-- the log while another transaction logs the same test (never waits).
CREATE OR REPLACE FUNCTION pgml_flow.abtest_serve(
    p_client bigint, p_model text, p_model_id bigint, p_task text, p_feature_view text,
    p_ids bigint[], p_ys real[], p_scores real[])
RETURNS TABLE(abtest_id bigint, arms boolean[], ys real[], scores real[],
              odds double precision, model_id bigint, trained_at timestamptz,
              split_percent integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t record;
    c_ids bigint[];
    c_ys real[];
    c_scores real[];
    c_odds double precision := 1;
    a_arms boolean[];
    a_ys real[];
    a_scores real[];
BEGIN
    IF p_model_id IS NULL OR p_ids IS NULL THEN
        RETURN;
    END IF;
    SELECT x.id, x.challenger_model_id, x.mode, x.split_percent INTO t
      FROM public.ml_abtests x
     WHERE x.client_id = p_client AND x.model_name = p_model AND x.status = 'running'
       AND x.champion_model_id = p_model_id;
    IF t.id IS NULL THEN
        RETURN;
    END IF;
    BEGIN
        IF p_task = 'classification' THEN
            EXECUTE format(
                'SELECT array_agg(f.entity_id ORDER BY f.entity_id), '
                '       array_agg((SELECT (o - 1)::real FROM unnest(p.proba) WITH ORDINALITY u(v, o) '
                '                   WHERE NOT p.proba && ''{NaN,Infinity,-Infinity}''::real[] '
                '                   ORDER BY v DESC, o LIMIT 1) ORDER BY f.entity_id), '
                '       array_agg(pgml_flow.finite_or_null(p.proba[2]) ORDER BY f.entity_id) '
                '  FROM %s f CROSS JOIN LATERAL '
                '       (SELECT pgml_flow.predict_proba_or_null($2, f.features) AS proba) p '
                ' WHERE f.client_id = $1 AND f.is_open', p_feature_view::regclass)
            INTO c_ids, c_ys, c_scores USING p_client, t.challenger_model_id;
            SELECT CASE WHEN m.metrics ? 'calibration' THEN 1  -- calibrated at training
                        ELSE pgml_flow.calibration_odds(m.hyperparams, b.target_mean) END
                   INTO c_odds
              FROM pgml.models m
              LEFT JOIN public.ml_model_baselines b
                     ON b.client_id = p_client AND b.model_id = m.id
             WHERE m.id = t.challenger_model_id;
        ELSE
            EXECUTE format(
                'SELECT array_agg(f.entity_id ORDER BY f.entity_id), %s, NULL::real[] '
                '  FROM %s f WHERE f.client_id = $1 AND f.is_open',
                CASE WHEN pgml_flow.reads_rows(p_model)
                     THEN 'pgml_flow.predict_rows($2, array_agg(to_json(f) ORDER BY f.entity_id))'
                     ELSE 'array_agg(pgml_flow.predict_or_null($2, f.features) '
                          'ORDER BY f.entity_id)' END,
                p_feature_view::regclass)
            INTO c_ids, c_ys, c_scores USING p_client, t.challenger_model_id;
        END IF;
        -- aligned with the champion's items (an item that changed in between has none)
        SELECT array_agg(t.mode = 'split'
                         AND pgml_flow.rollout_bucket(p_client, p_model || '|' || x.id)
                             < t.split_percent
                         AND c.id IS NOT NULL ORDER BY x.o),
               array_agg(c.y ORDER BY x.o), array_agg(c.s ORDER BY x.o)
          INTO a_arms, a_ys, a_scores
          FROM unnest(p_ids) WITH ORDINALITY AS x(id, o)
          LEFT JOIN unnest(c_ids, c_ys, c_scores) AS c(id, y, s) ON c.id = x.id;

        IF NOT current_setting('transaction_read_only')::boolean
           AND pg_try_advisory_xact_lock(hashtextextended(
                   'pgml_flow.abtest ' || p_client || ' ' || t.id, 0)) THEN
            INSERT INTO public.ml_abtest_predictions AS x
                   (client_id, abtest_id, entity_id, served_arm, champion_prediction,
                    challenger_prediction, champion_score, challenger_score)
            SELECT p_client, t.id, u.id,
                   CASE WHEN u.arm THEN 'challenger' ELSE 'champion' END,
                   u.y::numeric::double precision, u.cy::numeric::double precision,
                   u.s::numeric::double precision, u.cs::numeric::double precision
              FROM unnest(p_ids, p_ys, p_scores, a_arms, a_ys, a_scores)
                   AS u(id, y, s, arm, cy, cs)
            ON CONFLICT ON CONSTRAINT ml_abtest_predictions_pkey DO UPDATE
               SET champion_prediction = excluded.champion_prediction,
                   challenger_prediction = excluded.challenger_prediction,
                   champion_score = excluded.champion_score,
                   challenger_score = excluded.challenger_score, scored_at = now()
             WHERE (x.champion_prediction, x.challenger_prediction, x.champion_score,
                    x.challenger_score)
                   IS DISTINCT FROM (excluded.champion_prediction,
                                     excluded.challenger_prediction, excluded.champion_score,
                                     excluded.challenger_score);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE LOG 'pgml-flow: A/B test % of % for client % failed: %',
            t.id, p_model, p_client, SQLERRM;
        RETURN;
    END;
    RETURN QUERY
        SELECT t.id, a_arms, a_ys, a_scores, c_odds, t.challenger_model_id,
               (SELECT b.trained_at FROM public.ml_model_baselines b
                 WHERE b.client_id = p_client AND b.model_id = t.challenger_model_id),
               CASE WHEN t.mode = 'split' THEN t.split_percent ELSE 0 END;
END;
$$;
COMMENT ON FUNCTION pgml_flow.abtest_serve(bigint, text, bigint, text, text, bigint[], real[],
                                           real[]) IS
    'Score a running A/B test''s challenger on a read''s items, log both arms, return its arm';

-- The pairs of an A/B test whose outcome is known: both arms' last predictions of an item
-- while it was open, and its outcome now that it is not (the model's target in its feature
-- view, on a training row that is no longer open: the actual story points of a done issue,
-- the lead time of a completed epic, whether a merged pull request was reworked).
CREATE OR REPLACE FUNCTION pgml_flow.abtest_outcomes(p_client bigint, p_abtest bigint)
RETURNS TABLE(entity_id bigint, served_arm text, champion_prediction double precision,
              challenger_prediction double precision, champion_score double precision,
              challenger_score double precision, outcome double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT g.feature_view, g.target INTO r
      FROM public.ml_abtests t JOIN public.ml_model_registry g ON g.model_name = t.model_name
     WHERE t.client_id = p_client AND t.id = p_abtest;
    IF r.feature_view IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT p.entity_id, p.served_arm, p.champion_prediction, p.challenger_prediction, '
        '       p.champion_score, p.challenger_score, f.%I::double precision '
        '  FROM public.ml_abtest_predictions p '
        '  JOIN %s f ON f.client_id = p.client_id AND f.entity_id = p.entity_id '
        ' WHERE p.client_id = $1 AND p.abtest_id = $2 AND f.is_training AND NOT f.is_open '
        '   AND f.%I IS NOT NULL '
        ' ORDER BY p.entity_id', r.target, r.feature_view::regclass, r.target)
    USING p_client, p_abtest;
END;
$$;
COMMENT ON FUNCTION pgml_flow.abtest_outcomes(bigint, bigint) IS
    'An A/B test''s items with a known outcome: both arms'' predictions and the outcome';

-- Row-Level Security of ml_rollout, ml_abtests and ml_abtest_predictions: the policies
-- of every per-client table, in 800_policies.sql. BI logins are granted nothing on these
-- tables (they read the state through the views' serving_state and serving_reason).

-- The operator (pgml_flow_ml, or a superuser) flips switches and runs tests; the BI
-- surface (analytics.predictions runs as pgml_flow_ml) reads them and logs the pairs.
-- BI logins get nothing here (900_grants.sql gives them no pgml_flow function but
-- current_client_id).
GRANT SELECT, INSERT, UPDATE, DELETE ON public.ml_rollout_global, public.ml_rollout,
                                        public.ml_abtests, public.ml_abtest_predictions
   TO pgml_flow_ml;
