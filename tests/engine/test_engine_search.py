"""search / search_params / search_args validation and random search."""

from __future__ import annotations

import pytest

from pgml_flow.engine import prepare_dataset, train
from pgml_flow.engine.errors import InvalidHyperparams, SplitError

from . import toy


@pytest.fixture(scope="module")
def iris():
    return prepare_dataset("classification", *toy.iris(), "target")


def test_random_search_samples_n_iter(iris):
    result = train(
        "classification",
        "knn",
        iris,
        search="random",
        search_params={"n_neighbors": [1, 3, 5, 7, 9, 11], "weights": ["uniform", "distance"]},
        search_args={"n_iter": 4, "cv": 3},
    )
    results = result.metrics["search_results"]
    assert len(results["params"]) == 4 and results["search"] == "random"
    assert results["scoring"] == "f1"
    assert all(0.8 < s <= 1 for s in results["mean_test_score"])
    assert set(result.hyperparams) == {"n_neighbors", "weights"}
    again = train(
        "classification",
        "knn",
        iris,
        search="random",
        search_params={"n_neighbors": [1, 3, 5, 7, 9, 11], "weights": ["uniform", "distance"]},
        search_args={"n_iter": 4, "cv": 3},
    )
    assert again.metrics["search_results"]["params"] == results["params"]  # deterministic


def test_default_cv_is_five(iris):
    result = train(
        "classification", "knn", iris, search="grid", search_params={"n_neighbors": [3, 5]}
    )
    assert result.metrics["search_results"]["cv"] == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {
                "hyperparams": {"n_neighbors": 3},
                "search": "grid",
                "search_params": {"n_neighbors": [1, 2]},
            },
            "'n_neighbors' given in both",
        ),
        ({"search": "grid", "search_params": {"n_neighbors": 3}}, "must be a non-empty JSON array"),
        (
            {"search": "grid", "search_params": {"neighbours": [3]}},
            "unknown search_param 'neighbours' for algorithm 'knn'",
        ),
        ({"search": "grid", "search_args": {"folds": 3}}, r"unknown search_args \['folds'\]"),
        ({"search": "grid", "search_args": {"cv": 0}}, "cv must be a positive integer"),
        ({"search": "random", "search_args": {"n_iter": "ten"}}, "n_iter must be a positive"),
        ({"search": "bayes"}, "unknown search 'bayes'"),
        ({"search_params": {"n_neighbors": [1]}}, "search is NULL"),
        ({"hyperparams": [1, 2]}, "hyperparams must be a JSON object"),
    ],
)
def test_invalid_search(iris, kwargs, message):
    with pytest.raises(InvalidHyperparams, match=message):
        train("classification", "knn", iris, **kwargs)


def test_cv_needs_enough_rows_per_class():
    columns, rows = toy.iris()
    small = rows[:8] + rows[50:58] + rows[100:108]
    data = prepare_dataset("classification", columns, small, "target")
    with pytest.raises(SplitError, match="smallest class has 6"):
        train(
            "classification",
            "knn",
            data,
            search="grid",
            search_params={"n_neighbors": [1]},
            search_args={"cv": 10},
        )


def test_failing_candidate_names_its_params(iris):
    with pytest.raises(Exception, match=r"with \{'n_neighbors': -1\} failed to train"):
        train("classification", "knn", iris, search="grid", search_params={"n_neighbors": [-1]})
