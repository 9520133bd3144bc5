"""Hyperparameter search: ``search`` / ``search_params`` / ``search_args`` of pgml.train.

``grid`` tries every combination of ``search_params`` (each value a JSON array);
``random`` samples ``search_args.n_iter`` (default 10) of them; each candidate is
scored by the task's key metric with ``search_args.cv``-fold cross-validation
(default 5; stratified for classification) on the TRAIN rows.  The loop is our own
rather than GridSearchCV so the score is exactly the key metric stored in
``pgml.models.metrics`` (silhouette, explained variance included), and so a candidate
that fails names its params.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgml_flow.engine import metrics
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
    if args["cv"] < 2:
        raise InvalidHyperparams("search_args cv must be at least 2 folds")
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
) -> SearchResult:
    """Cross-validate every candidate on the train rows; pick the best key metric."""
    from sklearn.base import clone

    candidates = _candidates(search, search_params, args["n_iter"], seed)
    folds = _folds(task, x, y, args["cv"], seed)
    base = make_estimator(task, algorithm, hyperparams, seed=seed, joint=joint)
    means, stds, fit_times = [], [], []
    for params in candidates:
        scores, times = [], []
        for train, valid in folds:
            estimator = set_params(clone(base), params)
            start = time.perf_counter()
            try:
                if y is None:
                    estimator.fit(x[train])
                else:
                    estimator.fit(x[train], y[train])
            except Exception as exc:
                raise TrainingFailed(
                    f"search: {algorithm} with {params} failed to train: {exc}"
                ) from exc
            times.append(time.perf_counter() - start)
            y_valid = None if y is None else y[valid]
            scores.append(metrics.key_score(task, estimator, x[valid], y_valid, n_classes))
        means.append(float(np.mean(scores)))
        stds.append(float(np.std(scores)) if np.isfinite(scores).all() else None)
        fit_times.append(float(np.mean(times)))
    best = int(np.argmax(means))
    order = np.argsort(-np.asarray(means), kind="stable")
    ranks = np.empty(len(means), dtype=np.int64)
    ranks[order] = np.arange(1, len(means) + 1)
    results = {
        "search": search,
        "scoring": metrics.key_metric(task),
        "cv": args["cv"],
        "params": candidates,
        "mean_test_score": [metrics.clean(m) for m in means],
        "std_test_score": stds,
        "mean_fit_time": fit_times,
        "rank_test_score": ranks.tolist(),
        "best_index": best,
        "best_params": candidates[best],
    }
    return SearchResult(best_params=dict(candidates[best]), results=results)
