-- Queries of client-scoped training (pgml_flow.training), loaded by name. Templates with
-- {placeholders} are composed with psycopg.sql (identifiers quoted by psycopg).

-- name: client_info
SELECT client_id, name, ml_enabled FROM clients WHERE client_id = %(client_id)s;

-- name: active_client_ids
SELECT client_id FROM clients WHERE active ORDER BY client_id;

-- name: register_model
INSERT INTO ml_model_registry AS r (model_name, task, training_view, feature_view, target,
                                    features, key_metric, performance_threshold, spec)
VALUES (%(model_name)s, %(task)s, %(training_view)s, %(feature_view)s, %(target)s,
        %(features)s, %(key_metric)s, %(performance_threshold)s, %(spec)s)
ON CONFLICT (model_name) DO UPDATE
   SET task = excluded.task, training_view = excluded.training_view,
       feature_view = excluded.feature_view, target = excluded.target,
       features = excluded.features, key_metric = excluded.key_metric,
       performance_threshold = excluded.performance_threshold, spec = excluded.spec,
       -- the column's default, now(): Citus refuses a volatile function call in DO UPDATE
       -- SET on a reference table, a column of the excluded row it takes
       updated_at = excluded.updated_at
 WHERE (r.task, r.training_view, r.feature_view, r.target, r.features, r.key_metric,
        r.performance_threshold, r.spec)
       IS DISTINCT FROM
       (excluded.task, excluded.training_view, excluded.feature_view, excluded.target,
        excluded.features, excluded.key_metric, excluded.performance_threshold, excluded.spec);

-- name: registry_unchanged
-- Whether the spec's registry row already says what register_model would write: then it is
-- not run, because ON CONFLICT DO UPDATE locks the row even when its WHERE changes nothing,
-- and parallel retrains of one model (each holding its transaction for its whole run) would
-- then wait for each other, one client at a time.
SELECT EXISTS (
    SELECT 1 FROM ml_model_registry r
     WHERE r.model_name = %(model_name)s
       AND (r.task, r.training_view, r.feature_view, r.target, r.features, r.key_metric,
            r.performance_threshold, r.spec)
           IS NOT DISTINCT FROM
           (%(task)s::text, %(training_view)s::text, %(feature_view)s::text,
            %(target)s::text, %(features)s::text[], %(key_metric)s::text,
            %(performance_threshold)s::real, %(spec)s::jsonb));

-- name: feature_view_access
-- Whether analytics.predictions (SECURITY DEFINER: it reads feature views as its owner)
-- can read a spec's feature view; the owner's name for the GRANT that lets it.
SELECT to_regclass(%(view)s) IS NOT NULL AS found, o.owner,
       coalesce(has_table_privilege(o.owner, to_regclass(%(view)s), 'SELECT'), false)
           AS readable
  FROM (SELECT p.proowner::regrole::text AS owner FROM pg_proc p
         WHERE p.proname = 'predictions' AND p.pronamespace = 'analytics'::regnamespace
         ORDER BY p.oid LIMIT 1) o;

-- name: registered_models
SELECT model_name FROM ml_model_registry ORDER BY model_name;

-- name: drop_training_view
DROP VIEW IF EXISTS pgml_flow_training.{view};

-- name: create_training_view
-- In the spec's split order (pgml_flow.holdout.order_by: its split column, NULLs first, then
-- a hash of each row; or the hash alone): pgml.train's test_sampling 'last' then holds out
-- the newest rows, or the same hash-chosen rows at every training, and champion and
-- challenger are scored on rows neither was trained on (pgml_flow/holdout.py).
CREATE VIEW pgml_flow_training.{view} AS
SELECT {features}, {target} FROM {source} AS s WHERE client_id = {client_id}
 ORDER BY {order};

-- name: holdout_predictions
-- The rows pgml.train held out (the last of the training view's rows in split order), their
-- targets and a model's predictions of them: the ROW form (the model reads its input
-- columns by name), all rows in one call (pgml_flow.predict_rows, or
-- pgml_flow.predict_positive_rows when the key metric scores probabilities; NULL: not
-- scorable).
-- %(other_id)s, when not NULL, is a second model (the champion) scored on the same rows in
-- the same read: the client's rows are read, ordered and hashed once for both (the two
-- identical array_agg are computed once), and only the held-out ones become JSON.
SELECT array_agg(h.y ORDER BY h.n),
       {predict}(%(model_id)s::bigint, array_agg(to_json(h.r) ORDER BY h.n)),
       {predict}(%(other_id)s::bigint, array_agg(to_json(h.r) ORDER BY h.n))
  FROM (SELECT {target}::double precision AS y, s AS r,
               row_number() OVER (ORDER BY {order}) AS n
          FROM {source} AS s WHERE client_id = %(client_id)s) AS h
 WHERE h.n > %(skip)s;

-- name: drop_client_rows
DROP TABLE IF EXISTS pg_temp.{table};

-- name: create_client_rows
-- A client's training rows read once for a training (pgml_flow.holdout.materialize):
-- every column of the spec's training view (a champion trained on other columns reads
-- its own), numbered in the split order of the client's training view (create_training_view).
CREATE TEMPORARY TABLE {table} ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY {order}) AS "_row", s.*
  FROM {source} AS s WHERE s.client_id = {client_id};

-- name: holdout_predictions_of_rows
-- holdout_predictions on the rows of create_client_rows (the same rows, the same order).
SELECT array_agg(r.{target}::double precision ORDER BY r."_row"),
       {predict}(%(model_id)s::bigint, array_agg(to_json(r) ORDER BY r."_row")),
       {predict}(%(other_id)s::bigint, array_agg(to_json(r) ORDER BY r."_row"))
  FROM pg_temp.{table} AS r
 WHERE r."_row" > %(skip)s;

