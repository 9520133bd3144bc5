"""Story points as classes, then the MAE-optimal point: the ``classes`` target option.

``preprocess => '{"story_points": {"classes": "median", "min_class": 5}}'`` on a regression
task.  Why: story points live on a small scale (1, 2, 3, 5, 8, 13) and are judged by the
mean absolute error, which is minimised by the *median* of the predictive distribution, not
by its mean (what a squared loss learns) nor by one tree ensemble's absolute-error fit.  So
the label's values become classes, a classifier learns their probabilities per issue, and
the prediction is the lower weighted median of those probabilities over the class values:
the value ``v`` of the scale with the least expected absolute error ``sum_k p_k |v - v_k|``.
Screened on the validation slices of both story point datasets (bench/story_points_screen.py,
docs/models.md "What the figures say") before it was built.

* Classes: the distinct training labels; a value with fewer than ``min_class`` (default 5)
  training rows is merged into the nearest value that has enough (the smaller on a tie), so
  that a class the classifier cannot learn does not take probability from its neighbours.
* The estimator is the algorithm's *classifier* (``linear``: multinomial logistic
  regression, ``xgboost``: ``multi:softprob``, ``lightgbm``: multiclass), fitted on the
  class indexes; the model stays a regression model (``pgml.predict`` returns points,
  ``pgml.predict_proba`` is refused as for any regression) and its metrics are regression
  metrics on the original labels, so it is compared fairly with any other candidate.
* Stored in the model's ``meta.json`` ``target`` as ``{"classes": "median", "class_values":
  [...]}``; the native scorer reads it from its output section (transform 2, the class
  values as its scale) and takes the same median of the same probabilities
  (ext/pgml_native/model.c, ``class_median``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pgml_flow.engine.errors import DataError, InvalidArgument

#: algorithms whose classifier the ``classes`` option fits (native forms exist for all)
CLASS_ALGORITHMS = ("linear", "xgboost", "lightgbm")
#: the median's tolerance: a cumulative probability this close below one half counts as
#: reaching it, so float rounding of probabilities that sum to 1 cannot skip a class
_HALF_TOLERANCE = 1e-12


def check_algorithm(algorithm: str) -> None:
    """Refuse an algorithm the option cannot fit, naming the ones it can."""
    if algorithm not in CLASS_ALGORITHMS:
        raise InvalidArgument(
            f"the target option classes fits the algorithm's classifier, which pgml-flow "
            f"does for {', '.join(CLASS_ALGORITHMS)}; got {algorithm!r}: use one of those, "
            "or train without classes"
        )


def fit_matrix(x: np.ndarray, algorithm: str) -> Any:
    """The training rows as the classifier is fitted on them: CSR for ``linear`` when
    mostly zero (tf-idf text), else as they are.

    Why: the multinomial logistic regression's solver multiplies the rows by its weights
    at every iteration; over 2,000-4,000 tf-idf columns that are 1-2 % nonzero, the sparse
    product made a Deep-SE project's fit 4-6 times faster (8.7 s against 1.8 s for 2,239
    rows and 34 classes, one thread) to the same optimum (same iterations).  Only for
    ``linear``: XGBoost and LightGBM read an absent entry of a sparse matrix as missing,
    not as zero, which would change the model.
    """
    if algorithm != "linear" or x.size == 0 or np.count_nonzero(x) > 0.25 * x.size:
        return x
    from scipy import sparse

    return sparse.csr_matrix(x)


def merge_classes(y: np.ndarray, min_rows: int, column: str = "label") -> tuple[
        np.ndarray, np.ndarray]:
    """(class values ascending, class index of each row).

    Values with fewer than ``min_rows`` rows go to the nearest value on the scale that has
    enough (the smaller on a tie).  At least two classes are needed: a classifier of one
    class learns nothing, and the median candidate of a spec already predicts a constant.
    """
    y = np.asarray(y, dtype=np.float64)
    values, counts = np.unique(y, return_counts=True)
    kept = values[counts >= min_rows]
    if len(kept) < 2:
        raise DataError(
            f"the target option classes needs two values of {column!r} with at least "
            f"min_class = {min_rows} training rows each; it has {len(kept)} (of "
            f"{len(values)} distinct values in {len(y)} rows): lower min_class, or train "
            "without classes"
        )
    # nearest kept value; on a tie the smaller (a tiny penalty for the larger ones)
    nearest = np.array([kept[np.argmin(np.abs(kept - v) + 1e-9 * (kept > v))]
                        for v in values])
    codes = np.searchsorted(kept, nearest[np.searchsorted(values, y)])
    return kept, codes.astype(np.int64)


def class_median(proba: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the lower weighted median of ``values`` (ascending) under ``proba``.

    That is the first class whose cumulative probability reaches half the row's total: the
    argmin over the scale of the expected absolute error (any point between the lower and
    the upper median is optimal; the lower one is a value of the scale).  The C scorer's
    ``class_median`` sums in the same order and compares with the same tolerance.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(values):
        raise InvalidArgument(f"{proba.shape[-1]} class probabilities for {len(values)} class "
                              "values")
    c = np.cumsum(proba, axis=1)
    idx = (c < 0.5 * c[:, -1:] - _HALF_TOLERANCE).sum(axis=1)
    out = np.asarray(values, dtype=np.float64)[np.minimum(idx, len(values) - 1)]
    return np.where(np.isnan(c[:, -1]), np.nan, out)
