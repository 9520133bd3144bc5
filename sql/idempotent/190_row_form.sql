-- The ROW form of the BI surface: a model whose spec has preprocess (the built-in
-- complexity model: encodings of text and text[] columns learned per client) reads the
-- columns of its feature view by name, as pgml.predict(model_id, row) does, instead of the
-- features array (analytics.predictions, 200_serving.sql).

-- Does the model's registered spec preprocess its columns (so its model reads rows)?
CREATE OR REPLACE FUNCTION pgml_flow.reads_rows(model_name text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT r.spec -> 'preprocess' <> '{}'::jsonb
                       FROM public.ml_model_registry r
                      WHERE r.model_name = reads_rows.model_name), false)
$$;
COMMENT ON FUNCTION pgml_flow.reads_rows(text) IS
    'Whether a registered model is served by the ROW form of pgml.predict (its spec has preprocess)';

-- pgml.predict(model_id, row) of many rows (each to_json(row)) in one call: one transform
-- and one prediction on the Python path (the learned encodings are not compiled for the C
-- scorer), element for element as pgml.predict gives it, NULL where the model gives no
-- number (a value it cannot score, a row without its columns, e.g. a model trained before
-- its feature view changed; a NaN or infinite prediction).
CREATE OR REPLACE FUNCTION pgml_flow.predict_rows(model_id bigint, "rows" json[])
RETURNS real[]
LANGUAGE plpython3u STABLE STRICT PARALLEL UNSAFE
AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_rows(plpy, GD, model_id, rows)
$$;
COMMENT ON FUNCTION pgml_flow.predict_rows(bigint, json[]) IS
    'pgml.predict(model_id, row) of each row (to_json), in one call; NULL where the model cannot score it';

-- pgml_flow.predict_rows, but each row's probability of the larger of a two-class
-- model's labels: what a spec whose key metric is roc_auc or log_loss compares a champion
-- and a challenger on (pgml_flow.holdout). A model with other than two classes is an error.
CREATE OR REPLACE FUNCTION pgml_flow.predict_positive_rows(model_id bigint, "rows" json[])
RETURNS real[]
LANGUAGE plpython3u STABLE STRICT PARALLEL UNSAFE
AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_rows(plpy, GD, model_id, rows, positive=True)
$$;
COMMENT ON FUNCTION pgml_flow.predict_positive_rows(bigint, json[]) IS
    'The probability of the positive (larger) label of a two-class model for each row (to_json), in one call; NULL where the model cannot score it';
