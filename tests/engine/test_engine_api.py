"""Algorithm lookup and hyperparam errors, the real[] fast path, import cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pgml_flow.engine import (
    ALGORITHMS,
    available_algorithms,
    features_from_array,
    prepare_dataset,
    train,
)
from pgml_flow.engine.errors import (
    FeatureCountMismatch,
    InvalidHyperparams,
    NonFiniteFeature,
    TrainingFailed,
    UnsupportedAlgorithm,
)
from pgml_flow.engine.inputs import InputPolicy, check_features
from pgml_flow.errors import ModelError

from . import toy


@pytest.fixture(scope="module")
def iris():
    return prepare_dataset("classification", *toy.iris(), "target")


def test_importing_the_engine_loads_no_ml_library():
    code = (
        "import sys, pgml_flow.engine; "
        "print(sorted(m for m in ('sklearn', 'xgboost', 'lightgbm', 'catboost', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_enum_value_is_trainable_or_explained():
    covered = set()
    for task in ("regression", "classification", "clustering", "decomposition"):
        covered |= set(available_algorithms(task))
    assert set(ALGORITHMS) - covered <= {"transformers", "feature_agglomeration", "catboost"}


def test_unknown_hyperparam_names_it_and_the_algorithm(iris):
    with pytest.raises(
        InvalidHyperparams,
        match=r"unknown hyperparam 'n_trees' for algorithm 'random_forest'.*n_estimators",
    ):
        train("classification", "random_forest", iris, {"n_trees": 10})
    with pytest.raises(
        InvalidHyperparams, match="unknown hyperparam 'depth' for algorithm 'xgboost'"
    ):
        train("classification", "xgboost", iris, {"depth": 3})
    with pytest.raises(InvalidHyperparams, match="'lightgbm'"):
        train("classification", "lightgbm", iris, {"leaves": 3})


def test_native_booster_params_and_aliases_are_accepted(iris):
    assert train("classification", "xgboost", iris, {"eta": 0.5, "n_estimators": 5}).metrics
    assert train(
        "classification",
        "lightgbm",
        iris,
        {"num_leaves": 4, "num_iterations": 5, "min_data_in_leaf": 3},
    ).metrics


def test_invalid_hyperparam_value(iris):
    with pytest.raises(InvalidHyperparams, match=r"'knn'.*n_neighbors"):
        train("classification", "knn", iris, {"n_neighbors": "many"})


def test_algorithm_not_for_task(iris):
    with pytest.raises(
        UnsupportedAlgorithm,
        match="'lasso' is not available for task 'classification'; choose one of: linear",
    ):
        train("classification", "lasso", iris)
    with pytest.raises(UnsupportedAlgorithm, match="out of scope"):
        train("classification", "transformers", iris)
    with pytest.raises(UnsupportedAlgorithm, match="unknown algorithm 'deep'"):
        train("classification", "deep", iris)
    with pytest.raises(UnsupportedAlgorithm, match="unknown task 'ranking'"):
        prepare_dataset("ranking", *toy.iris(), "target")


def test_errors_are_model_errors():
    assert issubclass(UnsupportedAlgorithm, ModelError)
    assert issubclass(TrainingFailed, ModelError)


def test_knn_is_trainable_and_deterministic(iris):
    a = train("classification", "knn", iris)
    b = train("classification", "random_forest", iris)
    c = train("classification", "random_forest", iris)
    assert a.metrics["accuracy"] > 0.9
    np.testing.assert_array_equal(
        b.model.predict_proba(iris.x_test), c.model.predict_proba(iris.x_test)
    )


def test_warnings_are_reported(iris):
    result = train("classification", "linear", iris, {"max_iter": 2})
    assert any("ConvergenceWarning" in w for w in result.warnings)


def test_features_from_array(iris):
    model = train("classification", "linear", iris).model
    x = features_from_array([5.1, 3.5, 1.4, 0.2], model.num_features)
    assert x.shape == (1, 4) and model.predict(x).tolist() == [0.0]
    batch = features_from_array([5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3], 4, batch=True)
    assert model.predict(batch).tolist() == [0.0, 2.0]
    assert np.isnan(features_from_array([1, np.nan, 3], 3)).tolist() == [[False, True, False]]
    with pytest.raises(NonFiniteFeature, match="feature 2 is NULL"):  # as PostgresML
        features_from_array([1, None, 3], 3)
    with pytest.raises(FeatureCountMismatch, match="expected 4 features, got 3"):
        features_from_array([1.0, 2.0, 3.0], 4)
    with pytest.raises(FeatureCountMismatch, match="expected 4 features per row"):
        features_from_array([1.0] * 6, 4, batch=True)
    with pytest.raises(FeatureCountMismatch, match="expected 4 features, got 5"):
        model.predict(np.ones((2, 5)))
    assert features_from_array([], 4, batch=True).shape == (0, 4)  # zero rows


def test_non_finite_features_are_named(iris):
    """A value the library refuses is an error naming the feature, as the library decides."""
    model = train("classification", "linear", iris).model
    assert (model.policy.nan, model.policy.inf) == (False, False)
    with pytest.raises(NonFiniteFeature, match=r"^feature 2 is NaN or NULL, a missing value "
                       r"linear models cannot score; impute it") as info:
        model.predict(features_from_array([5.1, np.nan, 1.4, 0.2], 4))
    assert info.value.sqlstate == "22023" and "coalesce" in (info.value.hint or "")
    with pytest.raises(NonFiniteFeature, match=r"^row 2, feature 4 is -Infinity, which linear"):
        model.predict_proba(np.array([[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4, -np.inf]]))
    forest = InputPolicy(nan=True, inf=False, float32=True)
    check_features(np.array([[np.nan, 1.0]]), forest, "random_forest")  # scored
    with pytest.raises(NonFiniteFeature, match=r"^column 'b' is 1e\+300 \(beyond the range of "
                       r"real\), which random_forest models"):
        check_features(np.array([[np.nan, 1e300]]), forest, "random_forest",
                       ["column 'a'", "column 'b'"])
    check_features(np.array([[1e300, 1.0]]), InputPolicy(nan=False, inf=False), "linear")
    assert train("classification", "xgboost", iris, {"n_estimators": 3}).model.predict(
        np.array([[np.nan, np.inf, -np.inf, 0.2]])).shape == (1,)
