-- The BI surface: what an analyst's BI tool reads, without knowing pgml. Every view
-- shows the caller's client only: predictions come from analytics.predictions (which
-- resolves the client itself), and the joined tables are read with the caller's rights
-- (security_invoker), so their Row-Level Security applies too.

CREATE OR REPLACE VIEW analytics.issue_story_points WITH (security_invoker = true) AS
SELECT i.client_id,
       i.issue_id,
       i.issue_key,
       t.original_name AS issue_type,
       i.title,
       i.status,
       i.priority,
       i.components,
       i.story_points,
       p.prediction AS predicted_story_points,
       p.model_id,
       p.model_trained_at
  FROM analytics.predictions('complexity') p
  JOIN public.issues i ON i.client_id = p.client_id AND i.issue_id = p.entity_id
  JOIN public.issuetypes t ON t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id;
COMMENT ON VIEW analytics.issue_story_points IS
    'Predicted story points of every open standard issue (model: complexity)';

CREATE OR REPLACE VIEW analytics.epic_forecasts WITH (security_invoker = true) AS
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
       p.model_trained_at
  FROM analytics.predictions('trajectory') p
  JOIN public.issues e ON e.client_id = p.client_id AND e.issue_id = p.entity_id;
COMMENT ON VIEW analytics.epic_forecasts IS
    'Predicted lead time and expected completion of every open epic (model: trajectory)';

CREATE OR REPLACE VIEW analytics.pull_request_rework_risk WITH (security_invoker = true) AS
SELECT pr.client_id,
       pr.pull_request_id,
       r.name AS repository,
       pr.number,
       pr.title,
       pr.author_id,
       pr.created_at,
       p.probability AS rework_probability,
       p.prediction = 1 AS predicted_rework,
       CASE WHEN p.model_id IS NULL THEN NULL
            -- the model gives no number (a feature it cannot score); never NaN as 'high'
            WHEN p.probability IS NULL OR p.probability = 'NaN' THEN 'unknown'
            WHEN p.probability >= 0.6 THEN 'high'
            WHEN p.probability >= 0.3 THEN 'medium'
            ELSE 'low' END AS rework_risk,
       p.model_id,
       p.model_trained_at
  FROM analytics.predictions('rework') p
  JOIN public.pull_requests pr ON pr.client_id = p.client_id AND pr.pull_request_id = p.entity_id
  JOIN public.repositories r ON r.client_id = pr.client_id AND r.repository_id = pr.repository_id;
COMMENT ON VIEW analytics.pull_request_rework_risk IS
    'Rework probability and risk (low < 0.3 <= medium < 0.6 <= high; unknown: no score) of every open pull request';

-- Model quality per model for the caller's client: the deployed model, its key metric
-- against the spec's threshold, and the last retraining run.
CREATE OR REPLACE FUNCTION analytics.model_quality_rows()
RETURNS TABLE(client_id bigint, model_name text, project text, task text, model_id bigint,
              algorithm text, key_metric text, key_metric_value double precision,
              performance_threshold real, meets_threshold boolean, metrics jsonb,
              training_rows bigint, trained_at timestamptz, last_run_status text,
              last_run_at timestamptz, last_run_detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.cid, r.model_name, pgml_flow.project_name(r.model_name, c.cid), r.task,
           d.model_id, m.algorithm, r.key_metric, (m.metrics ->> r.key_metric)::double precision,
           r.performance_threshold,
           (m.metrics ->> r.key_metric)::double precision >= r.performance_threshold,
           m.metrics - 'search_results', b.training_rows, b.trained_at,
           e.status, coalesce(e.finished_at, e.started_at), coalesce(e.detail, e.error)
      FROM (SELECT pgml_flow.current_client_id() AS cid) c
      CROSS JOIN public.ml_model_registry r
      LEFT JOIN pgml.projects p ON p.name = pgml_flow.project_name(r.model_name, c.cid)
      LEFT JOIN LATERAL (SELECT x.model_id FROM pgml.deployments x
                          WHERE x.project_id = p.id ORDER BY x.id DESC LIMIT 1) d ON true
      LEFT JOIN pgml.models m ON m.id = d.model_id
      LEFT JOIN public.ml_model_baselines b ON b.client_id = c.cid AND b.model_id = d.model_id
      LEFT JOIN LATERAL (SELECT * FROM public.ml_retraining_events v
                          WHERE v.client_id = c.cid AND v.model_name = r.model_name
                          ORDER BY v.started_at DESC, v.id DESC LIMIT 1) e ON true
     WHERE c.cid IS NOT NULL
$$;

CREATE OR REPLACE VIEW analytics.model_quality WITH (security_invoker = true) AS
SELECT * FROM analytics.model_quality_rows();
COMMENT ON VIEW analytics.model_quality IS
    'Per model: the deployed model, its key metric against the spec''s threshold, the last run';

-- The caller's rows of the training summary (a materialized view cannot have RLS, so
-- this view filters, as a security barrier, and tenants cannot read the MV itself).
CREATE OR REPLACE VIEW analytics.training_summary WITH (security_barrier = true) AS
SELECT s.client_id, s.model_type, s.training_records, s.latest_data, s.target_avg,
       s.target_stddev
  FROM public.mv_ml_training_summary s
 WHERE s.client_id = (SELECT pgml_flow.current_client_id());

CREATE OR REPLACE VIEW analytics.prediction_log WITH (security_invoker = true) AS
SELECT client_id, id, model_name, model_id, entity_id, features_hash, prediction,
       response_time_ms, anomaly_score, is_anomaly, severity, created_at
  FROM public.ml_prediction_log
 WHERE active;

CREATE OR REPLACE VIEW analytics.retraining_events WITH (security_invoker = true) AS
SELECT client_id, id, model_name, project, reason, status, champion_model_id,
       challenger_model_id, metrics_before, metrics_after, training_rows, duration_seconds,
       detail, error, started_at, finished_at
  FROM public.ml_retraining_events;
