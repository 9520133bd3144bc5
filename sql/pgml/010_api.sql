-- The pgml API functions with the signatures of PostgresML 2.10 (see docs/sql-api.md).
-- plpython3u wrappers call pgml_flow.server; the array overloads are inlinable SQL casts.
-- train, train_joint, deploy, snapshot, load_dataset, delete_model and delete_project are
-- PL/pgSQL over plpython3u pgml._py_<name> (generated at the end of this file), so that their
-- errors reach the client without PL/Python's traceback.

CREATE OR REPLACE FUNCTION pgml._py_train(
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

CREATE OR REPLACE FUNCTION pgml._py_train_joint(
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
                'LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL UNSAFE AS %L',
                '_py_' || fn.name, key.name, key.type, fn.returns,
                prologue || format('return GD["pgml_flow.api"].%s(plpy, GD, %s, features)',
                                   fn.name, key.name));
        END LOOP;

        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml.predict_joint(%I %s, features real[]) RETURNS real[] '
            'LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE AS %L',
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
                    'LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE AS %L',
                    fn.name, key.name, key.type, arr.type, fn.returns,
                    format('SELECT pgml.%I(%I, %s)', fn.name, key.name, arr.cast_expr));
            END LOOP;
        END LOOP;

        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml._py_predict_row(%I %s, "row" json) RETURNS real '
            'LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL UNSAFE AS %L',
            key.name, key.type,
            prologue || format('return GD["pgml_flow.api"].predict_row(plpy, GD, %s, row)',
                               key.name));
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml.predict(%I %s, "row" anyelement) RETURNS real '
            'LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE AS %L',
            key.name, key.type, format('SELECT pgml._py_predict_row(%I, to_json("row"))', key.name));
    END LOOP;
END
$do$;

CREATE OR REPLACE FUNCTION pgml._py_deploy(model_id bigint)
RETURNS TABLE(project text, strategy text, algorithm text)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].deploy_model(plpy, GD, model_id)
$$;

CREATE OR REPLACE FUNCTION pgml._py_deploy(project_name text, strategy pgml.strategy, algorithm pgml.algorithm DEFAULT NULL)
RETURNS TABLE(project text, strategy text, algorithm text)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].deploy(plpy, GD, project_name, strategy, algorithm)
$$;

CREATE OR REPLACE FUNCTION pgml._py_snapshot(relation_name text, y_column_name text, test_size real DEFAULT 0.25,
    test_sampling pgml.sampling DEFAULT 'stratified', preprocess jsonb DEFAULT '{}')
RETURNS TABLE(relation text, y_column_name text)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].snapshot(plpy, GD, relation_name, y_column_name, test_size, test_sampling, preprocess)
$$;

CREATE OR REPLACE FUNCTION pgml._py_load_dataset(source text, subset text DEFAULT NULL, "limit" bigint DEFAULT NULL,
    kwargs jsonb DEFAULT '{}')
RETURNS TABLE(table_name text, rows bigint)
LANGUAGE plpython3u AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.datasets"].load_dataset(plpy, source, subset, limit, kwargs)
$$;

CREATE OR REPLACE FUNCTION pgml.version()
RETURNS text
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].version()
$$;

-- What PostgresML users asked for and never got (upstream issue 629): cleanup.

