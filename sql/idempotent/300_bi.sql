-- The BI surface: what an analyst's BI tool reads, without knowing pgml. Every view
-- shows the caller's client only: predictions come from analytics.predictions (which
-- resolves the client itself), and the joined tables are read with the caller's rights
-- (security_invoker), so their Row-Level Security applies too.
--
-- For analysts: numbers are double precision (never real), every column has a comment
-- with its unit (\d+ in psql, or pg_description), and one column holds one unit.
-- The views are created with pgml_flow.replace_view (005_upgrade.sql): a view whose
-- columns changed is dropped and created again, never with CASCADE. A comment stays with
-- its column across CREATE OR REPLACE and is set again here after a re-creation.

SELECT pgml_flow.replace_view('analytics.issue_story_points', $view$
WITH (security_invoker = true) AS
SELECT i.client_id,
       i.issue_id,
       i.issue_key,
       -- a lookup, not a LEFT JOIN: on Citus (PostgreSQL 15) an outer join next to the
       -- tenant policies' filter is refused ("outer joins and pseudoconstant quals")
       (SELECT t.original_name FROM public.issuetypes t
         WHERE t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id) AS issue_type,
       i.title,
       i.status,
       i.priority,
       i.components,
       i.story_points,
       p.prediction AS predicted_story_points,
       p.model_id,
       p.model_trained_at,
       p.serving_state,
       p.serving_reason
  FROM analytics.predictions('complexity', missing_ok => true) p
  JOIN public.issues i ON i.client_id = p.client_id AND i.issue_id = p.entity_id
$view$);
COMMENT ON VIEW analytics.issue_story_points IS
    'Predicted story points of every open standard issue (model: complexity)';
COMMENT ON COLUMN analytics.issue_story_points.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.issue_story_points.issue_id IS 'The issue (issues.issue_id)';
COMMENT ON COLUMN analytics.issue_story_points.issue_key IS
    'The issue''s key in its tracker (text, e.g. ACME-3814)';
COMMENT ON COLUMN analytics.issue_story_points.issue_type IS
    'The issue type''s name in the tracker (text)';
COMMENT ON COLUMN analytics.issue_story_points.title IS 'The issue''s title (text)';
COMMENT ON COLUMN analytics.issue_story_points.status IS 'The issue''s status in the tracker (text)';
COMMENT ON COLUMN analytics.issue_story_points.priority IS 'The issue''s priority (text)';
COMMENT ON COLUMN analytics.issue_story_points.components IS
    'The issue''s components (array of text)';
COMMENT ON COLUMN analytics.issue_story_points.story_points IS
    'The current estimate, in story points of the client''s scale; NULL: not estimated';
COMMENT ON COLUMN analytics.issue_story_points.predicted_story_points IS
    'Predicted size, in story points of the client''s scale (model complexity); NULL: no deployed model, or one that cannot score the issue';
COMMENT ON COLUMN analytics.issue_story_points.model_id IS
    'The model that predicted (pgml.models id; see analytics.model_quality); NULL: the client has no deployed complexity model';
COMMENT ON COLUMN analytics.issue_story_points.model_trained_at IS
    'When that model was trained (timestamp with time zone)';
COMMENT ON COLUMN analytics.issue_story_points.serving_state IS
    'enabled: the model''s prediction; shadow or disabled: switched off by the operator (kill switch, rollout; the prediction columns are NULL); no_model: no deployed complexity model (docs/operations.md)';
COMMENT ON COLUMN analytics.issue_story_points.serving_reason IS
    'Why the prediction is not the deployed model''s (text): the switch and the operator''s reason, the rollout, or the A/B test whose challenger predicted it; NULL: the deployed model predicted it';

