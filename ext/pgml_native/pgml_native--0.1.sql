/* pgml_native 0.1: SQL entry points of the native scorer.  Everything lives in
 * schema pgml, next to pgml-flow's tables that the serving functions read
 * (pgml.projects, pgml.deployments, pgml.files). */

\echo Use "CREATE EXTENSION pgml_native" to load this file. \quit

-- Utility / testing: evaluate a blob passed as an argument.  A pure function of
-- its arguments, hence IMMUTABLE.
CREATE FUNCTION pgml.native_eval(model bytea, features real[]) RETURNS real
    AS 'MODULE_PATHNAME', 'pgml_native_eval'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION pgml.native_eval_proba(model bytea, features real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgml_native_eval_proba'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Serving: read pgml.deployments / pgml.files, so STABLE (not IMMUTABLE: the
-- planner must not fold a prediction into a cached plan across redeploys).
-- Models without a native blob are delegated to pgml._py_predict* (plpython), so
-- PARALLEL UNSAFE: PL/Python cannot run SPI in a parallel query (sql/pgml/030_serving.sql).
CREATE FUNCTION pgml._native_predict(project_name text, features real[]) RETURNS real
    AS 'MODULE_PATHNAME', 'pgml_native_predict_project'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

CREATE FUNCTION pgml._native_predict(model_id bigint, features real[]) RETURNS real
    AS 'MODULE_PATHNAME', 'pgml_native_predict_model'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

CREATE FUNCTION pgml._native_predict_proba(project_name text, features real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgml_native_predict_proba_project'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

CREATE FUNCTION pgml._native_predict_proba(model_id bigint, features real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgml_native_predict_proba_model'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

-- features = rows flattened; one prediction per row
CREATE FUNCTION pgml._native_predict_batch(model_id bigint, features real[]) RETURNS real[]
    AS 'MODULE_PATHNAME', 'pgml_native_predict_batch_model'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

-- The deployed model of a project as the serving functions see it (same
-- per-statement cache), for SQL wrappers such as predict_batch(text, ...).
CREATE FUNCTION pgml._native_deployed_model_id(project_name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pgml_native_deployed_model_id'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- Per-backend cache introspection; the cache is backend-local, so these are
-- VOLATILE and PARALLEL RESTRICTED (a worker would report its own cache).
CREATE FUNCTION pgml.native_cache_stats()
    RETURNS TABLE(model_id bigint, bytes bigint, hits bigint, last_used timestamptz)
    AS 'MODULE_PATHNAME', 'pgml_native_cache_stats'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION pgml.native_cache_reset() RETURNS void
    AS 'MODULE_PATHNAME', 'pgml_native_cache_reset'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
