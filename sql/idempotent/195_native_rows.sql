-- The BI surface's ROW form in C: a model whose spec has preprocess (the built-in complexity
-- model: one_hot, multi_hot, words; or text encodings, tfidf and hashing) is scored by the
-- native scorer when its compiled form has a row section (native.py), one pgml.predict
-- call per row, instead of one Python call with every row as JSON (190_row_form.sql).

-- Does pgml.predict(model_id, row) of this model run in C (the scorer is installed and on,
-- and the model's blob carries a row section: header flags, a u32 at byte 36, bit 3)?
CREATE OR REPLACE FUNCTION pgml_flow.native_rows(model_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                    WHERE p.oid = to_regprocedure('pgml.predict(bigint, anyelement)')
                      AND l.lanname = 'c')
       AND EXISTS (SELECT 1 FROM pgml.files f
                    WHERE f.model_id = native_rows.model_id AND f.path = 'native'
                      -- the header byte alone: a slice decompresses only the blob's head,
                      -- get_byte(f.data, 36) the whole blob (0.1 ms or more per BI read)
                      AND f.part = 0
                      AND (get_byte(substring(f.data FROM 37 FOR 1), 0) & 8) <> 0)
$$;
COMMENT ON FUNCTION pgml_flow.native_rows(bigint) IS
    'Whether pgml.predict(model_id, row) of a model is answered by the C scorer (its blob has a row section)';

-- The aggregate analytics.predictions reads a ROW-form model's predictions with, over the
-- feature view's rows f ordered by entity_id: per row in C (python => false and the model
-- has a native row section), else all rows in one Python call, which gives NULL for a row
-- the model cannot score. The C call raises for such a row (the Python path's error):
-- analytics.predictions then reads again with python => true.
CREATE OR REPLACE FUNCTION pgml_flow.row_scores_sql(model_id bigint, python boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT python AND pgml_flow.native_rows(model_id)
                THEN 'array_agg(pgml_flow.finite_or_null(pgml.predict($2, f)) '
                     'ORDER BY f.entity_id)'
                ELSE 'pgml_flow.predict_rows($2, array_agg(to_json(f) ORDER BY f.entity_id))'
           END
$$;
COMMENT ON FUNCTION pgml_flow.row_scores_sql(bigint, boolean) IS
    'The SQL aggregate analytics.predictions scores a ROW-form model''s rows with (C per row, or Python in one call)';
