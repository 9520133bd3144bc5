-- Queries run by pgml-flow's Python code, loaded by name (pgml_flow.sqlfiles.query).

-- name: insert_client
INSERT INTO clients (client_id, name, slug) VALUES (%(client_id)s, %(name)s, %(slug)s);

-- name: delete_client
-- Every table is named (not left to ON DELETE CASCADE) so that this also works while
-- triggers are disabled by the seed's bulk-load path.
WITH prs AS (DELETE FROM pull_requests WHERE client_id = %(client_id)s),
     issues AS (DELETE FROM issues WHERE client_id = %(client_id)s),
     repos AS (DELETE FROM repositories WHERE client_id = %(client_id)s),
     types AS (DELETE FROM issuetypes WHERE client_id = %(client_id)s),
     logs AS (DELETE FROM ml_prediction_log WHERE client_id = %(client_id)s),
     events AS (DELETE FROM ml_retraining_events WHERE client_id = %(client_id)s)
DELETE FROM clients WHERE client_id = %(client_id)s;

-- name: training_summary
SELECT s.client_id, c.name AS client, s.model_type, s.training_records, s.latest_data,
       s.target_avg, s.target_stddev
  FROM mv_ml_training_summary s
  JOIN clients c USING (client_id)
 ORDER BY s.client_id, s.model_type;
