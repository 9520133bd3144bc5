"""Bad numbers through every entry point: the C scorer and the Python path agree.

Models of every family with a native form are trained with ``pgml.train`` (so each has
its library files and its compiled blob).  Every bad input (NULL elements, NaN,
±Infinity, wrong feature counts, the empty array; in the ``ROW`` form NULL, NaN,
infinite and out-of-range column values) goes through every entry point (``predict``
by project name and by model id, ``predict_proba``, ``predict_batch`` by id and by name,
the ``ROW`` form) once natively (``pgml.predict...``, the C functions) and once through
the Python path (``pgml._py_...``): the two must give the same value or the same error
(SQLSTATE, message, hint).  Each outcome is also checked against the matrix of
``pgml_flow.engine.inputs`` (which families score NaN and infinities, which refuse
them with an error naming the feature).  The same holds for blobs compiled before input
rules, and for a model trained while the server still runs a scorer older than them.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import skip_unless_scorer_reads_input_rules

from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.engine import native
from tests.conftest import TEMPLATE

#: (project, task, algorithm, hyperparams, labels): every family the C scorer compiles
MODELS: list[tuple[str, str, str, str]] = [
    ("r_xgboost", "regression", "xgboost", '{"n_estimators": 10, "max_depth": 3}'),
    ("r_xgboost_rf", "regression", "xgboost_random_forest", '{"n_estimators": 5}'),
    ("r_lightgbm", "regression", "lightgbm", '{"n_estimators": 10, "num_leaves": 7}'),
    ("r_hist_gb", "regression", "hist_gradient_boosting", '{"max_iter": 10}'),
    ("r_random_forest", "regression", "random_forest", '{"n_estimators": 5, "max_depth": 5}'),
    ("r_extra_trees", "regression", "extra_trees", '{"n_estimators": 5, "max_depth": 5}'),
    ("r_gbt", "regression", "gradient_boosting_trees", '{"n_estimators": 10}'),
    ("r_linear", "regression", "linear", "{}"),
    ("r_ridge", "regression", "ridge", "{}"),
    ("r_lasso", "regression", "lasso", '{"alpha": 0.01}'),
    ("r_sgd", "regression", "stochastic_gradient_descent", "{}"),
    ("b_xgboost", "binary", "xgboost", '{"n_estimators": 10, "max_depth": 3}'),
    ("m_xgboost", "multiclass", "xgboost", '{"n_estimators": 10, "max_depth": 3}'),
    ("b_lightgbm", "binary", "lightgbm", '{"n_estimators": 10, "num_leaves": 7}'),
    ("m_hist_gb", "multiclass", "hist_gradient_boosting", '{"max_iter": 10}'),
    ("m_random_forest", "multiclass", "random_forest", '{"n_estimators": 5, "max_depth": 5}'),
    ("b_extra_trees", "binary", "extra_trees", '{"n_estimators": 5, "max_depth": 5}'),
    ("b_gbt", "binary", "gradient_boosting_trees", '{"n_estimators": 10}'),
    ("b_linear", "binary", "linear", "{}"),
    ("m_linear", "multiclass", "linear", "{}"),
    ("b_ridge", "binary", "ridge", "{}"),  # decision scores only: proba is the Python path's
    ("m_perceptron", "multiclass", "perceptron", "{}"),
    ("b_linear_svm", "binary", "linear_svm", "{}"),
    ("b_sgd", "binary", "stochastic_gradient_descent", "{}"),
]

#: what each family scores besides finite numbers (NaN / NULL, ±Infinity): the matrix
SCORES = {
    "xgboost": (True, True), "xgboost_random_forest": (True, True),
    "lightgbm": (True, True), "hist_gradient_boosting": (True, True),
    "random_forest": (True, False), "extra_trees": (True, False),
}  # fmt: skip
FINITE_ONLY = (False, False)  # gradient_boosting_trees and the linear models
#: read float32: a double beyond real's range is an infinity to them (scikit-learn's trees)
FLOAT32 = {"random_forest", "extra_trees", "gradient_boosting_trees"}

OK = "{0.5,-1,2,0.25}"
#: array inputs (4 features): name -> (literal, what it holds)
ARRAYS: dict[str, tuple[str, str]] = {
    "ok": (OK, "ok"),
    "2-D": ("{{0.5,-1},{2,0.25}}", "ok"),
    "NULL": ("{0.5,NULL,2,0.25}", "null"),  # an error for every model, as in PostgresML
    "NaN": ("{0.5,NaN,2,0.25}", "nan"),
    "Infinity": ("{0.5,Infinity,2,0.25}", "inf"),
    "-Infinity": ("{0.5,-1,2,-Infinity}", "inf"),
    "all NULL": ("{NULL,NULL,NULL,NULL}", "null"),
    "NaN then Infinity": ("{NaN,1,Infinity,2}", "nan+inf"),
    "Infinity then NaN": ("{1,-Infinity,2,NaN}", "inf+nan"),
    "3 features": ("{0.5,-1,2}", "count"),
    "5 features": ("{0.5,-1,2,0.25,1}", "count"),
    "empty": ("{}", "count"),
}
#: ROW form values of (a real: impute mean, scale standard; b float8: no impute rule;
#: c integer: impute zero; d real: as is); a double beyond real's range is an infinity to
#: the models that read float32, a number to the others
ROWS: dict[str, tuple[str, str]] = {
    "ok": ("0.5, -1, 2, 0.25", "ok"),
    "a NULL (imputed)": ("NULL, -1, 2, 0.25", "ok"),
    "a NaN (imputed)": ("'NaN', -1, 2, 0.25", "ok"),
    "c NULL (imputed)": ("0.5, -1, NULL, 0.25", "ok"),
    "b NULL (no rule)": ("0.5, NULL, 2, 0.25", "null column"),
    "b NaN (no rule)": ("0.5, 'NaN', 2, 0.25", "null column"),
    "a Infinity": ("'Infinity', -1, 2, 0.25", "inf"),
    "d -Infinity": ("0.5, -1, 2, '-Infinity'", "inf"),
    "b 1e300": ("0.5, 1e300, 2, 0.25", "beyond real"),
}
PREPROCESS = ('{"a": {"impute": "mean", "scale": "standard"}, "c": {"impute": "zero"}}')


@pytest.fixture(scope="module")
def served(admin_url: str, template_url: str) -> Iterator[str]:
    """One database with every model of MODELS trained (and compiled) once."""
    name = f"test_bad_inputs_{uuid.uuid4().hex[:8]}"
    recreate_database(admin_url, name, template=TEMPLATE)
    url = with_dbname(admin_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if not conn.execute("SELECT count(*) FROM pg_extension"
                                " WHERE extname = 'pgml_native'").fetchone()[0]:
                pytest.skip("pgml_native is not installed: ./dev setup builds and installs it")
            skip_unless_scorer_reads_input_rules(conn)
            rng = np.random.default_rng(3)
            x = rng.normal(size=(240, 4))
            x[:, 2] = np.round(x[:, 2] * 2)
            score = x[:, 0] + np.sin(x[:, 1] * 2) + 0.5 * x[:, 2] - x[:, 3]
            conn.execute("CREATE TABLE train_rows (a real, b double precision, c integer,"
                         " d real, y_regression double precision, y_binary integer,"
                         " y_multiclass integer)")
            with conn.cursor().copy("COPY train_rows FROM STDIN") as copy:
                cuts = np.quantile(score, [1 / 3, 2 / 3])
                for row, s in zip(x, score, strict=True):
                    copy.write_row([float(row[0]), float(row[1]), int(row[2]), float(row[3]),
                                    float(s), int(s > 0), int(np.digitize(s, cuts))])
            for task in ("regression", "binary", "multiclass"):
                conn.execute(f"CREATE VIEW train_{task} AS SELECT a, b, c, d, y_{task}"
                             " FROM train_rows")
            conn.execute("CREATE TYPE probe AS (a real, b double precision, c integer, d real)")
            for project, task, algorithm, hyperparams in MODELS:
                conn.execute(
                    "SELECT * FROM pgml.train(%s, %s, %s, %s, %s::pgml.algorithm, %s::jsonb,"
                    " preprocess => %s::jsonb)",
                    (project, "regression" if task == "regression" else "classification",
                     f"train_{task}", f"y_{task}", algorithm, hyperparams, PREPROCESS))
        yield url
    finally:
        drop_database(admin_url, name)


def _model_id(conn: psycopg.Connection, project: str) -> int:
    (model_id,) = conn.execute(
        "SELECT d.model_id FROM pgml.deployments d JOIN pgml.projects p ON p.id = d.project_id"
        " WHERE p.name = %s ORDER BY d.id DESC LIMIT 1", (project,)).fetchone()
    return int(model_id)


def _outcome(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    """("value", v) or ("error", sqlstate, message, hint)."""
    try:
        return ("value", conn.execute(query, params).fetchone()[0])
    except psycopg.Error as exc:
        return ("error", exc.sqlstate, exc.diag.message_primary, exc.diag.message_hint)


def _same(native_out: tuple[Any, ...], python_out: tuple[Any, ...], task: str) -> bool:
    if native_out[0] != python_out[0]:
        return False
    if native_out[0] == "error":
        return native_out == python_out
    a, b = native_out[1], python_out[1]
    if a is None or b is None:
        return a is b
    got = np.asarray(a, dtype=float).reshape(-1)
    want = np.asarray(b, dtype=float).reshape(-1)
    if got.shape != want.shape:
        return False
    if task != "regression" and got.shape == (1,):
        return bool(np.array_equal(got, want))  # a class
    # both are float4 of a double: equal up to float32 rounding
    return bool(np.allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True))


def _calls(project: str, model_id: int) -> list[tuple[str, str, str, tuple[Any, ...]]]:
    """(entry point, native query, Python query, params prefix) for an array argument."""
    return [
        ("predict(text)", "SELECT pgml.predict(%s::text, %s::real[])",
         "SELECT pgml._py_predict(%s::text, %s::real[])", (project,)),
        ("predict(bigint)", "SELECT pgml.predict(%s::bigint, %s::real[])",
         "SELECT pgml._py_predict(%s::bigint, %s::real[])", (model_id,)),
        ("predict_proba(text)", "SELECT pgml.predict_proba(%s::text, %s::real[])",
         "SELECT pgml._py_predict_proba(%s::text, %s::real[])", (project,)),
        ("predict_proba(bigint)", "SELECT pgml.predict_proba(%s::bigint, %s::real[])",
         "SELECT pgml._py_predict_proba(%s::bigint, %s::real[])", (model_id,)),
        ("predict_batch(bigint)", "SELECT pgml.predict_batch(%s::bigint, %s::real[])",
         "SELECT pgml._py_predict_batch(%s::bigint, %s::real[])", (model_id,)),
        ("predict_batch(text)", "SELECT array(SELECT pgml.predict_batch(%s::text, %s::real[]))",
         "SELECT pgml._py_predict_batch(%s::text, %s::real[])", (project,)),
    ]


def _expected(kind: str, algorithm: str, task: str, entry: str) -> str:
    """What the matrix says: "value", or the error ("nan", "inf", "count", "proba").

    The Python path checks the feature count, then the task, then the values in order
    (the first refused value is the one named).
    """
    scores = dict(zip(("nan", "inf"), SCORES.get(algorithm, FINITE_ONLY), strict=True))
    if kind == "null":  # checked first, while the array is read
        return "null"
    if kind == "count":
        return "count"
    if entry.startswith("predict_proba") and task == "regression":
        return "proba"
    if kind == "beyond real":
        return "inf" if algorithm in FLOAT32 else "value"
    for value in kind.split("+"):
        if value in scores and not scores[value]:
            return value
    return "value"


MESSAGES = {
    "nan": "is NaN or NULL, a missing value",
    "inf": "models cannot score; replace or clip it",
    "beyond real": "(beyond the range of real), which",
    "count": "expected 4 features",
    "proba": "predict_proba needs a classification model",
    "null column": "contains NULL values",
    "null": "is NULL: the features array cannot contain NULL",
}


def _check_expected(out: tuple[Any, ...], expected: str, label: str) -> str | None:
    if expected == "value":
        return None if out[0] == "value" else f"{label}: expected a value, got {out}"
    if out[0] != "error" or MESSAGES[expected] not in (out[2] or ""):
        return f"{label}: expected the {expected!r} error, got {out}"
    if expected in ("nan", "inf", "count", "null") and (out[1] != "22023" or not out[3]):
        return f"{label}: expected SQLSTATE 22023 with a hint, got {out}"
    return None


def _compare(conn: psycopg.Connection, project: str, task: str, algorithm: str) -> list[str]:
    """Every bad input through every entry point; the list of disagreements."""
    model_id = _model_id(conn, project)
    problems: list[str] = []
    for name, (literal, kind) in ARRAYS.items():
        for entry, native_q, python_q, key in _calls(project, model_id):
            batch = entry.startswith("predict_batch")
            # batches: the bad row second, after a good one; "empty" is zero rows
            value = ("{}" if name == "empty" else
                     "{" + OK[1:-1] + "," + literal.replace("{", "").replace("}", "") + "}"
                     ) if batch else literal
            native_out = _outcome(conn, native_q, (*key, value))
            python_out = _outcome(conn, python_q, (*key, value))
            label = f"{project} {entry} {name}"
            if not _same(native_out, python_out, task):
                problems.append(f"{label}: native {native_out} != python {python_out}")
            expected = "value" if batch and name == "empty" else _expected(
                kind, algorithm, task, entry)
            problem = _check_expected(python_out, expected, label)
            if problem:
                problems.append(problem)
            if batch and name == "empty" and python_out[0] == "value":
                assert python_out[1] == [], label
            if expected in ("nan", "inf", "null") and python_out[0] == "error":
                where = "row 2, feature " if batch else "feature "
                assert where in python_out[2], (label, python_out)
    for name, (values, kind) in ROWS.items():
        record = f"ROW({values})::probe"
        for row_key, cast in ((project, "text"), (model_id, "bigint")):
            native_out = _outcome(conn, f"SELECT pgml.predict(%s::{cast}, {record})",
                                  (row_key,))
            python_out = _outcome(
                conn, f"SELECT pgml._py_predict_row(%s::{cast}, to_json({record}))", (row_key,))
            label = f"{project} ROW({cast}) {name}"
            if not _same(native_out, python_out, task):
                problems.append(f"{label}: native {native_out} != python {python_out}")
            expected = kind if kind == "null column" else _expected(kind, algorithm, task, "ROW")
            problem = _check_expected(python_out, expected, label)
            if problem:
                problems.append(problem)
            if expected == "inf" and python_out[0] == "error":
                assert "column '" in python_out[2], (label, python_out)
                if kind == "beyond real":
                    assert MESSAGES[kind] in python_out[2], (label, python_out)
    return problems


@pytest.mark.parametrize(("project", "task", "algorithm", "hyperparams"), MODELS,
                         ids=[m[0] for m in MODELS])
def test_native_and_python_agree_on_bad_inputs(served: str, project: str, task: str,
                                               algorithm: str, hyperparams: str) -> None:
    with psycopg.connect(served, autocommit=True) as conn:
        model_id = _model_id(conn, project)
        blob = conn.execute("SELECT string_agg(data, ''::bytea ORDER BY part) FROM pgml.files"
                            " WHERE model_id = %s AND path = 'native'", (model_id,)).fetchone()[0]
        assert blob is not None, f"{project}: no compiled form, nothing native to compare"
        assert blob[8] == native.ROW_FORMAT_VERSION  # the ROW form is native too
        (flags,) = np.frombuffer(bytes(blob[36:40]), dtype="<u4")
        nan_ok, inf_ok = SCORES.get(algorithm, FINITE_ONLY)
        assert flags & native.FLAG_INPUT_RULES
        assert bool(flags & native.FLAG_REFUSE_NAN) == (not nan_ok)
        assert bool(flags & native.FLAG_REFUSE_INF) == (not inf_ok)
        # the good rows are served in C: the Python path never loads the model
        with psycopg.connect(served, autocommit=True) as fresh:
            fresh.execute("SELECT pgml.predict(%s, %s::real[]),"
                          " pgml.predict(%s, ROW(0.5, -1, 2, 0.25)::probe)",
                          (project, OK, project))
            assert fresh.execute("SELECT count(*) FROM pgml.cached_models()").fetchone()[0] == 0
        problems = _compare(conn, project, task, algorithm)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("project", ["r_linear", "r_xgboost", "m_random_forest", "b_gbt"])
def test_blobs_without_input_rules_hand_non_finite_rows_to_python(served: str,
                                                                  project: str) -> None:
    """A model compiled before input rules: its NaN and infinite rows are Python's."""
    _, task, algorithm, _ = next(m for m in MODELS if m[0] == project)
    with psycopg.connect(served, autocommit=True) as conn:
        model_id = _model_id(conn, project)
        parts = conn.execute("SELECT part, data FROM pgml.files WHERE model_id = %s"
                             " AND path = 'native' ORDER BY part", (model_id,)).fetchall()
        blob = b"".join(bytes(p[1]) for p in parts)
        conn.execute("DELETE FROM pgml.files WHERE model_id = %s AND path = 'native'",
                     (model_id,))
        conn.execute("INSERT INTO pgml.files(model_id, path, part, data)"
                     " VALUES (%s, 'native', 0, %s)", (model_id, native.without_input_rules(blob)))
        try:
            problems = _compare(conn, project, task, algorithm)
        finally:
            conn.execute("DELETE FROM pgml.files WHERE model_id = %s AND path = 'native'",
                         (model_id,))
            conn.cursor().executemany("INSERT INTO pgml.files(model_id, path, part, data)"
                             " VALUES (%s, 'native', %s, %s)",
                             [(model_id, part, data) for part, data in parts])
    assert not problems, "\n".join(problems)


