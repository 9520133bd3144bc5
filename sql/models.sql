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
       updated_at = now()
 WHERE (r.task, r.training_view, r.feature_view, r.target, r.features, r.key_metric,
        r.performance_threshold, r.spec)
       IS DISTINCT FROM
       (excluded.task, excluded.training_view, excluded.feature_view, excluded.target,
        excluded.features, excluded.key_metric, excluded.performance_threshold, excluded.spec);

-- name: drop_training_view
DROP VIEW IF EXISTS pgml_flow_training.{view};

-- name: create_training_view
-- Ordered by a hash of each row: pgml.train's test_sampling 'last' then holds out the same
-- rows for the first model and every later challenger, so a retrain can score champion and
-- challenger on rows neither was trained on (see pgml_flow/retraining.py).
CREATE VIEW pgml_flow_training.{view} AS
SELECT {features}, {target} FROM {source} AS s WHERE client_id = {client_id}
 ORDER BY md5(s::text);

-- name: count_rows
SELECT count(*) FROM pgml_flow_training.{view};

-- name: feature_stats
SELECT ARRAY[{means}]::double precision[] AS feature_mean,
       ARRAY[{stddevs}]::double precision[] AS feature_stddev,
       avg({target}::double precision) AS target_mean,
       stddev_pop({target}::double precision) AS target_stddev
  FROM pgml_flow_training.{view};

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
SELECT e.client_id, c.name AS client, e.model_name, e.project, e.reason, e.status,
       e.champion_model_id, e.challenger_model_id, e.training_rows, e.duration_seconds,
       e.detail, e.error, e.started_at, e.finished_at
  FROM ml_retraining_events e JOIN clients c USING (client_id)
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