-- name: count_rows
SELECT count(*) FROM pgml_flow_training.{view};

-- name: numeric_columns
-- The number and boolean columns (and arrays of them) of a client's training view, in
-- order: what the features array of a feature view holds (the prediction log's z-scores).
SELECT a.attname, e.oid IS NOT NULL AS is_array
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
 WHERE a.attrelid = %(view)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND (t.typcategory IN ('N', 'B') OR e.typcategory IN ('N', 'B'))
 ORDER BY a.attnum;

-- name: feature_stats
-- Mean and spread of each element of the numeric features (scalars and arrays flattened
-- in order, as the features array of a feature view), each array's length, and the
-- target's mean and spread, over the client's rows as the training read them
-- (pgml_flow.holdout.materialize's table).
WITH elements AS (
    SELECT u.i, avg(u.v) AS mean, stddev_pop(u.v) AS sd
      FROM pg_temp.{table} v
     CROSS JOIN LATERAL unnest({flat}) WITH ORDINALITY AS u(v, i)
     GROUP BY u.i
)
SELECT coalesce((SELECT array_agg(e.mean ORDER BY e.i) FROM elements e), '{{}}')
           AS feature_mean,
       coalesce((SELECT array_agg(e.sd ORDER BY e.i) FROM elements e), '{{}}')
           AS feature_stddev,
       ARRAY[{widths}]::integer[] AS widths,
       avg({target}::double precision) AS target_mean,
       stddev_pop({target}::double precision) AS target_stddev
  FROM pg_temp.{table} v;

-- name: lock_project
-- Held by a training run of a project for its whole run (released at its end, or when its
-- session ends): a run that gets it knows no other run of the project is alive.
SELECT pg_try_advisory_lock(hashtextextended('pgml_flow.train ' || %(project)s, 0));

-- name: unlock_project
SELECT pg_advisory_unlock(hashtextextended('pgml_flow.train ' || %(project)s, 0));

-- name: fail_abandoned_runs
-- Runs of a project still 'running' while no run of it is alive (lock_project): their
-- process ended before it could record how they ended.
UPDATE ml_retraining_events
   SET status = 'failed', finished_at = now(),
       error = 'the run ended without recording its outcome (its process stopped or lost '
               'its connection); nothing it trained was deployed'
 WHERE client_id = %(client_id)s AND project = %(project)s AND status = 'running';

-- name: insert_event
INSERT INTO ml_retraining_events (client_id, model_name, project, reason, status,
                                  champion_model_id, metrics_before, training_rows, detail,
                                  finished_at)
VALUES (%(client_id)s, %(model_name)s, %(project)s, %(reason)s, %(status)s,
        %(champion_model_id)s, %(metrics_before)s, %(training_rows)s, %(detail)s,
        CASE WHEN %(status)s = 'running' THEN NULL ELSE now() END)
RETURNING id;

-- name: finish_event
UPDATE ml_retraining_events
   SET status = %(status)s, challenger_model_id = %(challenger_model_id)s,
       metrics_before = coalesce(%(metrics_before)s, metrics_before),
       metrics_after = %(metrics_after)s, duration_seconds = %(duration_seconds)s,
       detail = %(detail)s, error = %(error)s, finished_at = now()
 WHERE client_id = %(client_id)s AND id = %(id)s;

-- name: insert_baseline
INSERT INTO ml_model_baselines (client_id, model_id, model_name, project, training_rows,
                                feature_names, feature_mean, feature_stddev, target_mean,
                                target_stddev)
VALUES (%(client_id)s, %(model_id)s, %(model_name)s, %(project)s, %(training_rows)s,
        %(feature_names)s, %(feature_mean)s, %(feature_stddev)s, %(target_mean)s,
        %(target_stddev)s)
ON CONFLICT (client_id, model_id) DO NOTHING;

-- name: retraining_events
-- chosen: for a spec with candidates, the one chosen on the validation slice for the
-- run's model (ml_model_candidates), with its key metric there and how many were tried.
SELECT e.client_id, c.name AS client, e.model_name, e.project, e.reason, e.status,
       e.champion_model_id, e.challenger_model_id, e.training_rows, e.duration_seconds,
       e.detail, e.error, e.started_at, e.finished_at, s.chosen
  FROM ml_retraining_events e JOIN clients c USING (client_id)
  LEFT JOIN LATERAL (
      SELECT jsonb_build_object(
                 'label', max(m.label) FILTER (WHERE m.chosen),
                 'key_metric', max(m.key_metric),
                 'validation_value', max(m.validation_value) FILTER (WHERE m.chosen),
                 'validation_rows', max(m.validation_rows),
                 'candidates', count(*)) AS chosen
        FROM ml_model_candidates m
       WHERE m.client_id = e.client_id AND m.model_id = e.challenger_model_id
      HAVING count(*) > 0) s ON true
 WHERE %(model_name)s::text IS NULL OR e.model_name = %(model_name)s
 ORDER BY e.started_at DESC, e.id DESC
 LIMIT %(limit)s;

-- name: demo_issue_story_points
SELECT issue_key, title, predicted_story_points, model_id, model_trained_at
  FROM analytics.issue_story_points ORDER BY issue_id LIMIT 3;

-- name: demo_epic_forecasts
SELECT issue_key, title, predicted_lead_time_days, expected_completion, model_id,
       model_trained_at
  FROM analytics.epic_forecasts ORDER BY issue_id LIMIT 3;

-- name: demo_pull_request_rework_risk
SELECT repository, number, rework_probability, rework_risk, model_id, model_trained_at
  FROM analytics.pull_request_rework_risk ORDER BY rework_probability DESC NULLS LAST LIMIT 3;
