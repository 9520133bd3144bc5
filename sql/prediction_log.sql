-- Queries of the prediction log's retention (pgml_flow.prediction_log), loaded by name.
-- The logic is in SQL (sql/idempotent/250_prediction_log.sql): these call it.

-- name: status
SELECT * FROM pgml_flow.prediction_log_status()
 WHERE %(client_ids)s::bigint[] IS NULL OR client_id = ANY(%(client_ids)s);

-- name: clients
SELECT client_id, name AS client FROM clients
 WHERE %(client_ids)s::bigint[] IS NULL OR client_id = ANY(%(client_ids)s)
 ORDER BY client_id;

-- name: prune
-- A procedure that commits after each batch: the connection must be in autocommit.
CALL pgml_flow.prune_prediction_log(client_id => %(client_id)s, batch_size => %(batch_size)s);
