"""The ``knn`` regressor: scikit-learn's, plus a median of the neighbours and shrinkage.

Why: on the public story-point datasets (docs/models.md#evaluation-against-published-results)
the research finds MAE minimised by median-like estimators (Tawosi et al., "Deep learning
for agile effort estimation: have we solved the problem yet?"; LHC-SE, the median of a text
cluster). Measured on the validation slices of the 16 Deep-SE projects, the median story
points of an issue's 10 most similar past issues (cosine of their tf-idf), halfway to the
client's overall median, beat the median and every tree model we tried; the mean of the
neighbours (scikit-learn's ``KNeighborsRegressor``) did worse than the median. So ``knn``
takes two more hyperparams, with defaults that keep scikit-learn's behaviour exactly:

* ``aggregate``: ``"mean"`` (default) or ``"median"`` of the neighbours' labels;
* ``shrink``: 0..1, the weight of the training labels' centre (their median with
  ``aggregate = "median"``, their mean otherwise): ``shrink * centre + (1 - shrink) *
  neighbours``. 0 (default) is the neighbours alone.

With ``metric = "cosine"`` and uniform weights the training rows are kept as a sparse
matrix of unit rows (tf-idf blocks are mostly zeros: a dense copy of a 4,000-wide text
model of 3,000 issues would be ~100 MB in the stored pickle) and the neighbours are found
by one sparse product per chunk of rows; ties go to the earlier training row. Nothing
here is compiled for the C scorer: a ``knn`` model is scored on the Python path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsRegressor as _SklearnKNeighbors

from pgml_flow.engine.errors import InvalidHyperparams

AGGREGATES = ("mean", "median")
#: rows scored per sparse product: bounds the (rows x training rows) similarity block
_CHUNK = 512


class KNeighborsRegressor(_SklearnKNeighbors):
    """scikit-learn's ``KNeighborsRegressor`` with ``aggregate`` and ``shrink`` (module doc)."""

    def __init__(self, n_neighbors: int = 5, *, weights: Any = "uniform",
                 algorithm: str = "auto", leaf_size: int = 30, p: float = 2,
                 metric: Any = "minkowski", metric_params: Any = None,
                 n_jobs: int | None = None, aggregate: str = "mean",
                 shrink: float = 0.0) -> None:
        super().__init__(n_neighbors=n_neighbors, weights=weights, algorithm=algorithm,
                         leaf_size=leaf_size, p=p, metric=metric,
                         metric_params=metric_params, n_jobs=n_jobs)
        self.aggregate = aggregate
        self.shrink = shrink

    def _plain(self) -> bool:
        """scikit-learn's own estimator, untouched (the defaults)."""
        return self.aggregate == "mean" and not self.shrink and not self._sparse_cosine()

    def _sparse_cosine(self) -> bool:
        return self.metric == "cosine" and self.weights == "uniform"

    def fit(self, X: Any, y: Any) -> KNeighborsRegressor:
        if self.aggregate not in AGGREGATES:
            raise InvalidHyperparams(f"knn: aggregate must be 'mean' or 'median', got "
                                     f"{self.aggregate!r}")
        shrink = self.shrink
        if isinstance(shrink, bool) or not isinstance(shrink, int | float) or not 0 <= shrink <= 1:
            raise InvalidHyperparams(f"knn: shrink is the weight (0..1) of the training "
                                     f"labels' centre, got {shrink!r}")
        if self.aggregate == "median" and self.weights != "uniform":
            raise InvalidHyperparams("knn: aggregate 'median' takes uniform weights (a "
                                     f"median is not weighted here), got {self.weights!r}")
        labels = np.asarray(y, dtype=np.float64)
        reduce = np.median if self.aggregate == "median" else np.mean
        self.centre_ = reduce(labels, axis=0)
        if not self._sparse_cosine():
            super().fit(X, y)
            return self
        from scipy import sparse
        from sklearn.preprocessing import normalize

        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(labels):
            raise InvalidHyperparams(f"knn: {len(x)} rows of features for {len(labels)} labels")
        if int(self.n_neighbors) < 1:
            raise InvalidHyperparams(f"knn: n_neighbors must be at least 1, got "
                                     f"{self.n_neighbors!r}")
        self.rows_ = sparse.csr_matrix(normalize(x)).astype(np.float32)
        self.labels_ = labels
        self.n_features_in_ = x.shape[1]
        self.n_samples_fit_ = x.shape[0]
        return self

    def predict(self, X: Any) -> np.ndarray:
        if self._plain():
            return np.asarray(super().predict(X))
        if self._sparse_cosine():
            labels = self.labels_
            near = self._cosine_neighbours(np.asarray(X, dtype=np.float64))
        else:
            labels = np.asarray(self._y, dtype=np.float64)
            near = self.kneighbors(X, return_distance=False)
            if self.weights != "uniform":  # mean, weighted: scikit-learn's own, then shrunk
                return self._shrunk(np.asarray(super().predict(X), dtype=np.float64))
        reduce = np.median if self.aggregate == "median" else np.mean
        return self._shrunk(reduce(labels[near], axis=1))

    def _shrunk(self, values: np.ndarray) -> np.ndarray:
        return self.shrink * self.centre_ + (1.0 - self.shrink) * values

    def _cosine_neighbours(self, x: np.ndarray) -> np.ndarray:
        """Indices (rows, k) of the k most similar training rows, most similar first."""
        train = self.rows_
        k = min(int(self.n_neighbors), train.shape[0])
        out = np.empty((len(x), k), dtype=np.int64)
        for start in range(0, len(x), _CHUNK):
            block = x[start:start + _CHUNK]
            norms = np.sqrt(np.einsum("ij,ij->i", block, block))
            block = (block / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
            # the sparse matrix on the left (scipy's fast path); negated: smallest first
            sims = -np.asarray(train @ block.T, dtype=np.float64).T
            if k < sims.shape[1]:
                part = np.argpartition(sims, k - 1, axis=1)[:, :k]
            else:
                part = np.tile(np.arange(sims.shape[1]), (len(sims), 1))
            # in (-similarity, training row) order: ties go to the earlier training row
            order = np.lexsort((part, np.take_along_axis(sims, part, axis=1)), axis=1)
            out[start:start + len(block)] = np.take_along_axis(part, order, axis=1)
        return out
