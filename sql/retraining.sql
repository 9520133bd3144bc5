-- Queries of scheduled retraining (pgml_models.retraining, pgml_flow.retraining), loaded
-- by name. Templates with {placeholders} are composed with psycopg.sql.

-- name: client_rows
SELECT count(*) FROM {source} WHERE client_id = %(client_id)s;

-- name: client_newest
SELECT max({column})::timestamptz FROM {source} WHERE client_id = %(client_id)s;

-- name: summary_newest
SELECT latest_data FROM mv_ml_training_summary
 WHERE client_id = %(client_id)s AND model_type = %(model_name)s;

-- name: summary_newest_of_clients
-- The same for several clients, on the Citus coordinator before their retrains are routed
-- to the workers (pgml_models.retraining.summary_newest).
SELECT client_id, model_type, latest_data FROM mv_ml_training_summary
 WHERE client_id = ANY(%(client_ids)s);

-- name: has_summary
-- Whether this node has the training summary: on Citus it is on the coordinator only, and
-- a client is retrained on the worker holding its rows (pgml_flow.citus_tenants).
SELECT to_regclass('public.mv_ml_training_summary') IS NOT NULL;

-- name: baseline
SELECT training_rows, trained_at FROM ml_model_baselines
 WHERE client_id = %(client_id)s AND model_id = %(model_id)s;

-- name: drift
-- Share of the deployed model's logged predictions flagged as anomalies (inputs or
-- outputs far from the training distribution) since it was deployed.
SELECT count(*) AS logged, count(*) FILTER (WHERE is_anomaly) AS anomalies
  FROM ml_prediction_log
 WHERE client_id = %(client_id)s AND model_id = %(model_id)s AND active;

-- name: last_kept_attempt
-- Training rows of the newest run that challenged the deployed model and kept it.
SELECT training_rows FROM ml_retraining_events
 WHERE client_id = %(client_id)s AND model_name = %(model_name)s
   AND status = 'kept_champion' AND champion_model_id = %(model_id)s
 ORDER BY started_at DESC, id DESC LIMIT 1;

-- name: last_event
SELECT status, reason, detail, error, started_at
  FROM ml_retraining_events
 WHERE client_id = %(client_id)s AND model_name = %(model_name)s
 ORDER BY started_at DESC, id DESC LIMIT 1;

-- name: done_in_job_run
SELECT 1 FROM ml_retraining_events
 WHERE client_id = %(client_id)s AND model_name = %(model_name)s AND job_run_id = %(job_run_id)s
 LIMIT 1;

-- name: insert_retrain_event
INSERT INTO ml_retraining_events (client_id, model_name, project, reason, status,
                                  champion_model_id, challenger_model_id, metrics_before,
                                  metrics_after, training_rows, duration_seconds, detail,
                                  error, job_run_id, finished_at)
VALUES (%(client_id)s, %(model_name)s, %(project)s, %(reason)s, %(status)s,
        %(champion_model_id)s, %(challenger_model_id)s, %(metrics_before)s,
        %(metrics_after)s, %(training_rows)s, %(duration_seconds)s, %(detail)s,
        %(error)s, %(job_run_id)s, clock_timestamp())
RETURNING id, started_at, finished_at;

-- name: events
SELECT e.id, e.client_id, c.name AS client, e.model_name, e.project, e.reason, e.status,
       e.champion_model_id, e.challenger_model_id, e.metrics_before, e.metrics_after,
       e.training_rows, e.duration_seconds, e.detail, e.error, e.job_run_id,
       e.started_at, e.finished_at
  FROM ml_retraining_events e JOIN clients c USING (client_id)
 WHERE (%(model_name)s::text IS NULL OR e.model_name = %(model_name)s)
   AND (%(client_id)s::bigint IS NULL OR e.client_id = %(client_id)s)
   AND (%(status)s::text IS NULL OR e.status = %(status)s)
   AND (%(since)s::timestamptz IS NULL OR e.started_at >= %(since)s)
 ORDER BY e.started_at DESC, e.id DESC
 LIMIT %(limit)s;

-- name: stale_challengers
-- Challengers of a project that were never deployed (no pgml.deployments row: a rollback
-- can never need them), except the newest %(keep)s. Only pgml-flow's own pgml API has
-- pgml.delete_model; under the real pgml extension nothing is pruned.
SELECT m.id FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id
 WHERE p.name = %(project)s
   AND to_regprocedure('pgml.delete_model(bigint, boolean)') IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pgml.deployments d WHERE d.model_id = m.id)
 ORDER BY m.created_at DESC, m.id DESC
OFFSET %(keep)s;

-- name: delete_challenger
SELECT pgml.delete_model(%(model_id)s);

-- name: delete_baseline
DELETE FROM ml_model_baselines WHERE client_id = %(client_id)s AND model_id = %(model_id)s;

-- name: native_file
-- Whether a model has a compiled form for the C scorer, and whether that form serves the
-- ROW form too (a row section: the blob header's flags, a u32 at byte 36, bit 3).
SELECT to_regclass('pgml.files') IS NOT NULL AND EXISTS (
         SELECT 1 FROM pgml.files WHERE model_id = %(model_id)s AND path = 'native'),
       to_regclass('pgml.files') IS NOT NULL AND EXISTS (
         SELECT 1 FROM pgml.files WHERE model_id = %(model_id)s AND path = 'native'
            AND part = 0 AND (get_byte(data, 36) & 8) <> 0);
