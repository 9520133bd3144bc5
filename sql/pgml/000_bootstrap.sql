-- pgml-flow's implementation of the pgml API (installed only when the server has no real
-- pgml extension). The functions are thin plpython3u wrappers over pgml_flow.server.

-- Puts the trusted virtualenv on sys.path (pgml_flow.python_path(), superuser-set pgml.venv
-- only) and imports pgml-flow's in-database modules once per session (GD is shared by all
-- plpython3u functions).
CREATE OR REPLACE FUNCTION pgml._bootstrap() RETURNS void
LANGUAGE plpython3u PARALLEL SAFE AS $$
if "pgml_flow.api" in GD:
    return
import os
# One BLAS thread per backend: PostgreSQL's parallelism is its backends, and OpenBLAS's
# spinning worker threads made a logistic-regression pgml.train 2-3x slower whenever another
# process held a core (1.6 s -> 3.4-4.8 s, bench/retrain_bench.py); with one thread it stays
# 1.6-1.9 s and is as fast when idle. Set OPENBLAS_NUM_THREADS for the server to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
venv = plpy.execute("SELECT pgml_flow.python_path() AS v")[0]["v"]
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
