-- pgml-flow's implementation of the pgml API (installed only when the server has no real
-- pgml extension). The functions are thin plpython3u wrappers over pgml_flow.server.

-- Where the in-database Python imports from: the only place that touches sys.path.
--
-- A path that reaches Python's import system runs code as the server's OS user
-- (site.addsitedir executes the import lines of every .pth file), so it may come only from
-- a setting no non-superuser can change. pgml_native defines pgml.venv with superuser-only
-- context (ext/pgml_native/settings.c) and the embedded cluster preloads it; a pgml.venv
-- that PostgreSQL shows with any other context, or that is only a placeholder (pgml_native
-- absent), is refused. docs/isolation.md has the threat model.

-- Calling this loads pgml_native, whose _PG_init defines the settings (for a server that
-- does not preload it). Created only where the library is installed.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgml_native') THEN
        BEGIN
            CREATE OR REPLACE FUNCTION pgml._load_settings() RETURNS boolean
            AS '$libdir/pgml_native', 'pgml_native_settings_loaded'
            LANGUAGE C STABLE PARALLEL UNSAFE;
        EXCEPTION WHEN undefined_file OR undefined_function THEN
            RAISE WARNING 'pgml_native is older than this pgml-flow (no settings entry point); '
                          'rebuild it (./dev setup) so that pgml.venv is superuser-only';
        END;
    END IF;
END;
$$;

-- Adds the trusted virtualenv's site-packages to sys.path once per backend and returns
-- its path ('' when the server's own Python is used). Raises when pgml.venv is set but
-- cannot be trusted, naming what to do.
CREATE OR REPLACE FUNCTION pgml._python_path() RETURNS text
LANGUAGE plpython3u PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
import site
import sys
if GD.get("pgml._python_path") is not None:
    return GD["pgml._python_path"]
if plpy.execute("SELECT to_regprocedure('pgml._load_settings()') IS NOT NULL AS ok")[0]["ok"]:
    plpy.execute("SELECT pgml._load_settings()")
rows = plpy.execute("SELECT setting, context FROM pg_settings WHERE name = 'pgml.venv'")
if not rows or rows[0]["context"] not in ("superuser", "sighup", "postmaster"):
    if plpy.execute("SELECT current_setting('pgml.venv', true) AS v")[0]["v"]:
        plpy.error(
            "pgml.venv is set but not trusted: on this server any session may change it, "
            "and it chooses the code the server runs",
            detail="pgml.venv is trusted only when pgml_native defines it as a superuser-only "
                   "setting (context "
                   + (repr(rows[0]["context"]) if rows else "'placeholder'") + " here)",
            hint="install pgml_native (ext/pgml_native, `./dev setup`) and add it to "
                 "shared_preload_libraries, or install pgml-flow's packages into the "
                 "server's own Python and unset pgml.venv")
    venv = ""
else:
    venv = rows[0]["setting"] or ""
if venv:
    packages = f"{venv}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    if packages not in sys.path:
        site.addsitedir(packages)
GD["pgml._python_path"] = venv
return venv
$$;
COMMENT ON FUNCTION pgml._python_path() IS
    'Puts the superuser-set pgml.venv on the in-database Python''s sys.path (once per backend)';

-- Puts the trusted virtualenv on sys.path (pgml._python_path(), superuser-set pgml.venv
-- only) and imports pgml-flow's in-database modules once per session (GD is shared by all
-- plpython3u functions).
CREATE OR REPLACE FUNCTION pgml._bootstrap() RETURNS void
LANGUAGE plpython3u PARALLEL UNSAFE AS $$
if "pgml_flow.api" in GD:
    return
import os
# One BLAS thread per backend: PostgreSQL's parallelism is its backends, and OpenBLAS's
# spinning worker threads made a logistic-regression pgml.train 2-3x slower whenever another
# process held a core (1.6 s -> 3.4-4.8 s, bench/retrain_bench.py); with one thread it stays
# 1.6-1.9 s and is as fast when idle. Set OPENBLAS_NUM_THREADS for the server to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
venv = plpy.execute("SELECT pgml._python_path() AS v")[0]["v"]
try:
    from pgml_flow.server import api, datasets
except ImportError as exc:
    plpy.error(
        f"pgml-flow's in-database Python cannot be imported: {exc}",
        detail=f"pgml.venv is {venv!r}" if venv else "pgml.venv is not set",
        hint="a superuser sets pgml.venv (postgresql.conf or ALTER DATABASE ... SET) to a "
             "virtualenv with pgml-flow, numpy, scikit-learn, xgboost-cpu and lightgbm "
             "(pgml-flow db start does this for the embedded cluster)",
    )
GD["pgml_flow.api"] = api
GD["pgml_flow.datasets"] = datasets
$$;
