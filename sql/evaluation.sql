-- Queries of `pgml-flow evaluate` (pgml_flow.evaluation), loaded by name. Templates with
-- {placeholders} are composed with psycopg.sql (identifiers quoted by psycopg). The views
-- live in the evaluation's own schema, pgml_flow_evaluation, of the (scratch) database the
-- evaluation imports into.

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS pgml_flow_evaluation;

-- name: create_split_view
-- The rows of a model's training view (its spec's training_view) that belong to an
-- imported dataset's splits (issues.dataset_split), with the row's place in the dataset's
-- file (its creation order: the split is by it) as source_row. Each column of the spec's
-- view is kept, so the spec's features and target are there by name.
-- (OR REPLACE: an evaluation run again in a kept database has client views on it.)
CREATE OR REPLACE VIEW pgml_flow_evaluation.{view} AS
SELECT t.*, (i.attributes ->> 'source_row')::integer AS source_row,
       i.dataset_split
  FROM {source} t
  JOIN public.issues i ON i.client_id = t.client_id AND i.issue_id = t.entity_id
 WHERE i.dataset_split = ANY ({splits});

-- name: test_predictions
-- A client's test rows, their targets and a model's predictions of them: the ROW form
-- (the model reads its input columns by name), all rows in one call (NULL: not scorable).
SELECT array_agg(h.y ORDER BY h.n),
       pgml_flow.predict_rows(%(model_id)s::bigint, array_agg(h.row ORDER BY h.n))
  FROM (SELECT {target}::double precision AS y, to_json(s) AS row, s.source_row AS n
          FROM pgml_flow_evaluation.{view} s
         WHERE s.client_id = %(client_id)s AND {target} IS NOT NULL) h;

-- name: split_targets
-- The targets of a client's rows of one split (the constant baselines learn from train).
SELECT {target}::double precision
  FROM pgml_flow_evaluation.{view}
 WHERE client_id = %(client_id)s AND dataset_split = %(split)s AND {target} IS NOT NULL
 ORDER BY source_row;

-- name: client_by_slug
SELECT client_id FROM clients WHERE slug = %(slug)s;

-- name: chosen_candidate
SELECT label FROM ml_model_candidates
 WHERE client_id = %(client_id)s AND model_id = %(model_id)s AND chosen;