def test_outputs_are_rounded_to_real_alike(served: str) -> None:
    """Outputs beyond ``real`` become an infinity, tiny ones 0, on both paths (not an error)."""
    with psycopg.connect(served, autocommit=True) as conn:
        for project in ("r_linear", "b_linear"):
            for values in ("{3e38,-3e38,3e38,-3e38}", "{-3e38,3e38,-3e38,3e38}",
                           "{1e30,1e30,1e30,1e30}"):
                native_out = _outcome(conn, "SELECT pgml.predict_proba(%s, %s::real[])"
                                      if project == "b_linear" else
                                      "SELECT pgml.predict(%s, %s::real[])", (project, values))
                python_out = _outcome(conn, "SELECT pgml._py_predict_proba(%s, %s::real[])"
                                      if project == "b_linear" else
                                      "SELECT pgml._py_predict(%s, %s::real[])",
                                      (project, values))
                assert native_out[0] == "value", (project, values, native_out)
                assert _same(native_out, python_out, "regression"), (native_out, python_out)
                out = np.asarray(native_out[1], dtype=float).reshape(-1)
                assert all(math.isinf(v) or abs(v) < 3.5e38 for v in out)


def test_training_on_a_scorer_older_than_input_rules(native_db: Any) -> None:
    """A server still running a pgml_native that refuses the input-rule flags (installed,
    not yet restarted): training stores the compiled form without them, still native."""
    with native_db.connect() as conn:
        conn.execute("""
            CREATE FUNCTION pgml.native_eval_c(bytea, real[]) RETURNS real
                AS '$libdir/pgml_native', 'pgml_native_eval' LANGUAGE C STRICT;
            CREATE OR REPLACE FUNCTION pgml.native_eval(model bytea, features real[])
            RETURNS real LANGUAGE plpgsql AS $$
            BEGIN
                IF get_byte(model, 36) & 112 <> 0 THEN  -- flags bits 4-6
                    RAISE EXCEPTION 'the model argument is not a valid pgml_native blob: '
                                    'unknown header flags' USING ERRCODE = 'data_corrupted';
                END IF;
                RETURN pgml.native_eval_c(model, features);
            END $$;
            CREATE TABLE t AS SELECT g::real AS a, (g % 7)::real AS b, g * 0.5 + g % 7 AS y
              FROM generate_series(1, 200) g;
        """)
        conn.execute("SELECT * FROM pgml.train('old scorer', 'regression', 't', 'y', 'linear')")
        model_id = _model_id(conn, "old scorer")
        (flags,) = conn.execute("SELECT get_byte(data, 36) FROM pgml.files WHERE model_id = %s"
                                " AND path = 'native' AND part = 0", (model_id,)).fetchone()
        assert flags & 0x70 == 0
        with native_db.connect() as fresh:
            fresh.execute("SELECT pgml.predict('old scorer', ARRAY[1, 2]::real[])")
            assert fresh.execute("SELECT count(*) FROM pgml.cached_models()").fetchone()[0] == 0
            # without input rules, a NaN row is the Python path's: the same error
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="feature 2 is NaN"):
                fresh.execute("SELECT pgml.predict('old scorer', ARRAY[1, 'NaN']::real[])")