SELECT pgml_flow.replace_view('analytics.epic_forecasts', $view$
WITH (security_invoker = true) AS
SELECT e.client_id,
       e.issue_id,
       e.issue_key,
       e.title,
       e.status,
       e.work_first_started_at AS started_at,
       p.prediction AS predicted_lead_time_days,
       coalesce(e.work_first_started_at, now()) + p.prediction * interval '1 day'
           AS expected_completion,
       p.model_id,
       p.model_trained_at,
       p.serving_state,
       p.serving_reason
  FROM analytics.predictions('trajectory', missing_ok => true) p
  JOIN public.issues e ON e.client_id = p.client_id AND e.issue_id = p.entity_id
$view$);
COMMENT ON VIEW analytics.epic_forecasts IS
    'Predicted lead time and expected completion of every open epic (model: trajectory)';
COMMENT ON COLUMN analytics.epic_forecasts.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.epic_forecasts.issue_id IS 'The epic (issues.issue_id)';
COMMENT ON COLUMN analytics.epic_forecasts.issue_key IS
    'The epic''s key in its tracker (text, e.g. ACME-3628)';
COMMENT ON COLUMN analytics.epic_forecasts.title IS 'The epic''s title (text)';
COMMENT ON COLUMN analytics.epic_forecasts.status IS 'The epic''s status in the tracker (text)';
COMMENT ON COLUMN analytics.epic_forecasts.started_at IS
    'When work on the epic first started (timestamp with time zone); NULL: not started';
COMMENT ON COLUMN analytics.epic_forecasts.predicted_lead_time_days IS
    'Predicted total lead time of the epic, from first start to completion, in days (model trajectory); NULL: no deployed model, or one that cannot score the epic';
COMMENT ON COLUMN analytics.epic_forecasts.expected_completion IS
    'started_at (now when not started) + predicted_lead_time_days (timestamp with time zone)';
COMMENT ON COLUMN analytics.epic_forecasts.model_id IS
    'The model that predicted (pgml.models id; see analytics.model_quality); NULL: the client has no deployed trajectory model';
COMMENT ON COLUMN analytics.epic_forecasts.model_trained_at IS
    'When that model was trained (timestamp with time zone)';
COMMENT ON COLUMN analytics.epic_forecasts.serving_state IS
    'enabled: the model''s prediction; shadow or disabled: switched off by the operator (kill switch, rollout; the prediction columns are NULL); no_model: no deployed trajectory model (docs/operations.md)';
COMMENT ON COLUMN analytics.epic_forecasts.serving_reason IS
    'Why the prediction is not the deployed model''s (text): the switch and the operator''s reason, the rollout, or the A/B test whose challenger predicted it; NULL: the deployed model predicted it';

-- Rework risk. rework_score is the model's probability, learnt with balanced class weights
-- (0.5 is its decision boundary); rework_probability is that score calibrated to the
-- client's rework rate (pgml_flow.calibration_odds, 200_serving.sql). The bands, on the
-- calibrated probability: high = rework more likely than not (>= 0.5); medium = the model
-- flags it (predicted_rework: for the balanced model, a probability above the client's
-- rework rate in training) but less likely than not; low = not flagged; unknown = the
-- model gives no number for it (never NaN as 'high'); NULL = no deployed model.
SELECT pgml_flow.replace_view('analytics.pull_request_rework_risk', $view$
WITH (security_invoker = true) AS
SELECT pr.client_id,
       pr.pull_request_id,
       r.name AS repository,
       pr.number,
       pr.title,
       pr.author_id,
       pr.created_at,
       p.probability AS rework_probability,
       p.score AS rework_score,
       p.prediction = 1 AS predicted_rework,
       CASE WHEN p.model_id IS NULL THEN NULL
            WHEN p.probability IS NULL OR p.probability = 'NaN' THEN 'unknown'
            WHEN p.probability >= 0.5 THEN 'high'
            WHEN p.prediction = 1 THEN 'medium'
            ELSE 'low' END AS rework_risk,
       p.model_id,
       p.model_trained_at,
       p.serving_state,
       p.serving_reason
  FROM analytics.predictions('rework', missing_ok => true) p
  JOIN public.pull_requests pr ON pr.client_id = p.client_id AND pr.pull_request_id = p.entity_id
  JOIN public.repositories r ON r.client_id = pr.client_id AND r.repository_id = pr.repository_id
$view$);
COMMENT ON VIEW analytics.pull_request_rework_risk IS
    'Rework probability and risk of every open pull request (model: rework); risk: high = probability >= 0.5, medium = flagged by the model but < 0.5, low = not flagged, unknown = no score';
