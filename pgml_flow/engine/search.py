"""Hyperparameter search: ``search`` / ``search_params`` / ``search_args`` of pgml.train.

``grid`` tries every combination of ``search_params`` (each value a JSON array);
``random`` samples ``search_args.n_iter`` (default 10) of them; each candidate is
scored by the task's key metric with ``search_args.cv``-fold cross-validation
(default 5; stratified for classification) on the TRAIN rows; ``cv`` 1, as in
PostgresML, fits each candidate on the train rows and scores it on the test rows.
Results are stored under PostgresML's ``search_results`` keys (:func:`search_results`).
The loop is our own rather than GridSearchCV so the score is exactly the key metric stored in
``pgml.models.metrics`` (silhouette, explained variance included), and so a candidate
that fails names its params.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgml_flow.engine import metrics, parallel
from pgml_flow.engine.algorithms import check_hyperparams, make_estimator, set_params
from pgml_flow.engine.errors import InvalidHyperparams, SplitError, TrainingFailed

SEARCHES = ("grid", "random")
SEARCH_ARGS = {"n_iter": 10, "cv": 5}


@dataclass
class SearchResult:
    best_params: dict[str, Any]
    #: JSON for ``metrics["search_results"]``
    results: dict[str, Any]


def validate(
    task: str,
    algorithm: str,
    search: str | None,
    hyperparams: Mapping[str, Any],
    search_params: Mapping[str, Any] | None,
    search_args: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Check the search arguments; returns search_args with defaults filled in."""
    for name, value in (("search_params", search_params), ("search_args", search_args)):
        # a JSON string or array: dict() of it was a ValueError/TypeError, reported as an
        # internal error (XX000) instead of the caller's mistake (tests/test_hostile.py)
        if value is not None and not isinstance(value, Mapping):
            raise InvalidHyperparams(f"{name} must be a JSON object, got {value!r}")
    search_params = dict(search_params or {})
    search_args = dict(search_args or {})
    if search is None:
        if search_params:
            raise InvalidHyperparams(
                "search_params are given but search is NULL; pass search => 'grid' or 'random'"
            )
        return {}
    if search not in SEARCHES:
        raise InvalidHyperparams(f"unknown search {search!r}; choose one of: grid, random")
    both = sorted(set(hyperparams) & set(search_params))
    if both:
        raise InvalidHyperparams(
            f"{', '.join(map(repr, both))} given in both hyperparams and search_params; "
            "a key can be fixed or searched, not both"
        )
    for key, values in search_params.items():
        if not isinstance(values, list) or not values:
            raise InvalidHyperparams(
                f"search_params {key!r} must be a non-empty JSON array of values, got {values!r}"
            )
    check_hyperparams(task, algorithm, search_params, what="search_param")
    unknown = sorted(set(search_args) - set(SEARCH_ARGS))
    if unknown:
        raise InvalidHyperparams(
            f"unknown search_args {unknown}; valid keys: {', '.join(SEARCH_ARGS)}"
        )
    args = {**SEARCH_ARGS, **search_args}
    for key in SEARCH_ARGS:
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidHyperparams(f"search_args {key} must be a positive integer, got {value!r}")
    return args


def _candidates(
    search: str, search_params: Mapping[str, Any], n_iter: int, seed: int
) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = {k: list(v) for k, v in search_params.items()}
    if not grid:
        return [{}]
    everything = list(ParameterGrid(grid))
    if search == "grid" or n_iter >= len(everything):
        return everything
    return list(ParameterSampler(grid, n_iter=n_iter, random_state=seed))


def _folds(task: str, x: np.ndarray, y: np.ndarray | None, cv: int, seed: int) -> list[Any]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(x) < cv:
        raise SplitError(
            f"search_args cv={cv} needs at least {cv} training rows, got {len(x)}; use fewer folds"
        )
    if task == "classification" and y is not None:
        smallest = int(np.bincount(y).min())
        if smallest < cv:
            raise SplitError(
                f"search_args cv={cv} needs at least {cv} training rows per class, but the "
                f"smallest class has {smallest}; use fewer folds or more data"
            )
        return list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(x, y))
    return list(KFold(cv, shuffle=True, random_state=seed).split(x))


