"""The pgml_native extension in a real (throwaway) PostgreSQL cluster."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pgml_flow.engine.native import compile_model

NF = 8


def _xgb_regressor(seed: int = 0, n_estimators: int = 20, depth: int = 4):
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, NF)).astype(np.float32)
    y = x[:, 0] * (seed + 1) + np.sin(x[:, 1]) + rng.normal(scale=0.1, size=500)
    x[rng.random(x.shape) < 0.05] = np.nan
    return xgb.XGBRegressor(
        n_estimators=n_estimators, max_depth=depth, random_state=seed, n_jobs=1
    ).fit(x, y)


def _rows(n: int, seed: int = 42, nan: bool = False) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, NF)).astype(np.float32)
    if nan:
        x[np.random.default_rng(seed + 1).random(x.shape) < 0.1] = np.nan
    return x


def test_predict_by_project_and_id_matches_library(native_db):
    est = _xgb_regressor()
    x = _rows(50, nan=True)
    expected = est.predict(x)
    with native_db.connect() as conn:
        mid = native_db.add_model(conn, "proj", compile_model(est))
        for row, want in zip(x, expected, strict=True):
            # NaN elements are missing values
            (by_name,) = conn.execute(
                "SELECT pgml._native_predict('proj', %s::real[])", (row.tolist(),)
            ).fetchone()
            (by_id,) = conn.execute(
                "SELECT pgml._native_predict(%s::bigint, %s::real[])", (mid, row.tolist())
            ).fetchone()
            assert by_name == pytest.approx(want, rel=1e-5, abs=1e-5)
            assert by_id == pytest.approx(want, rel=1e-5, abs=1e-5)
        (deployed,) = conn.execute("SELECT pgml._native_deployed_model_id('proj')").fetchone()
        assert deployed == mid


def test_classifier_proba_and_batch(native_db):
    from sklearn.ensemble import RandomForestClassifier

    x = _rows(400, seed=1)
    y = np.array([10, 20, 30])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)]
    est = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(x, y)
    probe = _rows(200, seed=9)
    proba = est.predict_proba(probe)
    with native_db.connect() as conn:
        mid = native_db.add_model(conn, "cls", compile_model(est))
        got = [
            conn.execute(
                "SELECT pgml._native_predict_proba('cls', %s::real[])", (r.tolist(),)
            ).fetchone()[0]
            for r in probe
        ]
        np.testing.assert_allclose(np.array(got), proba, atol=1e-6)
        (batch,) = conn.execute(
            "SELECT pgml._native_predict_batch(%s, %s::real[])", (mid, probe.ravel().tolist())
        ).fetchone()
        top2 = np.sort(proba, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-6
        np.testing.assert_array_equal(np.array(batch)[clear], est.predict(probe)[clear])
        (by_id,) = conn.execute(
            "SELECT pgml._native_predict_proba(%s, %s::real[])", (mid, probe[0].tolist())
        ).fetchone()
        np.testing.assert_allclose(by_id, proba[0], atol=1e-6)


def test_native_eval_with_blob_argument(native_db):
    from sklearn.linear_model import LogisticRegression

    x = _rows(300, seed=3)
    y = (x[:, 0] + x[:, 2] > 0).astype(int)
    est = LogisticRegression().fit(x, y)
    blob = compile_model(est)
    with native_db.connect() as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT g AS id, %s::real[] AS f FROM generate_series(1,3) g",
            (x[0].tolist(),),
        )
        rows = conn.execute(
            "SELECT pgml.native_eval(%s, f), pgml.native_eval_proba(%s, f) FROM t", (blob, blob)
        ).fetchall()
        for cls, proba in rows:
            assert cls == est.predict(x[:1])[0]
            np.testing.assert_allclose(proba, est.predict_proba(x[:1])[0], atol=1e-6)


def test_scan_over_table_matches_library(native_db):
    est = _xgb_regressor(seed=2, n_estimators=30, depth=5)
    x = _rows(5000, seed=5, nan=True)
    with native_db.connect() as conn:
        native_db.add_model(conn, "scan", compile_model(est))
        conn.execute("CREATE TABLE t(id int PRIMARY KEY, f real[])")
        with conn.cursor().copy("COPY t(id, f) FROM STDIN") as copy:
            for i, row in enumerate(x):
                copy.write_row((i, [float(v) for v in row]))  # NaN: missing
        (got,) = conn.execute(
            "SELECT array_agg(pgml._native_predict('scan', f) ORDER BY id) FROM t"
        ).fetchone()
    np.testing.assert_allclose(np.array(got), est.predict(x), rtol=1e-5, atol=1e-5)


def test_redeploy_seen_by_other_connection_next_statement(native_db):
    m1, m2 = _xgb_regressor(seed=0), _xgb_regressor(seed=5)
    row = _rows(1, seed=11)[0]
    e1, e2 = (float(m.predict(row[None])[0]) for m in (m1, m2))
    assert abs(e1 - e2) > 1e-3
    sql = "SELECT pgml._native_predict('redeploy', %s::real[])"
    with native_db.connect() as a, native_db.connect() as b:
        id1 = native_db.add_model(b, "redeploy", compile_model(m1))
        id2 = native_db.add_model(b, "redeploy", compile_model(m2), deploy=False)
        assert a.execute(sql, (row.tolist(),)).fetchone()[0] == pytest.approx(e1, rel=1e-5)
        native_db.deploy(b, "redeploy", id2)
        assert a.execute(sql, (row.tolist(),)).fetchone()[0] == pytest.approx(e2, rel=1e-5)
        # inside one read-committed transaction too: each statement re-checks
        with a.transaction():
            assert a.execute(sql, (row.tolist(),)).fetchone()[0] == pytest.approx(e2, rel=1e-5)
            native_db.deploy(b, "redeploy", id1)
            assert a.execute(sql, (row.tolist(),)).fetchone()[0] == pytest.approx(e1, rel=1e-5)
        stats = a.execute("SELECT model_id, hits FROM pgml.native_cache_stats()").fetchall()
        assert {r[0] for r in stats} == {id1, id2}


def test_redeploy_mid_scan_keeps_statement_consistent(native_db):
    m1, m2 = _xgb_regressor(seed=0), _xgb_regressor(seed=5)
    with native_db.connect() as a, native_db.connect() as b:
        native_db.add_model(b, "mid", compile_model(m1))
        id2 = native_db.add_model(b, "mid", compile_model(m2), deploy=False)
        a.execute(
            "CREATE TABLE t AS SELECT g, %s::real[] AS f FROM generate_series(1, 3000) g",
            (_rows(1)[0].tolist(),),
        )
        deployer = threading.Timer(0.2, lambda: native_db.deploy(b, "mid", id2))
        deployer.start()
        (n,) = a.execute(
            "SELECT count(DISTINCT pgml._native_predict('mid', f)"
            " + (pg_sleep(0.0002) IS NULL)::int) FROM t"
        ).fetchone()
        deployer.join()
        assert n == 1  # one model for the whole statement
        # ...and the deploy made during the scan is what the next statement uses
        (deployed,) = a.execute("SELECT pgml._native_deployed_model_id('mid')").fetchone()
        assert deployed == id2


def test_fallback_to_python_implementation(native_db):
    with native_db.connect() as conn:
        mid = native_db.add_model(conn, "py", None)
        # replace pgml-flow's Python path by stand-ins; without any: a clear error
        conn.execute("""
            DROP FUNCTION pgml._py_predict(text, real[]) CASCADE;
            DROP FUNCTION pgml._py_predict(bigint, real[]) CASCADE;
            DROP FUNCTION pgml._py_predict_proba(text, real[]) CASCADE;
            DROP FUNCTION pgml._py_predict_proba(bigint, real[]) CASCADE;
            DROP FUNCTION pgml._py_predict_batch(bigint, real[]) CASCADE;
            DROP FUNCTION pgml._py_predict_batch(text, real[]) CASCADE;
        """)
        with pytest.raises(Exception, match=r"has no native blob and the Python fallback"):
            conn.execute("SELECT pgml._native_predict('py', ARRAY[1,2]::real[])")
        conn.execute("""
            CREATE FUNCTION pgml._py_predict(project text, f real[]) RETURNS real
                LANGUAGE sql AS $$ SELECT (length(project) * 100 + array_length(f, 1))::real $$;
            CREATE FUNCTION pgml._py_predict(model_id bigint, f real[]) RETURNS real
                LANGUAGE sql AS $$ SELECT (-model_id * 100 - array_length(f, 1))::real $$;
            CREATE FUNCTION pgml._py_predict_proba(project text, f real[]) RETURNS real[]
                LANGUAGE sql AS $$ SELECT ARRAY[0.25, 0.75]::real[] $$;
            CREATE FUNCTION pgml._py_predict_proba(model_id bigint, f real[]) RETURNS real[]
                LANGUAGE sql AS $$ SELECT ARRAY[model_id, 1]::real[] $$;
            CREATE FUNCTION pgml._py_predict_batch(model_id bigint, f real[]) RETURNS real[]
                LANGUAGE sql AS $$ SELECT array_fill(7::real, ARRAY[array_length(f, 1)]) $$;
        """)
        q = conn.execute
        assert q("SELECT pgml._native_predict('py', ARRAY[1,2,3]::real[])").fetchone()[0] == 203
        assert (
            q("SELECT pgml._native_predict(%s, ARRAY[1]::real[])", (mid,)).fetchone()[0]
            == -mid * 100 - 1
        )
        assert q("SELECT pgml._native_predict_proba('py', ARRAY[1]::real[])").fetchone()[0] == [
            0.25,
            0.75,
        ]
        assert q("SELECT pgml._native_predict_proba(%s, ARRAY[1]::real[])", (mid,)).fetchone()[
            0
        ] == [mid, 1]
        assert q("SELECT pgml._native_predict_batch(%s, ARRAY[1,2]::real[])", (mid,)).fetchone()[
            0
        ] == [7, 7]
        # many rows in one statement: the "no blob" answer is cached per statement
        (total,) = q(
            "SELECT sum(pgml._native_predict('py', ARRAY[g]::real[])) "
            "FROM generate_series(1, 500) g"
        ).fetchone()
        assert total == 500 * 201
        # a blob added later is picked up by the next statement
        conn.execute(
            "INSERT INTO pgml.files(model_id, path, part, data) VALUES (%s,'native',0,%s)",
            (mid, compile_model(_xgb_regressor())),
        )
        (v,) = q(
            "SELECT pgml._native_predict('py', %s::real[])", (_rows(1)[0].tolist(),)
        ).fetchone()
        assert v == pytest.approx(float(_xgb_regressor().predict(_rows(1))[0]), rel=1e-5)


def test_errors_are_clear(native_db):
    import psycopg
    from sklearn.linear_model import Perceptron, Ridge

    x = _rows(100)
    blob = compile_model(_xgb_regressor())
    with native_db.connect() as conn:
        mid = native_db.add_model(conn, "err", blob)
        # pgml.native_eval (a blob argument, no Python path) answers bad input itself...
        with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
            conn.execute("SELECT pgml.native_eval(%s, ARRAY[1,2,3]::real[])", (blob,))
        assert f"the model expects {NF} features, got 3" in str(info.value)
        assert info.value.diag.message_hint
        # ...the serving functions hand what the C scorer does not answer to the Python
        # path, whose error the user sees: here, that these hand-made models have no files
        for call in ("pgml._native_predict('err', ARRAY[1,2,3]::real[])",
                     f"pgml._native_predict_batch({mid}, ARRAY[1,2,3]::real[])"):
            with pytest.raises(psycopg.Error, match=r"no meta\.json file"):
                conn.execute(f"SELECT {call}")
        # an unknown project is handed to the Python path, which names the problem
        with pytest.raises(psycopg.Error, match="project 'nope' does not exist"):
            conn.execute("SELECT pgml._native_predict('nope', ARRAY[1]::real[])")
        with pytest.raises(psycopg.errors.UndefinedObject, match="no deployed model"):
            conn.execute("SELECT pgml._native_deployed_model_id('nope')")
        # corrupt stored blob: an error naming the model, never a crash
        bad = native_db.add_model(conn, "bad", compile_model(_xgb_regressor())[:-40])
        with pytest.raises(psycopg.errors.DataCorrupted, match=f"model {bad} is not a valid"):
            conn.execute("SELECT pgml._native_predict('bad', ARRAY[1]::real[])")
        with pytest.raises(psycopg.errors.DataCorrupted):
            conn.execute("SELECT pgml.native_eval('\\x00112233'::bytea, ARRAY[1]::real[])")
        # multi-output regression has no scalar, nor probabilities; a perceptron only has
        # decision scores (the Python path normalises them): native_eval says so, the
        # serving functions let the Python path answer
        joint = compile_model(Ridge().fit(x, np.column_stack([x[:, 0], x[:, 1]])))
        perceptron = compile_model(Perceptron().fit(x, (x[:, 0] > 0).astype(int)))
        for call, message in [("native_eval(%s, %s::real[])", "2 outputs"),
                              ("native_eval_proba(%s, %s::real[])", "needs a classification"),
                              ]:
            with pytest.raises(psycopg.errors.FeatureNotSupported, match=message):
                conn.execute(f"SELECT pgml.{call}", (joint, x[0].tolist()))
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="without probabilities"):
            conn.execute("SELECT pgml.native_eval_proba(%s, %s::real[])",
                         (perceptron, x[0].tolist()))
        multi = native_db.add_model(conn, "multi", joint)
        perc = native_db.add_model(conn, "perc", perceptron)
        for call, model in [("predict", multi), ("predict_proba", multi),
                            ("predict_proba", perc)]:
            with pytest.raises(psycopg.Error, match=r"no meta\.json file"):
                conn.execute(f"SELECT pgml._native_{call}(%s, %s::real[])",
                             (model, x[0].tolist()))
        # the session still works after all those errors
        assert (
            conn.execute(
                "SELECT pgml._native_predict(%s, %s::real[])", (mid, x[0].tolist())
            ).fetchone()[0]
            is not None
        )


def test_cache_bound_and_reset(native_db):
    # enough models that their parsed forms (about 75 kB each) overflow a 1 MB cache
    blobs = [compile_model(_xgb_regressor(seed=s, n_estimators=100, depth=6)) for s in range(20)]
    with native_db.connect() as conn:
        ids = [native_db.add_model(conn, f"p{i}", b) for i, b in enumerate(blobs)]
        conn.execute("SET pgml.native_cache_mb = 1")
        row = _rows(1)[0].tolist()
        for _ in range(2):
            for mid in ids:
                conn.execute("SELECT pgml._native_predict(%s, %s::real[])", (mid, row))
        stats = conn.execute(
            "SELECT model_id, bytes, hits, last_used FROM pgml.native_cache_stats()"
        ).fetchall()
        sizes = [r[1] for r in stats]
        assert sum(len(b) for b in blobs) > 1024 * 1024
        assert 0 < len(stats) < len(ids)
        assert sum(sizes) <= 1024 * 1024 or len(stats) == 1
        assert stats[0][0] == ids[-1]  # most recently used first
        conn.execute("SET pgml.native_cache_mb = 256")
        for mid in ids:
            conn.execute("SELECT pgml._native_predict(%s, %s::real[])", (mid, row))
        assert len(conn.execute("SELECT * FROM pgml.native_cache_stats()").fetchall()) == len(ids)
        conn.execute("SELECT pgml.native_cache_reset()")
        assert conn.execute("SELECT count(*) FROM pgml.native_cache_stats()").fetchone()[0] == 0
        assert (
            conn.execute("SELECT pgml._native_predict('p0', %s::real[])", (row,)).fetchone()[0]
            is not None
        )


def test_parallel_settings_keep_scoring_in_the_leader(native_db):
    """The scorer may fall back to PL/Python, which cannot run in a parallel query.

    So every scoring entry point is PARALLEL UNSAFE (sql/pgml/030_serving.sql): however
    cheap parallel plans are made, the scan stays serial and gives the same sum.
    """
    est = _xgb_regressor(seed=3, n_estimators=50, depth=6)
    with native_db.connect() as conn:
        native_db.add_model(conn, "par", compile_model(est))
        conn.execute("""
            CREATE TABLE big AS
            SELECT g AS id, ARRAY(SELECT (random() * 4 - 2)::real
                                  FROM generate_series(1, 8) WHERE g > 0) AS f
            FROM generate_series(1, 200000) g;
            ANALYZE big;
        """)
        q = "SELECT sum(pgml._native_predict('par', f)::float8), count(*) FROM big"
        conn.execute("SET max_parallel_workers_per_gather = 0")
        serial = conn.execute(q).fetchone()
        conn.execute(
            "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; "
            "SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0"
        )
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + q).fetchall())
        assert "Workers" not in plan, plan
        parallel = conn.execute(q).fetchone()
        assert parallel[1] == serial[1] == 200000
        assert parallel[0] == pytest.approx(serial[0], rel=1e-9)
