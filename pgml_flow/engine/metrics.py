"""Metrics stored in ``pgml.models.metrics``, per task, as the contract lists them.

* regression: r2, mean_absolute_error, mean_squared_error (joint: averaged over outputs)
* classification: f1, precision, recall (binary: the positive class, i.e. the second
  sorted class; multiclass: macro average), accuracy, mcc; binary also roc_auc and
  log_loss computed from PROBABILITIES (upstream used hard labels, a bug)
* clustering: silhouette (of the test rows under their predicted clusters)
* decomposition: cumulative_explained_variance (sum of explained_variance_ratio_)

All values are plain floats; a metric that is undefined on this data (e.g. silhouette
with a single cluster, roc_auc with one class in the test set) is ``None`` because
PostgreSQL's jsonb rejects NaN.  Every key metric is "higher is better".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the metric ``pgml.deploy`` and auto-deploy compare, per task (higher is better)
KEY_METRICS = {
    "regression": "r2",
    "classification": "f1",
    "clustering": "silhouette",
    "decomposition": "cumulative_explained_variance",
}
HIGHER_IS_BETTER = True


def key_metric(task: str) -> str:
    """Name of the task's key metric (all of them: higher is better)."""
    return KEY_METRICS[task]


def clean(value: Any) -> float | None:
    """A JSON-safe float: NaN/inf become None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    from sklearn import metrics

    return {
        "r2": clean(metrics.r2_score(y_true, y_pred)),
        "mean_absolute_error": clean(metrics.mean_absolute_error(y_true, y_pred)),
        "mean_squared_error": clean(metrics.mean_squared_error(y_true, y_pred)),
    }


def classification(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> dict[str, float | None]:
    """``y_*`` are class codes 0..n_classes-1; ``proba`` is (n, n_classes)."""
    from sklearn import metrics

    labels = list(range(n_classes))
    average = "binary" if n_classes == 2 else "macro"
    kwargs: dict[str, Any] = {"labels": labels, "average": average, "zero_division": 0}
    if average == "binary":
        kwargs["pos_label"] = 1
    # one call for the three: f1_score, precision_score and recall_score each compute all
    # of them (the same numbers), three times the work on every training's test split
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(y_true, y_pred,
                                                                        **kwargs)
    out = {
        "f1": clean(f1),
        "precision": clean(precision),
        "recall": clean(recall),
        "accuracy": clean(metrics.accuracy_score(y_true, y_pred)),
        "mcc": clean(metrics.matthews_corrcoef(y_true, y_pred)),
    }
    if n_classes == 2 and proba is not None:
        out.update(probability(y_true, proba))
    return out


def probability(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """A two-class model's ``roc_auc`` and ``log_loss``: ``y_true`` codes 0/1, ``proba``
    (n, 2). One definition for what pgml.train stores and what a retrain compares a
    champion and a challenger on (pgml_flow.holdout)."""
    from sklearn import metrics

    both = len(np.unique(y_true)) == 2
    # float32 probabilities (XGBoost) can miss a sum of 1 by an ulp; renormalize
    normalized = proba / proba.sum(axis=1, keepdims=True)
    return {
        "roc_auc": clean(metrics.roc_auc_score(y_true, proba[:, 1])) if both else None,
        "log_loss": clean(metrics.log_loss(y_true, normalized, labels=[0, 1])),
    }


def warm_up(task: str) -> None:
    """Compute the task's test-split metrics once, on a few made-up rows.

    Why: a training child is forked from the backend for every ``pgml.train``, and the
    first call of scikit-learn's metrics in a process costs more than the later ones (a
    classification's took 24 ms instead of 10 in a forked child, much of it memory the
    child writes for the first time); run here, in the backend, once a session, every
    child inherits what that first call left behind.
    """
    y = np.array([0, 1, 2, 1, 0, 2])
    if task == "regression":
        regression(y.astype(np.float64), y[::-1].astype(np.float64))
    elif task == "classification":
        classification(y, y[::-1], np.full((6, 3), 1 / 3), 3)
        classification(y % 2, y[::-1] % 2, np.full((6, 2), 0.5), 2)


def silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Silhouette of ``x`` under ``labels``; None when it is undefined."""
    from sklearn import metrics

    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels > len(x) - 1:
        return None
    return clean(metrics.silhouette_score(x, labels))


def clustering(x: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    return {"silhouette": silhouette(x, labels)}


def explained_variance(estimator: Any) -> float | None:
    ratio = getattr(estimator, "explained_variance_ratio_", None)
    return None if ratio is None else clean(np.sum(ratio))


def decomposition(estimator: Any) -> dict[str, float | None]:
    return {"cumulative_explained_variance": explained_variance(estimator)}


def key_score(
    task: str, estimator: Any, x: np.ndarray, y: np.ndarray | None, n_classes: int = 0
) -> float:
    """The key metric of a fitted estimator on a validation fold (used by search).

    Undefined scores count as -inf so such a candidate never wins.
    """
    from sklearn import metrics

    value: float | None
    if task == "regression":
        value = clean(metrics.r2_score(y, estimator.predict(x)))
    elif task == "classification":
        average = "binary" if n_classes == 2 else "macro"
        value = clean(
            metrics.f1_score(
                y,
                estimator.predict(x),
                labels=list(range(n_classes)),
                average=average,
                zero_division=0,
            )
        )
    elif task == "clustering":
        value = silhouette(x, estimator.predict(x))
    else:
        value = explained_variance(estimator)
    return -math.inf if value is None else value