def run(
    task: str,
    algorithm: str,
    search: str,
    hyperparams: Mapping[str, Any],
    search_params: Mapping[str, Any],
    args: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    n_classes: int = 0,
    joint: bool = False,
    seed: int = 0,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> SearchResult:
    """Cross-validate every candidate on the train rows; pick the best key metric.

    ``cv`` 1 is PostgresML's "no cross-validation": each candidate is fitted on every train
    row and scored on the test rows (``x_test``/``y_test``), one split.
    """
    from sklearn.base import clone

    candidates = _candidates(search, search_params, args["n_iter"], seed)
    if args["cv"] == 1:
        assert x_test is not None
        x_all = np.concatenate([x, x_test])
        y_all = None if y is None or y_test is None else np.concatenate([y, y_test])
        folds = [(np.arange(len(x)), np.arange(len(x), len(x_all)))]
        x, y = x_all, y_all
    else:
        folds = _folds(task, x, y, args["cv"], seed)
    base = make_estimator(task, algorithm, hyperparams, seed=seed, joint=joint)

    def fit_and_score(params: dict[str, Any], x_train: np.ndarray, y_train: Any,
                      x_valid: np.ndarray, y_valid: Any) -> tuple[float, float, float]:
        estimator = set_params(clone(base), params)
        start = time.perf_counter()
        try:
            if y_train is None:
                estimator.fit(x_train)
            else:
                estimator.fit(x_train, y_train)
        except Exception as exc:
            raise TrainingFailed(
                f"search: {algorithm} with {params} failed to train: {exc}"
            ) from exc
        fitted = time.perf_counter()
        score = metrics.key_score(task, estimator, x_valid, y_valid, n_classes)
        return score, fitted - start, time.perf_counter() - fitted

    # every candidate on every fold, in parallel processes up to pgml.max_parallel_fits
    table = parallel.cross_validate(fit_and_score, candidates, folds, x, y)
    scores, fit_times, score_times = table[..., 0], table[..., 1], table[..., 2]
    results = search_results(search, task, args["cv"], candidates, scores, fit_times,
                             score_times)
    best = results["best_index"]
    return SearchResult(best_params=dict(candidates[best]), results=results)


def search_results(search: str, task: str, cv: int, candidates: list[dict[str, Any]],
                   scores: np.ndarray, fit_times: np.ndarray,
                   score_times: np.ndarray) -> dict[str, Any]:
    """``metrics.search_results`` under PostgresML's keys (scikit-learn's ``cv_results_``).

    ``scores``, ``fit_times``, ``score_times``: (candidates, splits). PostgresML's keys:
    ``params``, ``n_splits``, ``best_index``, ``mean_/std_fit_time``,
    ``mean_/std_score_time``, ``mean_/std_test_score``, ``split{k}_test_score``,
    ``param_{name}`` (one entry per candidate each), and ``rank_test_score``
    (scikit-learn's); ours besides: ``search``, ``scoring``, ``cv``, ``best_params``.
    A score that is not a finite number is null.
    """
    means = np.mean(scores, axis=1)
    finite = np.isfinite(means)
    best = int(np.argmax(np.where(finite, means, -np.inf)))
    order = np.argsort(-np.where(finite, means, -np.inf), kind="stable")
    ranks = np.empty(len(means), dtype=np.int64)
    ranks[order] = np.arange(1, len(means) + 1)

    def listed(values: np.ndarray) -> list[float | None]:
        return [metrics.clean(float(v)) if np.isfinite(v) else None for v in values]

    results: dict[str, Any] = {
        "search": search,
        "scoring": metrics.key_metric(task),
        "cv": cv,
        "n_splits": scores.shape[1],
        "params": candidates,
        "best_index": best,
        "best_params": candidates[best],
        "mean_fit_time": listed(fit_times.mean(axis=1)),
        "std_fit_time": listed(fit_times.std(axis=1)),
        "mean_score_time": listed(score_times.mean(axis=1)),
        "std_score_time": listed(score_times.std(axis=1)),
        "mean_test_score": listed(means),
        "std_test_score": listed(np.std(scores, axis=1)),
        "rank_test_score": ranks.tolist(),
    }
    for k in range(scores.shape[1]):
        results[f"split{k}_test_score"] = listed(scores[:, k])
    for name in dict.fromkeys(n for params in candidates for n in params):
        results[f"param_{name}"] = [params.get(name) for params in candidates]
    return results
