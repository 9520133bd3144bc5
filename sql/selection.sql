-- Queries of model choice by validation (pgml_flow.selection), loaded by name. Templates
-- with {placeholders} are composed with psycopg.sql (identifiers quoted by psycopg).

-- name: drop_selection_view
DROP VIEW IF EXISTS pg_temp.{view};

-- name: create_selection_view
-- The rows before the held-out ones of a client's training view (which is in split
-- order): the candidates fit on the first of them and are judged on the last (pgml.train's
-- test_sampling 'last'). A temporary view: it lives as long as the training's session.
CREATE TEMPORARY VIEW {view} AS
SELECT * FROM pgml_flow_training.{source} LIMIT {rows};

-- name: selection_view_name
-- The temporary view's qualified name (pg_temp_N.name), as pgml.train reads a relation.
SELECT format('%%I.%%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(format('pg_temp.%%I', %(view)s::text));

-- name: insert_candidate
INSERT INTO ml_model_candidates (client_id, model_id, candidate, model_name, project, label,
                                 algorithm, hyperparams, preprocess, key_metric,
                                 validation_value, fit_rows, validation_rows, seconds,
                                 chosen, error)
VALUES (%(client_id)s, %(model_id)s, %(candidate)s, %(model_name)s, %(project)s, %(label)s,
        %(algorithm)s, %(hyperparams)s, %(preprocess)s, %(key_metric)s,
        %(validation_value)s, %(fit_rows)s, %(validation_rows)s, %(seconds)s, %(chosen)s,
        %(error)s);
