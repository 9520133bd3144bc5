-- PostgresML functions beyond train/predict/deploy (docs/sql-api.md).
--
-- pgml.decompose(project_name, vector): the vector projected onto every component of the
-- project's deployed decomposition model (PCA), one real per component.
CREATE OR REPLACE FUNCTION pgml.decompose(project_name text, vector real[]) RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL UNSAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].decompose(plpy, GD, project_name, vector)
$$;
