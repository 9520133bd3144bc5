"""Regression tutorial flows: diabetes over many algorithms, linnerud joint regression."""

from __future__ import annotations

import numpy as np
import pytest

from pgml_flow.engine import available_algorithms, key_metric, prepare_dataset, train
from pgml_flow.engine.errors import InvalidArgument

from . import toy

# Slow or degenerate-on-diabetes estimators are covered by the cheap smoke loop below.
FAST_GOOD = [
    "linear",
    "ridge",
    "lasso",
    "bayesian_ridge",
    "least_angle",
    "knn",
    "random_forest",
    "xgboost",
    "lightgbm",
    "extra_trees",
    "gradient_boosting_trees",
    "huber",
]


@pytest.fixture(scope="module")
def diabetes():
    columns, rows = toy.diabetes()
    return prepare_dataset("regression", columns, rows, "target", test_size=0.25)


def test_diabetes_shapes(diabetes):
    assert diabetes.num_features == 10
    assert len(diabetes.x_train) + len(diabetes.x_test) == 442
    assert len(diabetes.x_test) == 111  # ceil(442 * 0.25)
    assert diabetes.classes is None


@pytest.mark.parametrize("algorithm", FAST_GOOD)
def test_diabetes_algorithms(diabetes, algorithm):
    result = train("regression", algorithm, diabetes)
    m = result.metrics
    assert {"r2", "mean_absolute_error", "mean_squared_error", "fit_time", "score_time"} <= set(m)
    assert 0.1 < m["r2"] < 0.8, m
    assert 30 < m["mean_absolute_error"] < 70
    assert m["mean_squared_error"] > m["mean_absolute_error"]
    assert result.key_metric == m["r2"] and key_metric("regression") == "r2"
    assert result.num_features == 10
    pred = result.model.predict(diabetes.x_test)
    assert pred.shape == (len(diabetes.x_test),)


def test_every_regression_algorithm_trains(diabetes):
    """Each algorithm of the regression registry fits, saves, reloads and predicts."""
    small = prepare_dataset("regression", *toy.diabetes()[:1], toy.diabetes()[1][:120], "target")
    slow = {"gaussian_process", "theil_sen"}
    for algorithm in available_algorithms("regression"):
        hyperparams = {"n_estimators": 10} if algorithm == "catboost" else {}
        data = small if algorithm in slow else diabetes
        result = train("regression", algorithm, data, hyperparams)
        assert np.isfinite(result.model.predict(data.x_test)).all(), algorithm
        assert result.metrics["r2"] is not None, algorithm


def test_diabetes_grid_search(diabetes):
    result = train(
        "regression",
        "xgboost",
        diabetes,
        hyperparams={"n_estimators": 20},
        search="grid",
        search_params={"max_depth": [1, 2, 6], "learning_rate": [0.1, 0.3]},
        search_args={"cv": 3},
    )
    results = result.metrics["search_results"]
    assert len(results["params"]) == 6
    assert results["cv"] == 3 and results["scoring"] == "r2"
    best = results["params"][int(np.argmax(results["mean_test_score"]))]
    assert results["best_params"] == best
    assert result.hyperparams == {"n_estimators": 20, **best}
    assert sorted(results["rank_test_score"]) == list(range(1, 7))
    # shallow trees generalize better than depth 6 on this small set
    assert best["max_depth"] in (1, 2)
    assert result.metrics["r2"] > 0.3


def test_linnerud_joint(tmp_path):
    columns, rows = toy.linnerud()
    data = prepare_dataset(
        "regression", columns, rows, toy.LINNERUD_TARGETS, test_size=5, test_sampling="random"
    )
    assert data.y_train is not None and data.y_train.shape == (15, 3)
    for algorithm in ("linear", "xgboost", "lightgbm", "svm", "random_forest"):
        result = train("regression", algorithm, data)
        joint = result.model.predict_joint(data.x_test)
        assert joint.shape == (5, 3), algorithm
        assert result.metrics["r2"] is not None
        assert result.model.num_outputs == 3
        with pytest.raises(InvalidArgument, match="predict_joint"):
            result.model.predict(data.x_test)
    # a natively multi-output estimator is not wrapped
    linear = train("regression", "linear", data)
    assert type(linear.model.backend.estimator).__name__ == "LinearRegression"


def test_joint_classification_is_rejected():
    columns, rows = toy.linnerud()
    with pytest.raises(InvalidArgument, match="one label column"):
        prepare_dataset("classification", columns, rows, toy.LINNERUD_TARGETS)


def test_text_label_for_regression_is_rejected():
    columns, rows = toy.iris()
    with pytest.raises(Exception, match="regression needs a number"):
        prepare_dataset("regression", columns, rows, "target")
