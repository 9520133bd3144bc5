"""Clusterers that scikit-learn can fit but not apply to new rows, given a ``predict``.

``pgml.predict`` must assign a new row to a cluster, but DBSCAN, OPTICS, spectral
clustering and the biclusterings only label the rows they were fitted on.  These
subclasses keep the fitted rows (or, for DBSCAN, the core samples) and label a new
row like its nearest fitted neighbour:

* DBSCAN: the cluster of the nearest *core* sample if it lies within ``eps`` (exactly
  the rule DBSCAN itself uses for border points), otherwise noise (-1);
* OPTICS: the cluster of the nearest non-noise fitted row; -1 if every row was noise;
* spectral, spectral_bi, spectral_co: the cluster of the nearest fitted row.

They subclass the scikit-learn estimators without changing ``__init__``, so
``get_params``/``clone`` (and therefore search) behave exactly as upstream's.
This module imports scikit-learn at import time; it is loaded only when one of these
algorithms is trained or a stored model using it is unpickled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import cluster
from sklearn.metrics import pairwise_distances_argmin_min


def _metric(estimator: Any) -> tuple[str, dict[str, Any]]:
    metric = getattr(estimator, "metric", "euclidean")
    if not isinstance(metric, str) or metric == "precomputed":
        return "euclidean", {}
    if metric == "minkowski":
        return metric, {"p": getattr(estimator, "p", None) or 2}
    return metric, {}


def _nearest_labels(
    estimator: Any,
    fitted_x: np.ndarray,
    fitted_labels: np.ndarray,
    x: np.ndarray,
    max_distance: float | None = None,
) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if len(fitted_x) == 0:
        return np.full(len(x), -1, dtype=np.int64)
    metric, kwargs = _metric(estimator)
    index, distance = pairwise_distances_argmin_min(
        x, fitted_x, metric=metric, metric_kwargs=kwargs
    )
    labels = fitted_labels[index].astype(np.int64)
    if max_distance is not None:
        labels[distance > max_distance] = -1
    return labels


class DBSCAN(cluster.DBSCAN):
    """DBSCAN whose predict labels a row by its nearest core sample within ``eps``."""

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> DBSCAN:
        super().fit(X, y, sample_weight=sample_weight)
        core = self.core_sample_indices_
        self.core_x_ = np.asarray(X, dtype=np.float64)[core]
        self.core_labels_ = self.labels_[core]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _nearest_labels(self, self.core_x_, self.core_labels_, X, self.eps)


class OPTICS(cluster.OPTICS):
    """OPTICS whose predict labels a row like its nearest non-noise fitted row."""

    def fit(self, X: Any, y: Any = None) -> OPTICS:
        super().fit(X, y)
        keep = self.labels_ != -1
        self.fitted_x_ = np.asarray(X, dtype=np.float64)[keep]
        self.fitted_labels_ = self.labels_[keep]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _nearest_labels(self, self.fitted_x_, self.fitted_labels_, X)


class SpectralClustering(cluster.SpectralClustering):
    """Spectral clustering whose predict labels a row like its nearest fitted row."""

    def fit(self, X: Any, y: Any = None) -> SpectralClustering:
        super().fit(X, y)
        self.fitted_x_ = np.asarray(X, dtype=np.float64)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _nearest_labels(self, self.fitted_x_, self.labels_, X)


class _RowClusters:
    """A bicluster estimator used as a row clusterer: ``labels_`` are its row labels."""

    row_labels_: np.ndarray

    def fit(self, X: Any, y: Any = None) -> Any:
        super().fit(X, y)  # type: ignore[misc]
        self.fitted_x_ = np.asarray(X, dtype=np.float64)
        self.labels_ = self.row_labels_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return _nearest_labels(self, self.fitted_x_, self.row_labels_, X)


class SpectralBiclustering(_RowClusters, cluster.SpectralBiclustering):
    """Spectral biclustering, predicting the row cluster of the nearest fitted row."""


class SpectralCoclustering(_RowClusters, cluster.SpectralCoclustering):
    """Spectral co-clustering, predicting the row cluster of the nearest fitted row."""
