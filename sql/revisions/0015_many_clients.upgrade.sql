-- Revision 0015_many_clients: what retraining hundreds of clients needs.
--
-- ml_model_candidates.rows_key: a digest of the rows a model choice was made on (the fit
-- and validation rows, in split order) and of the candidates as trained (algorithm,
-- hyperparams, preprocess, seed). A retrain whose selection would see the same key gets
-- the same scores (the candidates are trained with fixed seeds on the same rows), so it
-- reuses that choice instead of training every candidate again (pgml_flow/selection.py).
-- NULL for choices made before this revision: they are never reused.
ALTER TABLE ml_model_candidates ADD COLUMN rows_key text;
COMMENT ON COLUMN ml_model_candidates.rows_key IS
    'Digest of the fit and validation rows and of the candidates the choice was made with; a selection with the same key reuses it';
