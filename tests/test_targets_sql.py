"""Target options through plain ``pgml.train`` SQL (docs/sql-api.md, "Targets and objectives"):
a log1p duration model with an absolute-error objective, a story-point model snapped to the
client's scale, a calibrated classifier; each served by the native scorer, whose answers are
compared with the Python path's (the stored model loaded here), and metrics on the original
scale.  Small data: the whole test trains three small models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from pgml_flow import engine

N = 300


@pytest.fixture
def sql(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def _one(conn: psycopg.Connection, query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _model(conn: psycopg.Connection, project: str) -> tuple[int, engine.Model, dict[str, Any]]:
    model_id = _one(conn, "SELECT d.model_id FROM pgml.deployments d JOIN pgml.projects p ON "
                          "p.id = d.project_id WHERE p.name = %s ORDER BY d.id DESC LIMIT 1",
                    project)
    files = conn.execute("SELECT path, data FROM pgml.files WHERE model_id = %s AND path <> "
                         "'native' ORDER BY path, part", (model_id,)).fetchall()
    native = _one(conn, "SELECT count(*) FROM pgml.files WHERE model_id = %s AND path = "
                        "'native'", model_id)
    assert native == 1, f"{project} is not served natively"
    metrics = _one(conn, "SELECT metrics FROM pgml.models WHERE id = %s", model_id)
    return model_id, engine.load_model([(p, bytes(d)) for p, d in files]), metrics


def test_targets_train_store_and_score_alike_on_both_paths(sql: psycopg.Connection) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 3)).round(3)
    days = np.exp(1.5 + x[:, 0] + 0.3 * rng.normal(size=N)).round(2)
    points = np.array([1, 2, 3, 5, 8, 13])[np.clip((x[:, 1] * 1.5 + 2.5).astype(int), 0, 5)]
    rework = (x[:, 2] + rng.normal(size=N) > 0.8)
    sql.execute("CREATE TABLE t (a float8, b float8, c float8, days float8, points int, "
                "rework bool)")
    with sql.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)",
                        [(*map(float, r), float(d), int(p), bool(w))
                         for r, d, p, w in zip(x, days, points, rework, strict=True)])
    for view, label in (("durations", "days"), ("story", "points"), ("reworked", "rework")):
        sql.execute(f"CREATE VIEW {view} AS SELECT a, b, c, {label} FROM t")
    sql.execute("""SELECT pgml.train('durations', 'regression', 'durations', 'days',
        algorithm => 'xgboost', hyperparams => '{"objective": "reg:absoluteerror",
        "n_estimators": 30, "max_depth": 3}', test_sampling => 'last',
        preprocess => '{"days": {"transform": "log1p"}}')""")
    sql.execute("""SELECT pgml.train('story', 'regression', 'story', 'points',
        algorithm => 'lightgbm', hyperparams => '{"objective": "quantile", "alpha": 0.5,
        "n_estimators": 30}', test_sampling => 'last',
        preprocess => '{"points": {"snap": true}}')""")
    sql.execute("""SELECT pgml.train('reworked', 'classification', 'reworked', 'rework',
        algorithm => 'xgboost', hyperparams => '{"n_estimators": 30, "max_depth": 3}',
        preprocess => '{"rework": {"calibration": "sigmoid"}}')""")
    test = x[-int(np.ceil(N * 0.25)):].astype(np.float32)

    def native(fn: str, project: str) -> np.ndarray:
        return np.array([_one(sql, f"SELECT pgml.{fn}(%s, %s::real[])", project, r.tolist())
                         for r in test], dtype=float)

    # durations: expm1 on both paths, metrics on the days scale (the test rows are the last)
    _, model, metrics = _model(sql, "durations")
    python = model.predict(test.astype(np.float64))
    assert np.allclose(native("predict", "durations"), python, rtol=1e-5)
    held_out = days[-len(test):]
    assert metrics["mean_absolute_error"] == pytest.approx(
        float(np.mean(np.abs(held_out - python))), rel=1e-4)
    assert metrics["target"]["transform"] == "log1p" and metrics["quantile"] == 0.5
    assert metrics["coverage"] == pytest.approx(float(np.mean(held_out <= python)))
    # story points: every prediction is one of the client's own values
    _, model, metrics = _model(sql, "story")
    served = native("predict", "story")
    assert set(served) <= {1.0, 2.0, 3.0, 5.0, 8.0, 13.0}
    assert np.array_equal(served, model.predict(test.astype(np.float64)))
    assert metrics["target"]["scale"] == [1, 2, 3, 5, 8, 13]
    # rework: calibrated probabilities on both paths, the class decision kept
    _, model, metrics = _model(sql, "reworked")
    proba = np.array([_one(sql, "SELECT pgml.predict_proba('reworked', %s::real[])", r.tolist())
                      for r in test], dtype=float)
    assert np.allclose(proba, model.predict_proba(test.astype(np.float64)), atol=1e-6)
    assert np.array_equal(native("predict", "reworked"), model.predict(test.astype(np.float64)))
    report = metrics["calibration"]
    assert report["method"] == "sigmoid" and report["rows"] + report["fit_rows"] == 225
    assert report["log_loss_after"] == pytest.approx(metrics["log_loss"])
    # a negative duration is refused, naming the column and what to do; nothing is stored
    sql.execute("UPDATE t SET days = -1 WHERE a = (SELECT min(a) FROM t)")
    with pytest.raises(psycopg.Error, match=r"'days' has 1 negative value.*WHERE days >= 0"):
        sql.execute("""SELECT pgml.train('durations', 'regression', 'durations', 'days',
            preprocess => '{"days": {"transform": "log1p"}}')""")
    assert _one(sql, "SELECT count(*) FROM pgml.models") == 3
