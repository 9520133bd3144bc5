"""The ``classes`` target option (engine.targets_classes): story points as classes, then the
MAE-optimal point.  Hand-computed merges and medians, the optimality of the median, the
option trained through the engine for each supported algorithm (metrics in points, stored
and reloaded), and the errors that say what to do.  No database; a second or two.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from pgml_flow import engine
from pgml_flow.engine.errors import DataError, InvalidArgument, InvalidPreprocess
from pgml_flow.engine.targets_classes import class_median, merge_classes


def test_merge_and_median_by_hand() -> None:
    # counts 1:3, 2:1, 3:3, 5:1, 8:3; with 3 rows a class: 2 is as near 1 as 3 (the
    # smaller wins), 5 is nearer 3 than 8
    values, codes = merge_classes(np.array([1, 1, 1, 2, 3, 3, 3, 5, 8, 8, 8.0]), 3)
    assert values.tolist() == [1.0, 3.0, 8.0]
    assert codes.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    scale = np.array([1.0, 3.0, 8.0])
    proba = np.array([[0.2, 0.3, 0.5],    # cumulative 0.2, 0.5: reaches half at 3
                      [0.5, 0.1, 0.4],    # half at the first class
                      [0.1, 0.1, 0.8],    # the mass is on 8
                      [0.6, 0.3, 0.1],
                      [0.1, 0.2, 0.7]])
    assert class_median(proba, scale).tolist() == [3.0, 1.0, 8.0, 1.0, 8.0]
    # row 1 by hand: E|3 - Y| = 0.2*2 + 0.5*5 = 2.9 = E|8 - Y| = 0.2*7 + 0.3*5 < E|1 - Y| =
    # 0.3*2 + 0.5*7 = 4.1: both medians are optimal and the lower one is served
    # (a mean would say 0.2 + 0.9 + 4 = 5.1, not a point of the scale, and worse: 3.14)
    # the median minimises the expected absolute error over the scale, on any distribution
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0])
    proba = rng.dirichlet(np.full(len(scale), 0.4), size=500)
    expected = (proba[:, None, :] * np.abs(scale[None, :, None] - scale[None, None, :])).sum(2)
    got = class_median(proba, scale)
    chosen = expected[np.arange(500), np.searchsorted(scale, got)]
    assert np.allclose(chosen, expected.min(axis=1))
    assert np.isnan(class_median(np.array([[np.nan, 0.5]]), np.array([1.0, 2.0]))[0])


def _rows(n: int = 240) -> tuple[list[tuple[str, str]], list[list[Any]]]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 2))
    points = np.array([1, 2, 3, 5, 8, 13])[np.clip((x[:, 0] * 1.5 + 2.5).astype(int), 0, 5)]
    points[:2] = 40  # a value with two rows: merged into 13, never predicted
    rows = [[float(a), float(b), float(p)] for (a, b), p in zip(x, points, strict=True)]
    return [("a", "float8"), ("b", "float8"), ("points", "float8")], rows


def test_classes_trained_for_each_algorithm_metrics_in_points() -> None:
    columns, rows = _rows()
    for algorithm, hyperparams in (("linear", {"max_iter": 500}),
                                   ("xgboost", {"n_estimators": 15, "max_depth": 2}),
                                   ("lightgbm", {"n_estimators": 15, "verbose": -1})):
        data = engine.prepare_dataset("regression", columns, rows, "points",
                                      preprocess={"points": {"classes": "median",
                                                             "min_class": 5}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = engine.train("regression", algorithm, data, hyperparams)
        model = result.model  # reloaded from the stored files
        assert data.y_train is not None and data.y_test is not None
        assert model.task == "regression"
        values = model.meta["target"]["class_values"]  # 40 and the rarest merged away
        assert model.meta["target"]["classes"] == "median" and 40.0 not in values
        assert values == merge_classes(data.y_train, 5)[0].tolist()
        served = model.predict(data.x_test)
        assert set(served.tolist()) <= set(values), algorithm
        assert np.isclose(result.metrics["mean_absolute_error"],
                          np.mean(np.abs(data.y_test - served)))
        floor = np.mean(np.abs(data.y_test - np.median(data.y_train)))  # points follow a
        assert result.metrics["mean_absolute_error"] < 0.6 * floor, algorithm
        assert result.metrics["target"]["class_values"] == values
        with pytest.raises(InvalidArgument, match="regression"):
            model.predict_proba(data.x_test)


@pytest.mark.parametrize(("preprocess", "algorithm", "match"), [
    ({"points": {"classes": "mean"}}, "linear", "classes must be one of"),
    ({"points": {"classes": "median", "snap": True}}, "linear", "without transform and snap"),
    ({"points": {"classes": "median", "min_class": 0}}, "linear", "min_class"),
    ({"points": {"min_class": 3}}, "linear", "min_class goes with classes"),
    ({"points": {"classes": "median", "min_class": 500}}, "linear",
     "needs two values of 'points'.*lower min_class"),
    ({"points": {"classes": "median"}}, "random_forest", "linear, xgboost, lightgbm"),
])
def test_classes_errors_say_what_to_do(preprocess: dict[str, Any], algorithm: str,
                                       match: str) -> None:
    columns, rows = _rows(60)
    with pytest.raises((InvalidPreprocess, InvalidArgument, DataError), match=match):
        data = engine.prepare_dataset("regression", columns, rows, "points",
                                      preprocess=preprocess)
        engine.train("regression", algorithm, data, {})
