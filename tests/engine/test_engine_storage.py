"""Model files round trip: reloaded predictions equal the library's own, exactly."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from pgml_flow.engine import dump_model, load_model, prepare_dataset, train
from pgml_flow.engine.algorithms import make_estimator
from pgml_flow.engine.errors import IncompatibleModel

from . import toy

CLASSIFIERS = [
    ("xgboost", "booster.json"),
    ("xgboost_random_forest", "booster.json"),
    ("lightgbm", "booster.0.txt"),
    ("random_forest", "estimator.pkl"),
    ("linear_svm", "estimator.pkl"),
]
CASES = [
    *(
        ("classification", kind, alg, path)
        for kind in ("multiclass", "binary")
        for alg, path in CLASSIFIERS
    ),
    ("regression", "regression", "xgboost", "booster.json"),
    ("regression", "regression", "lightgbm", "booster.0.txt"),
    ("regression", "regression", "ridge", "estimator.pkl"),
]


@pytest.fixture(scope="module")
def datasets():
    iris_cols, iris_rows = toy.iris()
    cancer_cols, cancer_rows = toy.breast_cancer()
    diabetes_cols, diabetes_rows = toy.diabetes()
    return {
        "multiclass": prepare_dataset("classification", iris_cols, iris_rows, "target"),
        "binary": prepare_dataset("classification", cancer_cols, cancer_rows, "malignant"),
        "regression": prepare_dataset("regression", diabetes_cols, diabetes_rows, "target"),
    }


def _fit(task, algorithm, data):
    estimator = make_estimator(
        task,
        algorithm,
        {"n_estimators": 20} if "boost" in algorithm or algorithm == "lightgbm" else {},
    )
    estimator.fit(data.x_train, data.y_train)
    return estimator


@pytest.mark.parametrize(("task", "kind", "algorithm", "path"), CASES)
def test_round_trip_equals_library_predictions(datasets, task, kind, algorithm, path):
    data = datasets[kind]
    estimator = _fit(task, algorithm, data)
    files = dump_model(
        estimator,
        task=task,
        algorithm=algorithm,
        num_features=data.num_features,
        classes=data.classes,
    )
    assert [p for p, _ in files] == ["meta.json", path]
    model = load_model(files)
    x = data.x_test
    if task == "classification":
        np.testing.assert_array_equal(model.predict_codes(x), estimator.predict(x))
        if hasattr(estimator, "predict_proba"):
            np.testing.assert_array_equal(model.predict_proba(x), estimator.predict_proba(x))
    else:
        np.testing.assert_array_equal(model.predict(x), estimator.predict(x))
    # single rows give the same answer as the batch
    for i in range(3):
        assert model.predict(x[i]).tolist() == model.predict(x[i : i + 1]).tolist()


def test_catboost_round_trip(datasets):
    # installed by ./dev (pyproject.toml) and the db image: this test must not skip
    data = datasets["binary"]
    estimator = make_estimator("classification", "catboost", {"iterations": 20})
    estimator.fit(data.x_train, data.y_train)
    files = dump_model(
        estimator,
        task="classification",
        algorithm="catboost",
        num_features=data.num_features,
        classes=data.classes,
    )
    model = load_model(files)
    np.testing.assert_array_equal(
        model.predict_proba(data.x_test), estimator.predict_proba(data.x_test)
    )


def test_joint_lightgbm_stores_one_booster_per_output():
    columns, rows = toy.linnerud()
    data = prepare_dataset("regression", columns, rows, toy.LINNERUD_TARGETS, test_size=5)
    result = train("regression", "lightgbm", data, {"min_child_samples": 2})
    assert [p for p, _ in result.files] == ["meta.json", *(f"booster.{i}.txt" for i in range(3))]
    estimator = make_estimator("regression", "lightgbm", {"min_child_samples": 2}, joint=True)
    estimator.fit(data.x_train, data.y_train)
    np.testing.assert_array_equal(
        result.model.predict_joint(data.x_test), estimator.predict(data.x_test)
    )


def test_xgboost_scored_without_reload_and_older_ubjson_files(datasets):
    """check_stored=False scores the fitted model: the same metrics as the reloaded one
    (XGBoost's JSON is exact); and a model stored before as UBJSON still loads."""
    data = datasets["binary"]
    params = {"n_estimators": 10}
    reloaded = train("classification", "xgboost", data, params)
    fitted = train("classification", "xgboost", data, params, check_stored=False)
    assert reloaded.stored_checked and not fitted.stored_checked
    assert fitted.files == reloaded.files
    drop = ("fit_time", "score_time")
    assert ({k: v for k, v in fitted.metrics.items() if k not in drop}
            == {k: v for k, v in reloaded.metrics.items() if k not in drop})
    files = dict(fitted.files)
    meta = json.loads(files.pop("meta.json"))
    meta["files"] = ["booster.ubj"]
    files["booster.ubj"] = bytes(fitted.estimator.get_booster().save_raw("ubj"))
    older = load_model([("meta.json", json.dumps(meta).encode()), *files.items()])
    x = data.x_test
    np.testing.assert_array_equal(older.predict_proba(x), fitted.model.predict_proba(x))
    codes, proba = fitted.model.predict_codes_and_proba(x)
    np.testing.assert_array_equal(codes, reloaded.model.predict_codes(x))
    np.testing.assert_array_equal(proba, reloaded.model.predict_proba(x))


def test_meta_records_what_the_sql_layer_needs(datasets):
    result = train("classification", "linear", datasets["multiclass"])
    meta = json.loads(dict(result.files)["meta.json"])
    assert meta["task"] == "classification" and meta["algorithm"] == "linear"
    assert meta["num_features"] == 4 and meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert {"python", "numpy", "sklearn"} <= set(meta["versions"])
    assert meta["feature_names"][0] == "sepal_length"


def test_parts_are_concatenated_in_order(datasets):
    result = train("regression", "ridge", datasets["regression"])
    split = []
    for path, data in result.files:
        split += [(path, memoryview(data[i : i + 100])) for i in range(0, len(data), 100)]
    model = load_model(split)
    x = datasets["regression"].x_test
    np.testing.assert_array_equal(model.predict(x), result.model.predict(x))


def test_sklearn_version_mismatch_is_a_clear_error(datasets):
    result = train("regression", "ridge", datasets["regression"])
    files = dict(result.files)
    meta = json.loads(files["meta.json"])
    meta["versions"]["sklearn"] = "0.24.2"
    files["meta.json"] = json.dumps(meta).encode()
    with pytest.raises(
        IncompatibleModel,
        match=r"scikit-learn 0\.24\.2 but the server has "
        r"scikit-learn \d.*retrain it with pgml.train",
    ):
        load_model(files.items())


def test_corrupt_native_model_is_a_clear_error(datasets):
    result = train("regression", "xgboost", datasets["regression"], {"n_estimators": 5})
    files = dict(result.files)
    files["booster.json"] = b"garbage"
    with pytest.raises(IncompatibleModel, match="cannot load this xgboost model"):
        load_model(files.items())


def test_missing_files():
    with pytest.raises(IncompatibleModel, match=r"no meta\.json"):
        load_model([("estimator.pkl", pickle.dumps(1))])
    meta = {"format": 1, "files": ["estimator.pkl"]}
    with pytest.raises(IncompatibleModel, match=r"\['estimator.pkl'\] are missing"):
        load_model([("meta.json", json.dumps(meta).encode())])
