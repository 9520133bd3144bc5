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

-- The prediction overloads, for a project name and for a model id alike:
--   pgml._py_predict / _py_predict_proba / _py_predict_joint / _py_predict_batch (key, real[])
--       the Python path (plpython3u); pgml.predict, predict_proba and predict_batch on real[]
--       are defined in 030_serving.sql (native C scorer or these);
--   pgml.predict_joint(key, real[]) calls the Python path;
--   pgml.predict / predict_proba / predict_joint(key, <other array type>) cast to real[]
--       (inlined by the planner); numeric[] is accepted (PostgresML failed on it);
--   pgml.predict(key, "row" anyelement): the ROW(...) form, passed on as to_json (which keeps
--       the column order) to pgml._py_predict_row, which applies the snapshot's preprocessing
--       (030_serving.sql replaces it by the C scorer's row form when the server has it).
DO $do$
DECLARE
    key record;
    fn record;
    arr record;
    prologue constant text :=
        E'if "pgml_flow.api" not in GD:\n    plpy.execute("SELECT pgml._bootstrap()")\n';
BEGIN
    FOR key IN SELECT * FROM (VALUES ('project_name', 'text'), ('model_id', 'bigint')) AS k(name, type)
    LOOP
        FOR fn IN SELECT * FROM (VALUES ('predict', 'real'), ('predict_proba', 'real[]'),
                                        ('predict_joint', 'real[]'), ('predict_batch', 'real[]'))
                                AS f(name, returns)
        LOOP
            EXECUTE format(
                'CREATE OR REPLACE FUNCTION pgml.%I(%I %s, features real[]) RETURNS %s '
                'LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS %L',
                '_py_' || fn.name, key.name, key.type, fn.returns,
                prologue || format('return GD["pgml_flow.api"].%s(plpy, GD, %s, features)',
                                   fn.name, key.name));
        END LOOP;

        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml.predict_joint(%I %s, features real[]) RETURNS real[] '
            'LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS %L',
            key.name, key.type, format('SELECT pgml._py_predict_joint(%I, features)', key.name));

        FOR fn IN SELECT * FROM (VALUES ('predict', 'real'), ('predict_proba', 'real[]'),
                                        ('predict_joint', 'real[]')) AS f(name, returns)
        LOOP
            FOR arr IN SELECT * FROM (VALUES ('double precision[]', 'features::real[]'),
                                             ('smallint[]', 'features::real[]'),
                                             ('integer[]', 'features::real[]'),
                                             ('bigint[]', 'features::real[]'),
                                             ('numeric[]', 'features::real[]'),
                                             ('boolean[]', 'features::integer[]::real[]'))
                                     AS a(type, cast_expr)
            LOOP
                EXECUTE format(
                    'CREATE OR REPLACE FUNCTION pgml.%I(%I %s, features %s) RETURNS %s '
                    'LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS %L',
                    fn.name, key.name, key.type, arr.type, fn.returns,
                    format('SELECT pgml.%I(%I, %s)', fn.name, key.name, arr.cast_expr));
            END LOOP;
        END LOOP;

        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml._py_predict_row(%I %s, "row" json) RETURNS real '
            'LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS %L',
            key.name, key.type,
            prologue || format('return GD["pgml_flow.api"].predict_row(plpy, GD, %s, row)',
                               key.name));
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml.predict(%I %s, "row" anyelement) RETURNS real '
            'LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS %L',
            key.name, key.type, format('SELECT pgml._py_predict_row(%I, to_json("row"))', key.name));
    END LOOP;
END
$do$;

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
