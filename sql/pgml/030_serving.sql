-- The serving entry points (real[] forms) of pgml.predict, predict_proba and predict_batch,
-- and the ROW form of pgml.predict: the native C scorer (extension pgml_native, built from
-- ext/pgml_native) when the server has it, else the Python path. With the scorer,
-- pgml.predict IS the C function: no wrapper on the hot path. The C code itself falls back
-- to pgml._py_* for models without a compiled form (the ROW form: without a row section,
-- to pgml._py_predict_row with to_json of the record). The other array types (010_api.sql)
-- call these; without the scorer the ROW form stays the SQL wrapper of 010_api.sql.
-- `ALTER DATABASE ... SET pgml.native_scoring = off` (then `pgml-flow db upgrade`) keeps
-- everything on the Python path even where the scorer is installed: a switch for operators
-- who suspect the scorer, and how the tests exercise a server without it.
-- Every entry point is PARALLEL UNSAFE, as is every plpython3u function of ours: the Python
-- path (and the C scorer's fallback to it) runs plpy.execute, which opens a subtransaction,
-- which PostgreSQL refuses in a parallel query; PL/Python then leaves its interpreter in a
-- state that crashed the backend at its next PL/Python call (tests/test_pgml_api.py).
DO $do$
DECLARE
    native_on boolean := coalesce(current_setting('pgml.native_scoring', true), 'on') <> 'off';
BEGIN
    IF native_on AND EXISTS (SELECT 1 FROM pg_available_extensions
                              WHERE name = 'pgml_native') THEN
        CREATE EXTENSION IF NOT EXISTS pgml_native;
    END IF;

    IF native_on AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgml_native') THEN
        -- the extension's own entry points, as installed by an older pgml_native--0.1.sql
        ALTER FUNCTION pgml._native_predict(text, real[]) PARALLEL UNSAFE;
        ALTER FUNCTION pgml._native_predict(bigint, real[]) PARALLEL UNSAFE;
        ALTER FUNCTION pgml._native_predict_proba(text, real[]) PARALLEL UNSAFE;
        ALTER FUNCTION pgml._native_predict_proba(bigint, real[]) PARALLEL UNSAFE;
        ALTER FUNCTION pgml._native_predict_batch(bigint, real[]) PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features real[])
        RETURNS real AS '$libdir/pgml_native', 'pgml_native_predict_project'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features real[])
        RETURNS real AS '$libdir/pgml_native', 'pgml_native_predict_model'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features real[])
        RETURNS real[] AS '$libdir/pgml_native', 'pgml_native_predict_proba_project'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features real[])
        RETURNS real[] AS '$libdir/pgml_native', 'pgml_native_predict_proba_model'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict_batch(model_id bigint, features real[])
        RETURNS real[] AS '$libdir/pgml_native', 'pgml_native_predict_batch_model'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict_batch(project_name text, features real[])
        RETURNS SETOF real LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT unnest(pgml.predict_batch(pgml._native_deployed_model_id(project_name),
                                               features)) $$;
        CREATE OR REPLACE FUNCTION pgml.predict(project_name text, "row" anyelement)
        RETURNS real AS '$libdir/pgml_native', 'pgml_native_predict_row_project'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
        CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, "row" anyelement)
        RETURNS real AS '$libdir/pgml_native', 'pgml_native_predict_row_model'
        LANGUAGE C IMMUTABLE STRICT PARALLEL UNSAFE;
    ELSE
        CREATE OR REPLACE FUNCTION pgml.predict(project_name text, features real[])
        RETURNS real LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT pgml._py_predict(project_name, features) $$;
        CREATE OR REPLACE FUNCTION pgml.predict(model_id bigint, features real[])
        RETURNS real LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT pgml._py_predict(model_id, features) $$;
        CREATE OR REPLACE FUNCTION pgml.predict_proba(project_name text, features real[])
        RETURNS real[] LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT pgml._py_predict_proba(project_name, features) $$;
        CREATE OR REPLACE FUNCTION pgml.predict_proba(model_id bigint, features real[])
        RETURNS real[] LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT pgml._py_predict_proba(model_id, features) $$;
        CREATE OR REPLACE FUNCTION pgml.predict_batch(model_id bigint, features real[])
        RETURNS real[] LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT pgml._py_predict_batch(model_id, features) $$;
        CREATE OR REPLACE FUNCTION pgml.predict_batch(project_name text, features real[])
        RETURNS SETOF real LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE
        AS $$ SELECT unnest(pgml._py_predict_batch(project_name, features)) $$;
    END IF;
END
$do$;