COMMENT ON COLUMN analytics.pull_request_rework_risk.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.pull_request_rework_risk.pull_request_id IS
    'The pull request (pull_requests.pull_request_id)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.repository IS 'The repository''s name (text)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.number IS
    'The pull request''s number in its repository';
COMMENT ON COLUMN analytics.pull_request_rework_risk.title IS 'The pull request''s title (text)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.author_id IS
    'The author (the source''s user id)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.created_at IS
    'When the pull request was opened (timestamp with time zone)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.rework_probability IS
    'Probability 0..1 that the pull request will be reworked (more than 2 review cycles or more than 3 rework commits), calibrated: across pull requests it averages to the client''s rework rate; NULL: no deployed model, or no score';
COMMENT ON COLUMN analytics.pull_request_rework_risk.rework_score IS
    'The model''s own score 0..1, learnt with balanced classes: 0.5 is its decision boundary, not a 50% chance (rework_probability is this score calibrated)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.predicted_rework IS
    'The model''s decision (boolean): rework_score >= 0.5, i.e. a rework_probability above the client''s rework rate in training';
COMMENT ON COLUMN analytics.pull_request_rework_risk.rework_risk IS
    'high: rework_probability >= 0.5; medium: predicted_rework but rework_probability < 0.5; low: not predicted_rework; unknown: no score for this pull request; NULL: no deployed model';
COMMENT ON COLUMN analytics.pull_request_rework_risk.model_id IS
    'The model that predicted (pgml.models id; see analytics.model_quality); NULL: the client has no deployed rework model';
COMMENT ON COLUMN analytics.pull_request_rework_risk.model_trained_at IS
    'When that model was trained (timestamp with time zone)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.serving_state IS
    'enabled: the model''s prediction; shadow or disabled: switched off by the operator (kill switch, rollout; the prediction columns are NULL); no_model: no deployed rework model (docs/operations.md)';
COMMENT ON COLUMN analytics.pull_request_rework_risk.serving_reason IS
    'Why the prediction is not the deployed model''s (text): the switch and the operator''s reason, the rollout, or the A/B test whose challenger predicted it; NULL: the deployed model predicted it';

-- Model quality per model for the caller's client: the deployed model, its key metric
-- against the spec's threshold, and the last retraining run. (Its threshold was real:
-- the function and the view on it go, and come back, when its result is the old one.)
SELECT pgml_flow.drop_function_for_upgrade('analytics.model_quality_rows()',
    'TABLE(client_id bigint, model_name text, project text, task text, model_id bigint, '
    'algorithm text, key_metric text, key_metric_value double precision, '
    'performance_threshold double precision, meets_threshold boolean, metrics jsonb, '
    'training_rows bigint, trained_at timestamp with time zone, last_run_status text, '
    'last_run_at timestamp with time zone, last_run_detail text)');
