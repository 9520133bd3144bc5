"""The ROW form of ``pgml.predict`` scored natively, against the Python path.

Models are trained with ``pgml.train`` (so the blob's row section comes from the real
snapshot) over columns of every feature type, with every encoding, impute rule and
scaler across two preprocessing configurations.  Probe rows carry NULLs, unseen
categories and out-of-range values; the C function (``pgml.predict(project, record)``)
must return what ``pgml._py_predict_row(project, to_json(record))`` returns.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import NativeError

from pgml_flow.engine import native

COLORS = ["red", "green", "blue", "black"]
SIZES = ["S", "M", "L"]
CITIES = ["paris", "rome", "oslo", "lima", "kyiv"]
REGIONS = ["n", "s", "e", "w"]
COLUMNS = "color, size, city, region, x1, x2, x3, x4, flag, vec"
TABLE = """(id integer, color text, size varchar(2), city text, region text, x1 real,
            x2 double precision, x3 integer, x4 numeric(12, 3), flag boolean, vec real[], y {})"""

#: every encoding, impute rule and scaler, over two configurations
PREPROCESS: dict[str, dict[str, Any]] = {
    "A": {
        "color": {"encode": "one_hot", "impute": "mode"},
        "size": {"encode": {"ordinal": SIZES}, "impute": "min", "scale": "min_max"},
        "city": {"encode": "target", "impute": "median", "scale": "standard"},
        "region": {"encode": "target"},  # impute error: unseen is an error
        "x1": {"impute": "mean", "scale": "standard"},
        "x2": {"impute": "min", "scale": "min_max"},
        "x3": {"impute": "max", "scale": "max_abs"},
        "x4": {"impute": "zero", "scale": "robust"},
        "flag": {"impute": "mode"},
        "vec": {"impute": "mean", "scale": "standard"},
    },
    "B": {
        "color": {"encode": "native", "impute": "zero", "scale": "robust"},
        "size": {"encode": {"ordinal": SIZES}},  # impute error: unseen is an error
        "city": {"encode": "one_hot"},  # impute error: unseen is an error
        "region": {"encode": "native", "impute": "median"},
        "x1": {"impute": "median", "scale": "min_max"},
        "x2": {},  # impute error, preserve
        "x3": {"impute": "mode", "scale": "standard"},
        "x4": {"impute": "mean", "scale": "max_abs"},
        "flag": {"impute": "max"},
        "vec": {"impute": "zero", "scale": "robust"},
    },
}

#: unscaled float4 columns: trees read in float32 take the float's own value (the fast path)
PREPROCESS["C"] = {**PREPROCESS["A"], "x1": {"impute": "mean"}, "vec": {"impute": "zero"}}

SMALL = {
    "xgboost": {"n_estimators": 20, "max_depth": 3},
    "lightgbm": {"n_estimators": 20, "num_leaves": 8, "verbose": -1},
    "random_forest": {"n_estimators": 8, "max_depth": 6},
    "extra_trees": {"n_estimators": 8, "max_depth": 6},
    "gradient_boosting_trees": {"n_estimators": 15, "max_depth": 3},
}

#: (algorithm, task, configuration): every natively compiled family on every task
CASES = [
    ("xgboost", "regression", "A"),
    ("xgboost", "binary", "B"),
    ("xgboost", "multiclass", "A"),
    ("lightgbm", "regression", "B"),
    ("lightgbm", "binary", "A"),
    ("lightgbm", "multiclass", "B"),
    ("random_forest", "regression", "A"),
    ("random_forest", "binary", "B"),
    ("random_forest", "multiclass", "B"),
    ("extra_trees", "regression", "B"),
    ("gradient_boosting_trees", "regression", "A"),
    ("gradient_boosting_trees", "binary", "A"),
    ("gradient_boosting_trees", "multiclass", "B"),
    ("linear", "regression", "B"),
    ("ridge", "regression", "A"),
    ("linear", "binary", "A"),
    ("linear", "multiclass", "B"),
    ("linear", "text_labels", "A"),
    ("xgboost", "regression", "C"),
    ("random_forest", "binary", "C"),
    ("lightgbm", "regression", "C"),
]


def _nullable(config: str) -> set[str]:
    return {c for c, rule in PREPROCESS[config].items() if rule.get("impute", "error") != "error"}


def _rows(n: int, config: str, seed: int, probe: bool) -> list[dict[str, Any]]:
    """Random rows; probes add unseen categories, NULLs and wider value ranges."""
    rng = np.random.default_rng(seed)
    nullable = _nullable(config)
    spread = 3.0 if probe else 1.0
    rows = []
    for i in range(n):
        def pick(values: list[str], column: str) -> str:
            # unseen categories only where an impute rule fills them: without one, an
            # unseen category is an error on both paths (tests/test_pgml_compat.py)
            if probe and column in nullable and rng.random() < 0.1:
                return f"unseen-{column}"
            return str(values[rng.integers(len(values))])

        vec: list[float | None] | None = [float(v) for v in rng.normal(size=3) * spread]
        row: dict[str, Any] = {
            "id": i,
            "color": pick(COLORS, "color"),
            "size": pick(SIZES, "size")[:2],
            "city": pick(CITIES, "city"),
            "region": pick(REGIONS, "region"),
            "x1": float(np.float32(rng.normal() * 10 * spread)),
            "x2": float(rng.normal() * spread),
            "x3": int(rng.integers(-50, 50) * spread),
            "x4": round(float(rng.normal() * 100 * spread), 3),
            "flag": bool(rng.random() < 0.3),
            "vec": vec,
        }
        for column in nullable:
            if rng.random() < (0.15 if probe else 0.05):
                row[column] = None
        if row["vec"] is not None and "vec" in nullable and rng.random() < 0.2:
            assert vec is not None
            vec[int(rng.integers(3))] = None
        rows.append(row)
    return rows


def _label(row: dict[str, Any], task: str) -> Any:
    score = (
        COLORS.index(row["color"]) * 0.7 if row["color"] in COLORS else 0.0
    ) + (row["x1"] or 0.0) / 10 + (row["x2"] or 0.0) + (1.0 if row["flag"] else 0.0) + (
        CITIES.index(row["city"]) * 0.3 if row["city"] in CITIES else 0.0
    ) + float(np.nansum([v if v is not None else np.nan for v in row["vec"] or []]))
    if task == "regression":
        return score
    if task == "binary":
        return int(score > 1.5)
    cls = 0 if score < 0.8 else 1 if score < 2.5 else 2
    return ["lo", "mid", "hi"][cls] if task == "text_labels" else cls


def _fill(conn: psycopg.Connection, table: str, rows: list[dict[str, Any]], y_type: str,
          task: str | None) -> None:
    conn.execute(f"CREATE TABLE {table} {TABLE.format(y_type)}")
    names = ["id", *COLUMNS.split(", "), "y"]
    with conn.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            label = _label(row, task) if task else None
            copy.write_row([*(row[c] for c in names[:-1]), label])


@pytest.fixture
def sql(native_db) -> Iterator[psycopg.Connection]:
    with native_db.connect() as conn:
        yield conn


def _train(conn: psycopg.Connection, project: str, algorithm: str, task: str,
           config: str) -> int:
    y_type = {"regression": "double precision", "text_labels": "text"}.get(task, "integer")
    _fill(conn, "train_rows", _rows(300, config, seed=1, probe=False), y_type, task)
    conn.execute("CREATE VIEW train_view AS SELECT " + COLUMNS + ", y FROM train_rows")
    conn.execute(
        "SELECT * FROM pgml.train(%s, %s, 'train_view', 'y', %s::pgml.algorithm, %s::jsonb,"
        " preprocess => %s::jsonb)",
        (project, "regression" if task == "regression" else "classification", algorithm,
         json.dumps(SMALL.get(algorithm, {})), json.dumps(PREPROCESS[config])),
    )
    (model_id,) = conn.execute(
        "SELECT max(id) FROM pgml.models m WHERE project_id = "
        "(SELECT id FROM pgml.projects WHERE name = %s)", (project,)
    ).fetchone()
    return int(model_id)


def _blob_version(conn: psycopg.Connection, model_id: int) -> int | None:
    row = conn.execute(
        "SELECT get_byte(data, 8) FROM pgml.files WHERE model_id = %s AND path = 'native'"
        " AND part = 0", (model_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def _check_equal(task: str, native_out: list[float], python_out: list[float]) -> None:
    got, want = np.asarray(native_out, dtype=float), np.asarray(python_out, dtype=float)
    assert got.shape == want.shape and len(got) > 0
    if task == "regression":
        scale = max(1.0, float(np.abs(want).max()))
        # both are float4 of a double: equal up to float32 rounding
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("algorithm", "task", "config"), CASES,
                         ids=[f"{a}-{t}-{c}" for a, t, c in CASES])
def test_native_row_form_equals_python_path(sql, native_db, algorithm, task, config):
    model_id = _train(sql, "rows", algorithm, task, config)
    assert _blob_version(sql, model_id) == native.ROW_FORMAT_VERSION
    _fill(sql, "probe", _rows(400, config, seed=2, probe=True), "integer", None)
    with native_db.connect() as fresh:
        # a table row (extra columns id and y: matched by name), then ROW(...) by position
        (by_name,) = fresh.execute(
            "SELECT array_agg(pgml.predict('rows', p) ORDER BY id) FROM probe p").fetchone()
        (positional,) = fresh.execute(
            f"SELECT array_agg(pgml.predict(%s::bigint, ROW({COLUMNS})) ORDER BY id) FROM probe",
            (model_id,)).fetchone()
        # served in C: the Python path never loaded the model in this session
        assert fresh.execute("SELECT count(*) FROM pgml.cached_models()").fetchone()[0] == 0
    (python,) = sql.execute(
        "SELECT array_agg(pgml._py_predict_row('rows', to_json(p)) ORDER BY id) FROM probe p"
    ).fetchone()
    _check_equal(task, by_name, python)
    _check_equal(task, positional, python)


def test_attribute_types_nulls_and_errors_as_python(sql, native_db):
    _train(sql, "types", "xgboost", "regression", "B")
    cases = [
        # integers and numerics into number columns, numbers and booleans into text columns
        "ROW('red', 'M'::bpchar, 'rome'::varchar, 'n'::name, 3, 1.25::numeric, 7::bigint,"
        " 2.5::real, true, ARRAY[1, 2, 3])",
        # (size and city have no impute rule: an unseen category there is an error)
        "ROW(5, 'S', 'oslo', true, 1.5::float8, 0.1::real, 3.0::numeric, 4.25, false,"
        " ARRAY[0.5, NULL, 2]::numeric[])",
        "ROW(12::smallint, 'L', 'kyiv', 7, 1.5::float8, 0.1::real, 3.0::numeric, 4.25, false,"
        " ARRAY[0.5, NULL, 2]::numeric[])",
        "ROW('blue', 'L', 'oslo', 's', NULL, -1.0, NULL, NULL, NULL, NULL::real[])",
        # types the native path leaves to Python: text into a number column, a date
        "ROW('red', 'S', 'lima', 'w', '3.5'::text, 1.0, 2, 3, true, ARRAY[1, 2, 3]::real[])",
        "ROW('red', 'S', 'lima', 'w', 1.0, 1.0, 2, 3, true, ARRAY[1.0, 2.0, 3.0]::float8[])",
        "ROW(current_date, 'S', 'lima', 'w', 1.0, 1.0, 2, 3, true, ARRAY[1, 2, 3]::real[])",
    ]
    for row in cases:
        native_out = sql.execute(f"SELECT pgml.predict('types', {row})").fetchone()[0]
        python_out = sql.execute(
            f"SELECT pgml._py_predict_row('types', to_json({row}))").fetchone()[0]
        assert native_out == pytest.approx(python_out, rel=1e-6, abs=1e-6), row
    # NULL where the rule is impute "error", an unseen category without an impute rule, a
    # wrong array length, wrong column count: the Python path's own errors
    for row, message in [
        ("ROW('red', true, 'lima', 'w', 1.0, 2.0, 2, 3, true, ARRAY[1, 2, 3])",
         "column 'size' has the value 'True', a category its train rows did not have"),
        ("ROW('red', 'S', 'lima', 'w', 1.0, NULL::float8, 2, 3, true, ARRAY[1, 2, 3])",
         "column 'x2' contains NULL values"),
        ("ROW('red', 'S', 'lima', 'w', 1.0, 2.0, 2, 3, true, ARRAY[1, 2])",
         "has a row of length 2"),
        ("ROW('red', 'S', 1.0)", "but the model expects the feature columns"),
    ]:
        with pytest.raises(psycopg.Error, match=message):
            sql.execute(f"SELECT pgml.predict('types', {row})")
    with pytest.raises(psycopg.Error, match="takes a record, got integer"):
        sql.execute("SELECT pgml.predict('types', 5)")


def test_extra_float_digits_and_float4_exactness(sql):
    """float4 inputs are read as to_json prints them; extra_float_digits <= 0 goes to Python."""
    _train(sql, "floats", "linear", "regression", "A")
    _fill(sql, "probe", _rows(300, "A", seed=5, probe=True), "integer", None)
    query = "SELECT array_agg(pgml.predict('floats', p) ORDER BY id) FROM probe p"
    (fast,) = sql.execute(query).fetchone()
    sql.execute("SET extra_float_digits = 0")
    (slow,) = sql.execute(query).fetchone()
    (python,) = sql.execute(
        "SELECT array_agg(pgml._py_predict_row('floats', to_json(p)) ORDER BY id) FROM probe p"
    ).fetchone()
    np.testing.assert_array_equal(slow, python)
    sql.execute("RESET extra_float_digits")
    (python,) = sql.execute(
        "SELECT array_agg(pgml._py_predict_row('floats', to_json(p)) ORDER BY id) FROM probe p"
    ).fetchone()
    _check_equal("regression", fast, python)


def test_models_without_row_section_answer_through_python(sql, native_db):
    """A blob from before row sections (version 1), and a model without any blob."""
    from pgml_flow import engine

    model_id = _train(sql, "old", "xgboost", "regression", "A")
    files = sql.execute("SELECT path, data FROM pgml.files WHERE model_id = %s AND"
                        " path <> 'native' ORDER BY path, part", (model_id,)).fetchall()
    booster = engine.load_model(files).backend.booster
    old_blob = native.compile_model(booster)
    assert old_blob[8] == native.FORMAT_VERSION
    sql.execute("UPDATE pgml.files SET data = %s WHERE model_id = %s AND path = 'native'",
                (old_blob, model_id))
    _fill(sql, "probe", _rows(200, "A", seed=3, probe=True), "integer", None)
    with native_db.connect() as fresh:
        (served,) = fresh.execute(
            "SELECT array_agg(pgml.predict('old', p) ORDER BY id) FROM probe p").fetchone()
        # the array form of the old blob is still native
        (array_form,) = fresh.execute(
            "SELECT pgml.predict('old', array_fill(1, ARRAY[num_features])::real[])"
            " FROM pgml.models WHERE id = %s", (model_id,)
        ).fetchone()
        stats = fresh.execute("SELECT model_id FROM pgml.native_cache_stats()").fetchall()
        assert (model_id,) in stats
        assert array_form is not None
    (python,) = sql.execute(
        "SELECT array_agg(pgml._py_predict_row('old', to_json(p)) ORDER BY id) FROM probe p"
    ).fetchone()
    np.testing.assert_array_equal(served, python)

    sql.execute("DROP VIEW train_view")
    sql.execute("DROP TABLE train_rows")
    knn = _train(sql, "knn", "knn", "regression", "A")
    assert _blob_version(sql, knn) is None
    (served,) = sql.execute(
        "SELECT array_agg(pgml.predict('knn', p) ORDER BY id) FROM probe p").fetchone()
    (python,) = sql.execute(
        "SELECT array_agg(pgml._py_predict_row('knn', to_json(p)) ORDER BY id) FROM probe p"
    ).fetchone()
    np.testing.assert_array_equal(served, python)


# --------------------------------------------------------------------------- no database


def _snapshot() -> dict[str, Any]:
    from pgml_flow import engine

    rows = _rows(120, "A", seed=4, probe=False)
    columns = [(c, t) for c, t in [
        ("color", "text"), ("size", "varchar"), ("city", "text"), ("region", "text"),
        ("x1", "real"), ("x2", "float8"), ("x3", "int4"), ("x4", "numeric"), ("flag", "bool"),
        ("vec", "_float4"), ("y", "float8")]]
    data = [{**r, "y": _label(r, "regression")} for r in rows]
    return engine.prepare_dataset("regression", columns, data, "y",
                                  preprocess=PREPROCESS["A"]).columns


def test_row_section_refuses_what_it_cannot_express():
    from sklearn.linear_model import Ridge

    columns = _snapshot()
    width = sum(c["width"] for c in columns["features"])
    est = Ridge().fit(np.random.default_rng(0).normal(size=(50, width)), np.arange(50))
    blob = native.compile_model(est, columns=columns)
    assert blob[8] == native.ROW_FORMAT_VERSION
    assert native.add_row_section(native.compile_model(est), columns) == blob
    for change, message in [
        (lambda c: c.update(format=2), "format 2"),
        (lambda c: c["features"][0]["preprocess"].update(encode="hash"), "encoding 'hash'"),
        (lambda c: c["features"][4].update(fill=[float("inf")]), "fill is not finite"),
        (lambda c: c["features"][4].update(kind="date"), "kind 'date'"),
        (lambda c: c["features"].pop(), "make"),
    ]:
        broken = json.loads(json.dumps(columns))
        change(broken)
        with pytest.raises(native.NotCompilable, match=message):
            native.compile_model(est, columns=broken)


def test_row_section_parses_and_rejects_corruption(native_lib):
    from sklearn.linear_model import Ridge

    columns = _snapshot()
    width = sum(c["width"] for c in columns["features"])
    est = Ridge().fit(np.random.default_rng(0).normal(size=(50, width)), np.arange(50))
    blob = native.compile_model(est, columns=columns)
    native_lib.load(blob)
    native_lib.load(native.compile_model(est))  # version 1 still reads
    for cut in range(64, len(blob) - 4, 37):
        body = blob[:cut]
        header = bytearray(body[:64])
        header[56:64] = struct.pack("<Q", cut - 64)
        broken = bytes(header) + body[64:]
        with pytest.raises(NativeError):
            native_lib.load(broken + struct.pack("<I", zlib.crc32(broken) & 0xFFFFFFFF))
    v1_with_row = bytearray(blob[:-4])
    v1_with_row[8] = 1
    with pytest.raises(NativeError, match="row section in a version 1 blob"):
        native_lib.load(bytes(v1_with_row) + struct.pack("<I", zlib.crc32(v1_with_row)))
