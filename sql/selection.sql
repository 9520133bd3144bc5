-- Queries of model choice by validation (pgml_flow.selection), loaded by name. Templates
-- with {placeholders} are composed with psycopg.sql (identifiers quoted by psycopg).

-- name: drop_selection_view
DROP VIEW IF EXISTS pg_temp.{view};

-- name: create_selection_view
-- The rows before the held-out ones of a client's training rows (read once into a
-- temporary table in split order, numbered: pgml_flow.holdout.materialize), with the
-- training view's columns, in that order: the candidates fit on the first of them and are
-- judged on the last (pgml.train's test_sampling 'last'). A temporary view: it lives as
-- long as the training's session.
CREATE TEMPORARY VIEW {view} AS
SELECT {columns} FROM pg_temp.{table} WHERE "_row" <= {rows} ORDER BY "_row";

-- name: selection_rows_digest
-- md5 of those rows in order (pgml_flow.selection.rows_key adds the candidates).
SELECT md5(string_agg(r::text, E'\n' ORDER BY r."_row"))
  FROM pg_temp.{table} AS r WHERE r."_row" <= {rows};

-- name: reusable_selection
-- The candidates of the latest choice made for this project with the same rows_key: the
-- same candidates trained on the same rows, so the same scores (none: choose again).
SELECT c.candidate, c.label, c.validation_value, c.error, c.chosen, c.model_id
  FROM ml_model_candidates c
 WHERE c.client_id = %(client_id)s AND c.project = %(project)s AND c.rows_key = %(key)s
   AND c.model_id = (SELECT max(m.model_id) FROM ml_model_candidates m
                      WHERE m.client_id = %(client_id)s AND m.project = %(project)s
                        AND m.rows_key = %(key)s)
 ORDER BY c.candidate;

-- name: selection_view_name
-- The temporary view's qualified name (pg_temp_N.name), as pgml.train reads a relation.
SELECT format('%%I.%%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(format('pg_temp.%%I', %(view)s::text));

-- name: insert_candidate
INSERT INTO ml_model_candidates (client_id, model_id, candidate, model_name, project, label,
                                 algorithm, hyperparams, preprocess, key_metric,
                                 validation_value, fit_rows, validation_rows, seconds,
                                 chosen, error, rows_key)
VALUES (%(client_id)s, %(model_id)s, %(candidate)s, %(model_name)s, %(project)s, %(label)s,
        %(algorithm)s, %(hyperparams)s, %(preprocess)s, %(key_metric)s,
        %(validation_value)s, %(fit_rows)s, %(validation_rows)s, %(seconds)s, %(chosen)s,
        %(error)s, %(rows_key)s);