CREATE OR REPLACE FUNCTION analytics.model_quality_rows()
RETURNS TABLE(client_id bigint, model_name text, project text, task text, model_id bigint,
              algorithm text, key_metric text, key_metric_value double precision,
              performance_threshold double precision, meets_threshold boolean, metrics jsonb,
              training_rows bigint, trained_at timestamptz, last_run_status text,
              last_run_at timestamptz, last_run_detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- the caller's client, resolved once here, where the caller's session is: on Citus a
    -- call inside the shard query would run on a worker, in Citus's own session
    cid constant bigint := pgml_flow.current_client_id();
BEGIN
    IF cid IS NULL THEN
        RETURN;
    END IF;
    -- The client's own rows of the per-client tables first, one query each (on Citus: one
    -- shard each), then joined with the shared tables: Citus refuses a lateral or outer
    -- join from a reference table (ml_model_registry) into a distributed one.
    RETURN QUERY
    WITH b AS MATERIALIZED (
             SELECT bb.model_id, bb.training_rows, bb.trained_at
               FROM public.ml_model_baselines bb
              WHERE bb.client_id = cid),
         e AS MATERIALIZED (
             SELECT DISTINCT ON (v.model_name) v.model_name, v.status, v.finished_at,
                    v.started_at, v.detail, v.error
               FROM public.ml_retraining_events v
              WHERE v.client_id = cid
              ORDER BY v.model_name, v.started_at DESC, v.id DESC)
    SELECT cid, r.model_name, pgml_flow.project_name(r.model_name, cid), r.task,
           d.model_id, m.algorithm, r.key_metric, (m.metrics ->> r.key_metric)::double precision,
           r.performance_threshold::numeric::double precision,
           CASE WHEN r.key_metric IN ('mean_absolute_error', 'mean_squared_error')
                THEN (m.metrics ->> r.key_metric)::double precision
                     <= r.performance_threshold::numeric::double precision
                ELSE (m.metrics ->> r.key_metric)::double precision
                     >= r.performance_threshold::numeric::double precision END,
           m.metrics - 'search_results', b.training_rows, b.trained_at,
           e.status, coalesce(e.finished_at, e.started_at), coalesce(e.detail, e.error)
      FROM public.ml_model_registry r
      LEFT JOIN pgml.projects p ON p.name = pgml_flow.project_name(r.model_name, cid)
      LEFT JOIN LATERAL (SELECT x.model_id FROM pgml.deployments x
                          WHERE x.project_id = p.id ORDER BY x.id DESC LIMIT 1) d ON true
      LEFT JOIN pgml.models m ON m.id = d.model_id
      LEFT JOIN b ON b.model_id = d.model_id
      LEFT JOIN e ON e.model_name = r.model_name;
END;
$$;

SELECT pgml_flow.replace_view('analytics.model_quality', $view$
WITH (security_invoker = true) AS
SELECT * FROM analytics.model_quality_rows()
$view$);
COMMENT ON VIEW analytics.model_quality IS
    'Per model: the deployed model, its key metric against the spec''s threshold, the last run';
COMMENT ON COLUMN analytics.model_quality.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.model_quality.model_name IS
    'The model (its spec''s name: trajectory, complexity, rework, or one of yours)';
COMMENT ON COLUMN analytics.model_quality.project IS
    'The client''s pgml project of the model: <model_name>__client_<client_id>';
COMMENT ON COLUMN analytics.model_quality.task IS 'regression or classification';
COMMENT ON COLUMN analytics.model_quality.model_id IS
    'The deployed model (pgml.models id); NULL: none (last_run_detail says why)';
COMMENT ON COLUMN analytics.model_quality.algorithm IS 'The deployed model''s algorithm (text)';
COMMENT ON COLUMN analytics.model_quality.key_metric IS
    'The metric the model is judged on (its spec''s key_metric): r2 or mean_absolute_error (regression), f1 (classification), ...';
COMMENT ON COLUMN analytics.model_quality.key_metric_value IS
    'The deployed model''s key metric on its held-out test rows (r2: unitless, at most 1, 1 is perfect, may be negative; mean_absolute_error: in the target''s unit, lower is better; f1: 0..1)';
COMMENT ON COLUMN analytics.model_quality.performance_threshold IS
    'The spec''s threshold on the key metric, in the unit of key_metric_value: its minimum, or its maximum for an error (mean_absolute_error, mean_squared_error)';
COMMENT ON COLUMN analytics.model_quality.meets_threshold IS
    'key_metric_value >= performance_threshold, or <= for an error such as mean_absolute_error (boolean)';
COMMENT ON COLUMN analytics.model_quality.metrics IS
    'Every test-split metric of the deployed model (jsonb; regression errors in the target''s unit, classification scores 0..1)';
COMMENT ON COLUMN analytics.model_quality.training_rows IS
    'Rows of the client''s training data when the model was trained (training and held-out test rows)';
