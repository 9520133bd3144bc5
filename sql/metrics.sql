-- Queries of the Prometheus exporter (pgml_flow.metrics), run at every scrape, loaded by
-- name. Each is a small aggregate over an indexed range or a catalog; docs/operations.md
-- ("Monitoring") lists the metrics each one feeds.

-- name: clients
SELECT count(*) FILTER (WHERE active) AS active, count(*) AS total FROM clients;

-- name: prediction_window
-- Predictions logged in the window (analytics.predictions logs a sample of each read, once
-- per unchanged prediction, under the client's hourly cap: 250_prediction_log.sql), per
-- client and model: how many, anomalies by severity, and the per-row prediction time.
SELECT l.client_id, l.model_name, count(*) AS logged,
       count(*) FILTER (WHERE l.is_anomaly) AS anomalies,
       count(*) FILTER (WHERE l.severity = 'low') AS low,
       count(*) FILTER (WHERE l.severity = 'medium') AS medium,
       count(*) FILTER (WHERE l.severity = 'high') AS high,
       count(l.response_time_ms) AS timed,
       coalesce(sum(l.response_time_ms), 0) / 1000.0 AS seconds
  FROM ml_prediction_log l
 WHERE l.created_at > now() - %(window)s * interval '1 second'
 GROUP BY l.client_id, l.model_name;

-- name: prediction_latency_buckets
-- Cumulative counts of the window's logged predictions whose per-row prediction time is at
-- most each bound (seconds): the buckets of a Prometheus histogram.
SELECT l.client_id, l.model_name, b.le,
       count(*) FILTER (WHERE l.response_time_ms / 1000.0 <= b.le) AS n
  FROM ml_prediction_log l
 CROSS JOIN unnest(%(bounds)s::double precision[]) AS b(le)
 WHERE l.created_at > now() - %(window)s * interval '1 second'
   AND l.response_time_ms IS NOT NULL
 GROUP BY l.client_id, l.model_name, b.le;

-- name: prediction_capped
-- Predictions not logged in the window because the client's hourly cap was reached
-- (whole UTC hours that overlap the window).
SELECT u.client_id, sum(u.capped_rows) AS capped_rows, sum(u.busy_reads) AS busy_reads
  FROM ml_prediction_log_usage u
 WHERE u.period_start > date_trunc('hour', now() - %(window)s * interval '1 second', 'UTC')
       - interval '1 hour'
 GROUP BY u.client_id;

-- name: retraining_runs
-- Every retraining event by client, model and status (ml_retraining_events is never
-- pruned, so these counts only grow: Prometheus counters), with their durations.
SELECT e.client_id, e.model_name, e.status, count(*) AS runs,
       coalesce(sum(e.duration_seconds), 0) AS seconds,
       max(e.started_at) AS last_at
  FROM ml_retraining_events e
 WHERE e.status <> 'running'
 GROUP BY e.client_id, e.model_name, e.status;

-- name: retraining_duration_buckets
-- Cumulative counts of finished retraining runs by duration (seconds), per model.
SELECT e.model_name, b.le, count(*) FILTER (WHERE e.duration_seconds <= b.le) AS n
  FROM ml_retraining_events e
 CROSS JOIN unnest(%(bounds)s::double precision[]) AS b(le)
 WHERE e.status NOT IN ('running', 'deployed', 'rolled_back')
   AND e.duration_seconds IS NOT NULL
 GROUP BY e.model_name, b.le;

-- name: job_runs
-- Scheduled job runs (ml_job_runs) by job and status, and each job's last success.
SELECT r.job, r.status, count(*) AS runs,
       max(r.finished_at) AS last_finished
  FROM ml_job_runs r
 GROUP BY r.job, r.status;

-- name: scheduler_presence
-- How many scheduler services serve each job now: a running service holds a shared
-- advisory lock per job it schedules (scheduler.service), on this database, for as long as
-- it runs; pg_locks shows it (bigint keys: classid the high, objid the low 32 bits).
SELECT j.job, count(l.pid) AS replicas
  FROM unnest(%(jobs)s::text[]) AS j(job)
  LEFT JOIN pg_locks l
         ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
        AND ((l.classid::bigint << 32) | l.objid::bigint)
            = hashtextextended('pgml-flow scheduler serves ' || j.job, 0)
 GROUP BY j.job;

-- name: presence_lock
-- What a scheduler service holds while it runs, per job (see scheduler_presence).
SELECT pg_advisory_lock_shared(hashtextextended('pgml-flow scheduler serves ' || %(job)s, 0));

-- name: matviews
-- Materialized views to watch: whether each is populated.
SELECT v.view, c.relispopulated AS populated
  FROM unnest(%(views)s::text[]) AS v(view)
  LEFT JOIN pg_class c ON c.oid = to_regclass(v.view) AND c.relkind = 'm';

-- name: latest_drift_exists
SELECT to_regclass('pgml_flow.latest_drift') IS NOT NULL;

-- name: latest_drift
-- The latest drift check per client, model and feature (the drift work's view).
SELECT d.client_id, d.model_name, d.feature, d.psi, d.ks_pvalue, d.drifted, d.checked_at
  FROM pgml_flow.latest_drift d;
