-- The pgml API functions with the signatures of PostgresML 2.10 (see docs/sql-api.md).
-- plpython3u wrappers call pgml_flow.server; the array overloads are inlinable SQL casts.

CREATE OR REPLACE FUNCTION pgml.train(
    project_name text, task text DEFAULT NULL, relation_name text DEFAULT NULL,
    y_column_name text DEFAULT NULL, algorithm pgml.algorithm DEFAULT 'linear', hyperparams jsonb DEFAULT '{}',
    search pgml.search DEFAULT NULL, search_params jsonb DEFAULT '{}', search_args jsonb DEFAULT '{}',
    test_size real DEFAULT 0.25, test_sampling pgml.sampling DEFAULT 'stratified',
    runtime pgml.runtime DEFAULT NULL, automatic_deploy boolean DEFAULT true,
    materialize_snapshot boolean DEFAULT false, preprocess jsonb DEFAULT '{}')
RETURNS TABLE(project text, task text, algorithm text, deployed boolean)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].train(plpy, GD, project_name, task, relation_name, y_column_name,
    algorithm, hyperparams, search, search_params, search_args, test_size, test_sampling,
    automatic_deploy, materialize_snapshot, preprocess)
$$;

CREATE OR REPLACE FUNCTION pgml.train_joint(
    project_name text, task text DEFAULT NULL, relation_name text DEFAULT NULL,
    y_column_name text[] DEFAULT NULL, algorithm pgml.algorithm DEFAULT 'linear', hyperparams jsonb DEFAULT '{}',
    search pgml.search DEFAULT NULL, search_params jsonb DEFAULT '{}', search_args jsonb DEFAULT '{}',
    test_size real DEFAULT 0.25, test_sampling pgml.sampling DEFAULT 'stratified',
    runtime pgml.runtime DEFAULT NULL, automatic_deploy boolean DEFAULT true,
    materialize_snapshot boolean DEFAULT false, preprocess jsonb DEFAULT '{}')
RETURNS TABLE(project text, task text, algorithm text, deployed boolean)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].train(plpy, GD, project_name, task, relation_name, y_column_name,
    algorithm, hyperparams, search, search_params, search_args, test_size, test_sampling,
    automatic_deploy, materialize_snapshot, preprocess)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict(project_name text, features real[])
RETURNS real
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict(plpy, GD, project_name, features)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict_proba(project_name text, features real[])
RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_proba(plpy, GD, project_name, features)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict_joint(project_name text, features real[])
RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_joint(plpy, GD, project_name, features)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict_row(project_name text, "row" json)
RETURNS real
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_row(plpy, GD, project_name, row)
$$;

-- The ROW(...) form: to_json keeps the column order (jsonb would sort the keys).
CREATE OR REPLACE FUNCTION pgml.predict(project_name text, "row" anyelement)
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml._py_predict_row(project_name, to_json("row")) $$;

CREATE OR REPLACE FUNCTION pgml._py_predict_batch(project_name text, features real[])
RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_batch(plpy, GD, project_name, features)
$$;

CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features double precision[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features smallint[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features integer[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features bigint[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features numeric[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features boolean[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(project_name, features::integer[]::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features double precision[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features smallint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features integer[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features bigint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features numeric[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features boolean[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(project_name, features::integer[]::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features real[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml._py_predict_joint(project_name, features) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features double precision[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features smallint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features integer[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features bigint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features numeric[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(project_name, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(project_name text, features boolean[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(project_name, features::integer[]::real[]) $$;

CREATE OR REPLACE FUNCTION pgml._py_predict(model_id bigint, features real[])
RETURNS real
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict(plpy, GD, model_id, features)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict_proba(model_id bigint, features real[])
RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_proba(plpy, GD, model_id, features)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict_joint(model_id bigint, features real[])
RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_joint(plpy, GD, model_id, features)
$$;

CREATE OR REPLACE FUNCTION pgml._py_predict_row(model_id bigint, "row" json)
RETURNS real
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_row(plpy, GD, model_id, row)
$$;

-- The ROW(...) form: to_json keeps the column order (jsonb would sort the keys).
CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, "row" anyelement)
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml._py_predict_row(model_id, to_json("row")) $$;

CREATE OR REPLACE FUNCTION pgml._py_predict_batch(model_id bigint, features real[])
RETURNS real[]
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].predict_batch(plpy, GD, model_id, features)
$$;

CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features double precision[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features smallint[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features integer[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features bigint[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features numeric[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features boolean[])
RETURNS real
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict(model_id, features::integer[]::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features double precision[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features smallint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features integer[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features bigint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features numeric[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features boolean[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_proba(model_id, features::integer[]::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features real[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml._py_predict_joint(model_id, features) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features double precision[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features smallint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features integer[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features bigint[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features numeric[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(model_id, features::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.predict_joint(model_id bigint, features boolean[])
RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pgml.predict_joint(model_id, features::integer[]::real[]) $$;

CREATE OR REPLACE FUNCTION pgml.deploy(model_id bigint)
RETURNS TABLE(project text, strategy text, algorithm text)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].deploy_model(plpy, GD, model_id)
$$;

CREATE OR REPLACE FUNCTION pgml.deploy(project_name text, strategy pgml.strategy, algorithm pgml.algorithm DEFAULT NULL)
RETURNS TABLE(project text, strategy text, algorithm text)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].deploy(plpy, GD, project_name, strategy, algorithm)
$$;

CREATE OR REPLACE FUNCTION pgml.snapshot(relation_name text, y_column_name text, test_size real DEFAULT 0.25,
    test_sampling pgml.sampling DEFAULT 'stratified', preprocess jsonb DEFAULT '{}')
RETURNS TABLE(relation text, y_column_name text)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].snapshot(plpy, GD, relation_name, y_column_name, test_size, test_sampling, preprocess)
$$;

CREATE OR REPLACE FUNCTION pgml.load_dataset(source text, subset text DEFAULT NULL, "limit" bigint DEFAULT NULL,
    kwargs jsonb DEFAULT '{}')
RETURNS TABLE(table_name text, rows bigint)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.datasets"].load_dataset(plpy, source, subset, limit, kwargs)
$$;

CREATE OR REPLACE FUNCTION pgml.version()
RETURNS text
LANGUAGE plpython3u IMMUTABLE PARALLEL SAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].version()
$$;

-- What PostgresML users asked for and never got (upstream issue 629): cleanup.

CREATE OR REPLACE FUNCTION pgml.delete_model(model_id bigint, force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpython3u STRICT AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].delete_model(plpy, GD, model_id, force)
$$;

CREATE OR REPLACE FUNCTION pgml.delete_project(project_name text)
RETURNS bigint
LANGUAGE plpython3u STRICT AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].delete_project(plpy, GD, project_name)
$$;

CREATE OR REPLACE FUNCTION pgml.cached_models()
RETURNS TABLE(model_id bigint, project text, algorithm text, loaded_at timestamptz, hits bigint)
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
import datetime
return [(m, p, a, datetime.datetime.fromtimestamp(t, datetime.timezone.utc), h)
        for m, p, a, t, h in GD["pgml_flow.api"].cached_models(GD)]
$$;