COMMENT ON COLUMN analytics.model_quality.trained_at IS
    'When the deployed model was trained (timestamp with time zone)';
COMMENT ON COLUMN analytics.model_quality.last_run_status IS
    'Status of the last training run: running, promoted, kept_champion, skipped, failed, deployed or rolled_back';
COMMENT ON COLUMN analytics.model_quality.last_run_at IS
    'When the last training run finished (or started, while running; timestamp with time zone)';
COMMENT ON COLUMN analytics.model_quality.last_run_detail IS
    'What the last run did, or why it was skipped or failed (text)';

-- The caller's rows of the training summary (a materialized view cannot have RLS, so
-- this view filters, as a security barrier, and tenants cannot read the MV itself).
-- The summary keeps one target column for every model, in the target's own unit
-- (seconds of lead time, story points, share of reworked pull requests); here each unit
-- has its own columns, NULL on the rows of the other models.
SELECT pgml_flow.replace_view('analytics.training_summary', $view$
WITH (security_barrier = true) AS
SELECT s.client_id,
       s.model_type,
       s.training_records,
       s.latest_data,
       CASE WHEN s.model_type = 'trajectory' THEN s.target_avg / 86400 END
           AS mean_lead_time_days,
       CASE WHEN s.model_type = 'trajectory' THEN s.target_stddev / 86400 END
           AS stddev_lead_time_days,
       CASE WHEN s.model_type = 'complexity' THEN s.target_avg END AS mean_story_points,
       CASE WHEN s.model_type = 'complexity' THEN s.target_stddev END AS stddev_story_points,
       CASE WHEN s.model_type = 'rework' THEN s.target_avg END AS rework_rate
  FROM public.mv_ml_training_summary s
 WHERE s.client_id = (SELECT pgml_flow.current_client_id())
$view$);
COMMENT ON VIEW analytics.training_summary IS
    'Per model type: how much training data there is, how recent, and its target''s mean and spread (as of the last refresh of mv_ml_training_summary)';
COMMENT ON COLUMN analytics.training_summary.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.training_summary.model_type IS
    'The built-in model the rows train: trajectory, complexity or rework';
COMMENT ON COLUMN analytics.training_summary.training_records IS
    'Number of training rows: completed epics (trajectory), estimated standard issues (complexity), merged pull requests (rework)';
COMMENT ON COLUMN analytics.training_summary.latest_data IS
    'Newest training row (timestamp with time zone): last completion (trajectory), last update (complexity), last merge (rework)';
COMMENT ON COLUMN analytics.training_summary.mean_lead_time_days IS
    'trajectory rows: mean total lead time of the completed epics, in days; NULL on other rows';
COMMENT ON COLUMN analytics.training_summary.stddev_lead_time_days IS
    'trajectory rows: standard deviation of that lead time, in days; NULL on other rows';
COMMENT ON COLUMN analytics.training_summary.mean_story_points IS
    'complexity rows: mean estimate of the estimated standard issues, in story points; NULL on other rows';
COMMENT ON COLUMN analytics.training_summary.stddev_story_points IS
    'complexity rows: standard deviation of that estimate, in story points; NULL on other rows';
COMMENT ON COLUMN analytics.training_summary.rework_rate IS
    'rework rows: share 0..1 of the merged pull requests that were reworked; NULL on other rows';

SELECT pgml_flow.replace_view('analytics.prediction_log', $view$
WITH (security_invoker = true) AS
SELECT client_id, id, model_name, model_id, entity_id, features_hash, prediction,
       response_time_ms::numeric::double precision AS response_time_ms,
       anomaly_score::numeric::double precision AS anomaly_score,
       is_anomaly, severity, created_at
  FROM public.ml_prediction_log
 WHERE active
$view$);
COMMENT ON VIEW analytics.prediction_log IS
    'Logged predictions of the BI surface: each prediction once, with its latency and anomaly score';
COMMENT ON COLUMN analytics.prediction_log.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.prediction_log.id IS 'The log row';
COMMENT ON COLUMN analytics.prediction_log.model_name IS
    'The model: trajectory, complexity, rework, or one of yours';