CREATE OR REPLACE FUNCTION pgml._py_delete_model(model_id bigint, force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpython3u STRICT AS $$
if "pgml_flow.api" not in GD:
    plpy.execute("SELECT pgml._bootstrap()")
return GD["pgml_flow.api"].delete_model(plpy, GD, model_id, force)
$$;

CREATE OR REPLACE FUNCTION pgml._py_delete_project(project_name text)
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

-- The functions users call over the plpython3u pgml._py_* above: PL/pgSQL that raises the
-- error of the Python code again with only its message (without PL/Python's "plpy.Error: "
-- prefix), DETAIL, HINT and SQLSTATE, so that psql and BI tools show no Python traceback
-- (pgml_flow/server/boundary.py writes it to the server log). A cancel or statement timeout
-- is not caught (WHEN OTHERS excludes it). Same arguments and defaults as pgml._py_<name>;
-- where an output column shares an argument's name (which PL/pgSQL refuses), the rows are of
-- a composite type with the same columns. The prediction functions stay plpython3u: an
-- exception block costs a subtransaction per call and rules out parallel plans.
CREATE OR REPLACE FUNCTION pgml._error_message(message text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
AS $$ SELECT regexp_replace(message, '^(plpy\.(Error|Fatal|SPIError)|spiexceptions\.\w+): ', '') $$;

-- The HINT of an error raised again: its own, or for an invalid value of one of the pgml
-- enums (task, algorithm, ... given as text) the valid values.
CREATE OR REPLACE FUNCTION pgml._error_hint(message text, hint text) RETURNS text
LANGUAGE sql STABLE PARALLEL UNSAFE
AS $$
SELECT coalesce(nullif(hint, ''), (
    SELECT 'valid values: ' || string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
      FROM pg_enum e
     WHERE e.enumtypid = to_regtype(substring(message FROM
                                              '^invalid input value for enum ([\w.]+):'))), '')
$$;

DO $do$
DECLARE
    f record;
    old regprocedure;
    call text;
    handler constant text := $h$
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_message = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_state = RETURNED_SQLSTATE;
    e_message := pgml._error_message(e_message);
    e_hint := pgml._error_hint(e_message, e_hint);
    IF e_detail <> '' AND e_hint <> '' THEN
        RAISE EXCEPTION USING MESSAGE = e_message, DETAIL = e_detail, HINT = e_hint,
                              ERRCODE = e_state;
    ELSIF e_detail <> '' THEN
        RAISE EXCEPTION USING MESSAGE = e_message, DETAIL = e_detail, ERRCODE = e_state;
    ELSIF e_hint <> '' THEN
        RAISE EXCEPTION USING MESSAGE = e_message, HINT = e_hint, ERRCODE = e_state;
    ELSE
        RAISE EXCEPTION USING MESSAGE = e_message, ERRCODE = e_state;
    END IF;
END
$h$;
BEGIN
    IF to_regtype('pgml.train_result') IS NULL THEN
        CREATE TYPE pgml.train_result AS (project text, task text, algorithm text, deployed boolean);
    END IF;
    IF to_regtype('pgml.deploy_result') IS NULL THEN
        CREATE TYPE pgml.deploy_result AS (project text, strategy text, algorithm text);
    END IF;
    IF to_regtype('pgml.snapshot_result') IS NULL THEN
        CREATE TYPE pgml.snapshot_result AS (relation text, y_column_name text);
    END IF;

    FOR f IN
        SELECT p.oid, substr(p.proname, 5) AS name, p.pronargs, p.proretset, p.proisstrict,
               pg_get_function_arguments(p.oid) AS args,
               oidvectortypes(p.proargtypes) AS types,
               CASE substr(p.proname, 5)
                   WHEN 'train' THEN 'SETOF pgml.train_result'
                   WHEN 'train_joint' THEN 'SETOF pgml.train_result'
                   WHEN 'deploy' THEN 'SETOF pgml.deploy_result'
                   WHEN 'snapshot' THEN 'SETOF pgml.snapshot_result'
                   ELSE pg_get_function_result(p.oid)
               END AS result
          FROM pg_proc p
         WHERE p.pronamespace = 'pgml'::regnamespace
           AND p.proname IN ('_py_train', '_py_train_joint', '_py_deploy', '_py_snapshot',
                             '_py_load_dataset', '_py_delete_model', '_py_delete_project')
    LOOP
        -- an older pgml-flow made these plpython3u (and returned TABLE(...)): replace it
        old := to_regprocedure(format('pgml.%I(%s)', f.name, f.types));
        IF old IS NOT NULL AND (SELECT l.lanname FROM pg_proc p JOIN pg_language l
                                    ON l.oid = p.prolang WHERE p.oid = old) <> 'plpgsql' THEN
            EXECUTE format('DROP FUNCTION %s', old);
        END IF;
        call := format('pgml.%I(%s)', '_py_' || f.name,
                       (SELECT string_agg('$' || i, ', ') FROM generate_series(1, f.pronargs) i));
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION pgml.%I(%s) RETURNS %s LANGUAGE plpgsql %s AS %L',
            f.name, f.args, f.result, CASE WHEN f.proisstrict THEN 'STRICT' ELSE '' END,
            E'DECLARE\n    e_message text; e_detail text; e_hint text; e_state text;\nBEGIN\n    '
            || CASE WHEN f.proretset THEN format('RETURN QUERY SELECT * FROM %s;', call)
                    ELSE format('RETURN %s;', call) END
            || handler);
    END LOOP;
END
$do$;
