"""The ``classes`` target option (engine.targets_classes) on the C scorer vs the Python path.

A classifier read as the lower weighted median of its class probabilities over the class
values: the C core (the blob's output section, transform 2) must serve what
:class:`pgml_flow.engine.predict.Model` serves, for multinomial and binary logistic
regression, XGBoost and LightGBM; and in the database, ``pgml.predict`` of such a model
trained by ``pgml.train`` with tf-idf text must be answered in C in both forms (ROW and
``real[]``), equal to the Python path, and refuse ``pgml.predict_proba`` as any regression.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from conftest import NativeError, NativeLib

from pgml_flow import engine
from pgml_flow.engine import native

N = 300


def _dataset(points: np.ndarray, x: np.ndarray) -> Any:
    columns = [("a", "float8"), ("b", "float8"), ("c", "float8"), ("y", "float8")]
    rows = [[None if np.isnan(v) else float(v) for v in r] + [float(points[i])]
            for i, r in enumerate(x)]
    preprocess = {c: {"impute": "mean"} for c in "abc"} | {"y": {"classes": "median"}}
    return engine.prepare_dataset("regression", columns, rows, "y", preprocess=preprocess)


def test_class_median_matches_python_in_c(native_lib: NativeLib) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N, 3))
    x[rng.random(x.shape) < 0.05] = np.nan
    z = np.nan_to_num(x)
    scale = np.array([1, 2, 3, 5, 8, 13])
    cases = [("points", scale[np.clip((z[:, 0] * 1.5 + 2.5 + 0.7 * rng.normal(size=N))
                                      .astype(int), 0, 5)]),
             ("two values", np.where(z[:, 1] + rng.normal(size=N) > 0, 8.0, 3.0))]
    for label, points in cases:
        for algorithm, hyperparams in (("linear", {"max_iter": 500}),
                                       ("xgboost", {"n_estimators": 20, "max_depth": 2}),
                                       ("lightgbm", {"n_estimators": 20, "verbose": -1})):
            data = _dataset(points, x)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = engine.train("regression", algorithm, data, hyperparams)
            target = result.model.meta["target"]
            blob = native.add_output_section(native.compile_model(result.estimator), target)
            scorer = native_lib.load(blob)
            x32 = np.vstack([data.x_test, data.x_train]).astype(np.float32).astype(np.float64)
            python = result.model.predict(x32)
            assert np.array_equal(scorer.predict(x32), python), (label, algorithm)
            assert len(set(python.tolist())) > 1, (label, algorithm)  # not a constant
    # a scale that is not one value per class is refused by the C core, not misread
    with pytest.raises(NativeError, match="one value per class"):
        native_lib.load(native.add_output_section(native.compile_model(result.estimator),
                                                  {**target, "class_values": [1.0, 2.0, 3.0]}))


def test_pgml_train_classes_with_text_served_natively_in_both_forms(native_db: Any) -> None:
    """pgml.train with tf-idf text and the classes option: a native blob with its row
    section; pgml.predict of ROW(...) and of real[] answered in C, equal to the Python
    path (pgml._py_predict_row, the stored model loaded here); predict_proba refused."""
    import psycopg

    rng = np.random.default_rng(4)
    words = ["login", "cache", "refactor", "typo", "crash", "api", "migration", "ui"]
    size = {"typo": 1, "ui": 2, "login": 3, "api": 3, "cache": 5, "crash": 5,
            "refactor": 8, "migration": 13}
    rows = []
    for i in range(220):
        w = [str(v) for v in rng.choice(words, size=int(rng.integers(1, 4)))]
        points = max(size[v] for v in w) if rng.random() < 0.8 else int(rng.choice([1, 3, 5]))
        rows.append((f"{' '.join(w)} issue {i}", float(len(w)), float(points)))
    with native_db.connect() as conn:
        conn.execute("CREATE TABLE items (id serial, title text, n real, points float8)")
        with conn.cursor().copy("COPY items (title, n, points) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        conn.execute("CREATE VIEW train AS SELECT title, n, points FROM items")
        conn.execute("CREATE VIEW numbers AS SELECT n, length(title)::real AS l, points "
                      "FROM items")
        conn.execute(
            "SELECT * FROM pgml.train('sp_text', 'regression', 'train', 'points', 'linear',"
            " '{\"max_iter\": 1000}', preprocess => '{\"title\": {\"text\": \"tfidf\","
            " \"ngram\": [1, 2]}, \"n\": {\"scale\": \"max_abs\"},"
            " \"points\": {\"classes\": \"median\", \"min_class\": 5}}')")
        conn.execute(
            "SELECT * FROM pgml.train('sp_numbers', 'regression', 'numbers', 'points',"
            " 'xgboost', '{\"n_estimators\": 10, \"max_depth\": 2}',"
            " preprocess => '{\"points\": {\"classes\": \"median\"}}')")
        (_, version), (numbers_id, _) = conn.execute(
            "SELECT m.id, get_byte(f.data, 8) FROM pgml.models m JOIN pgml.files f"
            " ON f.model_id = m.id AND f.path = 'native' AND f.part = 0"
            " ORDER BY m.id").fetchall()
        assert version == native.ROW_FORMAT_VERSION  # the row section: text compiled
        files = conn.execute("SELECT path, data FROM pgml.files WHERE model_id = %s AND path"
                             " <> 'native' ORDER BY path, part", (numbers_id,)).fetchall()
    numbers_model = engine.load_model([(p, bytes(d)) for p, d in files])
    x = np.array([[r[1], float(len(r[0]))] for r in rows], dtype=np.float32)
    with native_db.connect() as fresh:  # a session where Python never loads the models
        (by_row,) = fresh.execute(
            "SELECT array_agg(pgml.predict('sp_text', ROW(title, n)) ORDER BY id)"
            " FROM items").fetchone()
        (by_array,) = fresh.execute(
            "SELECT array_agg(pgml.predict('sp_numbers', ARRAY[n, length(title)]::real[])"
            " ORDER BY id) FROM items").fetchone()
        assert fresh.execute("SELECT count(*) FROM pgml.cached_models()").fetchone()[0] == 0
        (python,) = fresh.execute(
            "SELECT array_agg(pgml._py_predict_row('sp_text', to_json(i)) ORDER BY id)"
            " FROM (SELECT id, title, n FROM items) i").fetchone()
        with pytest.raises(psycopg.Error, match="regression"):
            fresh.execute("SELECT pgml.predict_proba('sp_numbers', ARRAY[1, 2]::real[])")
    assert by_row == python and set(python) <= {1.0, 2.0, 3.0, 5.0, 8.0, 13.0}
    assert len(set(python)) >= 4  # the words move the points
    np.testing.assert_array_equal(by_array, numbers_model.predict(x.astype(np.float64)))