COMMENT ON COLUMN analytics.prediction_log.model_id IS 'The model that predicted (pgml.models id)';
COMMENT ON COLUMN analytics.prediction_log.entity_id IS
    'The item predicted: issue_id (trajectory, complexity), pull_request_id (rework)';
COMMENT ON COLUMN analytics.prediction_log.features_hash IS
    'md5 of the features the model saw (text): equal hashes, equal inputs';
COMMENT ON COLUMN analytics.prediction_log.prediction IS
    'What was predicted, in the unit of model_name: days (trajectory), story points (complexity), calibrated probability 0..1 (rework; classification: the probability of class 1); NULL: no score';
COMMENT ON COLUMN analytics.prediction_log.response_time_ms IS
    'Prediction time of the read that logged it, per predicted row, in milliseconds';
COMMENT ON COLUMN analytics.prediction_log.anomaly_score IS
    'How far the input or the prediction is from the model''s training data, in standard deviations (largest absolute z-score)';
COMMENT ON COLUMN analytics.prediction_log.is_anomaly IS 'anomaly_score >= 3 (boolean)';
COMMENT ON COLUMN analytics.prediction_log.severity IS
    'none (score < 3), low (< 4), medium (< 6) or high';
COMMENT ON COLUMN analytics.prediction_log.created_at IS
    'When the prediction was first read (timestamp with time zone)';

SELECT pgml_flow.replace_view('analytics.retraining_events', $view$
WITH (security_invoker = true) AS
SELECT client_id, id, model_name, project, reason, status, champion_model_id,
       challenger_model_id, metrics_before, metrics_after, training_rows, duration_seconds,
       detail, error, started_at, finished_at
  FROM public.ml_retraining_events
$view$);
COMMENT ON VIEW analytics.retraining_events IS
    'Training runs of the client''s models: trainings, scheduled retrains, deploys and rollbacks';
COMMENT ON COLUMN analytics.retraining_events.client_id IS
    'The client (clients.client_id): always the caller''s own';
COMMENT ON COLUMN analytics.retraining_events.id IS 'The run';
COMMENT ON COLUMN analytics.retraining_events.model_name IS
    'The model: trajectory, complexity, rework, or one of yours';
COMMENT ON COLUMN analytics.retraining_events.project IS
    'The client''s pgml project of the model: <model_name>__client_<client_id>';
COMMENT ON COLUMN analytics.retraining_events.reason IS
    'Why it ran (text): manual, demo, or who asked for a retrain and what it found (scheduled ... UTC: f1 0.46 below performance_threshold 0.7)';
COMMENT ON COLUMN analytics.retraining_events.status IS
    'running, promoted, kept_champion, skipped, failed, deployed or rolled_back';
COMMENT ON COLUMN analytics.retraining_events.champion_model_id IS
    'The model deployed before the run (pgml.models id)';
COMMENT ON COLUMN analytics.retraining_events.challenger_model_id IS
    'The model the run trained (pgml.models id)';
COMMENT ON COLUMN analytics.retraining_events.metrics_before IS
    'The champion''s test metrics (jsonb; as in analytics.model_quality.metrics)';
COMMENT ON COLUMN analytics.retraining_events.metrics_after IS
    'The challenger''s test metrics (jsonb; as in analytics.model_quality.metrics)';
COMMENT ON COLUMN analytics.retraining_events.training_rows IS
    'Rows of the client''s training data at the run (training and held-out test rows)';
COMMENT ON COLUMN analytics.retraining_events.duration_seconds IS 'How long the run took, in seconds';
COMMENT ON COLUMN analytics.retraining_events.detail IS 'What the run did, or why it was skipped (text)';
COMMENT ON COLUMN analytics.retraining_events.error IS 'Why the run failed (text)';
COMMENT ON COLUMN analytics.retraining_events.started_at IS
    'When the run started (timestamp with time zone)';
COMMENT ON COLUMN analytics.retraining_events.finished_at IS
    'When the run finished (timestamp with time zone); NULL while running';
