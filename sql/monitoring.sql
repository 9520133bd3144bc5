-- Queries of monitoring and drift (pgml_flow.monitoring), loaded by name. The functions
-- they call are in sql/idempotent/400_monitoring.sql.

-- name: store_drift_reference
SELECT pgml_flow.store_drift_reference(%(client_id)s, %(model_id)s);

-- name: check_drift
SELECT client_id, model_name, model_id, feature, kind, psi, ks_statistic, ks_pvalue, drifted,
       reference_rows, recent_rows, window_length, detail, checked_at
  FROM pgml_flow.check_drift(%(client_id)s, %(window)s::interval)
 ORDER BY client_id, model_name, kind DESC, feature;

-- name: latest_drift
SELECT d.client_id, c.name AS client, d.model_name, d.model_id, d.feature, d.kind, d.psi,
       d.ks_pvalue, d.drifted, d.recent_rows, d.detail, d.checked_at
  FROM pgml_flow.latest_drift d JOIN clients c ON c.client_id = d.client_id
 WHERE %(client_id)s::bigint IS NULL OR d.client_id = %(client_id)s
 ORDER BY d.client_id, d.model_name, d.kind DESC, d.feature;

-- name: deployed_model_drift
-- The drifted features of a client's deployed model at its latest drift check.
SELECT feature, psi, ks_pvalue, recent_rows
  FROM pgml_flow.latest_drift
 WHERE client_id = %(client_id)s AND model_name = %(model_name)s AND model_id = %(model_id)s
   AND drifted
 ORDER BY psi DESC, feature;

-- name: model_performance
SELECT * FROM monitoring.model_performance(%(since)s::interval)
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;

-- name: prediction_volume
SELECT * FROM monitoring.prediction_volume(%(since)s::interval)
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;

-- name: anomaly_summary
SELECT * FROM monitoring.anomaly_summary(%(since)s::interval)
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;

-- name: retraining_history
SELECT * FROM monitoring.retraining_history(%(since)s::interval)
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;

-- name: metric_history
SELECT * FROM monitoring.metric_history(%(since)s::interval)
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;

-- name: drift_history
SELECT * FROM monitoring.drift(%(since)s::interval)
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;

-- name: health
SELECT * FROM monitoring.health()
 WHERE %(client_id)s::bigint IS NULL OR client_id = %(client_id)s;
