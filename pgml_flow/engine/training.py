"""The training entrypoint: (task, algorithm, hyperparams, search, dataset) -> result.

:func:`train` builds the estimator, optionally searches hyperparameters, fits on the
train rows, serializes the model, reloads it from those bytes and computes the test
metrics *with the reloaded model* — so the stored metrics describe exactly what
``pgml.predict`` will serve, and a model that cannot be reloaded fails at training
time rather than at the first prediction.

With ``check_stored=False`` the caller checks the stored bytes itself (``pgml.train``
compiles an XGBoost model's native form from its stored JSON and checks it against the
fitted model's predictions, :mod:`pgml_flow.server.api`): the metrics are then computed
with the fitted model and nothing is reloaded, which the caller does where its check
cannot run (``TrainResult.stored_checked``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pgml_flow.engine import metrics, targets_fit
from pgml_flow.engine import search as searching
from pgml_flow.engine.algorithms import make_estimator
from pgml_flow.engine.dataset import Dataset
from pgml_flow.engine.errors import InvalidArgument, InvalidHyperparams, TrainingFailed
from pgml_flow.engine.predict import Model
from pgml_flow.engine.storage import dump_model, fitted_model, load_model


@dataclass
class TrainResult:
    """What the SQL layer stores for one trained model."""

    #: rows for ``pgml.files``: (path, data)
    files: list[tuple[str, bytes]]
    #: JSON for ``pgml.models.metrics``
    metrics: dict[str, Any]
    #: JSON for ``pgml.models.hyperparams``: the user's hyperparams + the best searched ones
    hyperparams: dict[str, Any]
    num_features: int
    #: the reloaded model, ready to cache for predictions (with ``check_stored=False``:
    #: the same Model over the fitted estimator)
    model: Model
    #: the fitted estimator itself (e.g. for engine.native to compile)
    estimator: Any = None
    #: distinct warnings the estimator raised while fitting (e.g. ConvergenceWarning)
    warnings: list[str] = field(default_factory=list)
    #: were ``files`` reloaded (False: ``check_stored=False``, the caller checks them)
    stored_checked: bool = True

    @property
    def key_metric(self) -> float | None:
        value = self.metrics.get(metrics.key_metric(self.model.task))
        return None if value is None else float(value)


def _fit(estimator: Any, x: np.ndarray, y: np.ndarray | None, algorithm: str) -> None:
    try:
        if y is None:
            estimator.fit(x)
        else:
            estimator.fit(x, y)
    except Exception as exc:
        if type(exc).__name__ == "InvalidParameterError":
            raise InvalidHyperparams(f"algorithm {algorithm!r}: {exc}") from exc
        raise TrainingFailed(f"{algorithm} failed to train: {exc}") from exc


def _score(model: Model, estimator: Any, dataset: Dataset) -> dict[str, Any]:
    task, x, y = dataset.task, dataset.x_test, dataset.y_test
    if task == "regression":
        assert y is not None
        pred = model.predict_joint(x) if y.ndim == 2 else model.predict(x)
        return metrics.regression(y, pred)
    if task == "classification":
        assert y is not None and dataset.classes is not None
        n_classes = len(dataset.classes)
        codes, proba = model.predict_codes_and_proba(x)
        return metrics.classification(y, codes, proba, n_classes)
    if task == "clustering":
        return metrics.clustering(x, model.predict_codes(x))
    return metrics.decomposition(estimator)


def train(
    task: str,
    algorithm: str,
    dataset: Dataset,
    hyperparams: Mapping[str, Any] | None = None,
    search: str | None = None,
    search_params: Mapping[str, Any] | None = None,
    search_args: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    check_stored: bool = True,
) -> TrainResult:
    """Train one model on ``dataset`` (from :func:`prepare_dataset`) and score it.

    ``check_stored=False``: score the fitted model and leave the check of the stored
    files to the caller (see the module doc).
    """
    if dataset.task != task:
        raise InvalidArgument(f"the dataset was prepared for {dataset.task!r}, not {task!r}")
    if hyperparams is not None and not isinstance(hyperparams, Mapping):
        raise InvalidHyperparams(f"hyperparams must be a JSON object, got {hyperparams!r}")
    hyperparams = dict(hyperparams or {})
    joint = dataset.y_train is not None and dataset.y_train.ndim == 2
    n_outputs = dataset.y_train.shape[1] if joint and dataset.y_train is not None else 1
    n_classes = len(dataset.classes or [])
    # a classifier for the target option classes (targets_classes), else the task's own
    fit_task = targets_fit.FitRows.estimator_task(dataset, task, algorithm, search)
    args = searching.validate(fit_task, algorithm, search, hyperparams, search_params,
                              search_args)
    fitting = targets_fit.FitRows.of(dataset, n_classes, seed, algorithm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = make_estimator(fit_task, algorithm, hyperparams, seed=seed, joint=joint)
        found = None
        if search is not None:
            found = searching.run(
                task,
                algorithm,
                search,
                hyperparams,
                search_params or {},
                args,
                fitting.x,
                fitting.y,
                n_classes=n_classes,
                joint=joint,
                seed=seed,
                x_test=dataset.x_test,
                y_test=dataset.y_test,
            )
            hyperparams.update(found.best_params)
            estimator = make_estimator(task, algorithm, hyperparams, seed=seed, joint=joint)
        start = time.perf_counter()
        _fit(estimator, fitting.x, fitting.y, algorithm)
        fit_time = time.perf_counter() - start

    def save(target: dict[str, Any] | None) -> tuple[list[tuple[str, bytes]], Model]:
        files = dump_model(
            estimator,
            task=task,
            algorithm=algorithm,
            num_features=dataset.num_features,
            num_outputs=n_outputs,
            classes=dataset.classes,
            feature_names=dataset.feature_names,
            target=target,
        )
        return files, load_model(files) if check_stored else fitted_model(estimator, files)

    files, model = save(fitting.output(estimator))
    report: dict[str, Any] = {}
    if fitting.calibration_rows is not None:  # fitted on the reloaded, uncalibrated model
        files, model, report = fitting.calibrate(model, save)
    start = time.perf_counter()
    scores: dict[str, Any] = dict(_score(model, estimator, dataset))
    scores.update(fitting.report(model, estimator, report))
    scores["fit_time"] = fit_time
    scores["score_time"] = time.perf_counter() - start
    if found is not None:
        scores["search_results"] = found.results
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return TrainResult(files, scores, hyperparams, dataset.num_features, model, estimator, messages,
                       check_stored)
