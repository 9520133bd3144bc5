"""Which feature values a model scores: NaN (and NULL), ±Infinity, per model family.

The library's own ``predict`` is the reference: where it gives an answer, both serving
paths give that answer; where it refuses a value, both refuse it with the same clear
error (:class:`NonFiniteFeature`) instead of the library's message, or, natively, a
number computed from NaN (a linear model's NaN score used to come out as class 0 with
probability NaN).  The rules, as the libraries apply them:

=============================================================  ============  ===========
family                                                          NaN / NULL   ±Infinity
=============================================================  ============  ===========
XGBoost, LightGBM, CatBoost, scikit-learn HistGradientBoosting  scored        scored
scikit-learn trees, random_forest, extra_trees, bagging          scored        error
gradient_boosting_trees, linear models, SVMs, knn, ... (rest)   error         error
=============================================================  ============  ===========

"Scored" means what the library learned or defines: the missing-value branch of each
split (XGBoost, LightGBM, HistGradientBoosting, scikit-learn trees), and infinities
compared with the thresholds like any number.  For scikit-learn's trees, forests and
gradient boosting, which read features as float32, a value beyond the range of ``real``
(±3.4e38, only possible in the ``ROW`` form's ``double precision`` / ``numeric``
columns) is an infinity too.

:func:`input_policy` decides from the fitted estimator; the Python path applies it in
:meth:`pgml_flow.engine.Model.check`, and :func:`pgml_flow.engine.native.compile_model`
writes it into the compiled blob so that the C scorer hands exactly the rows the Python
path refuses to the Python path, which raises the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgml_flow.engine.errors import NonFiniteFeature

#: the largest ``real`` (float32); larger magnitudes count as infinities
REAL_MAX = float(np.finfo(np.float32).max)

_ANY_VALUE_LIBRARIES = ("xgboost", "lightgbm", "catboost")
#: scikit-learn estimators that validate and read their input as float32
_FLOAT32_SKLEARN = ("DecisionTree", "ExtraTree", "RandomForest", "GradientBoosting")


@dataclass(frozen=True)
class InputPolicy:
    """What a model scores besides finite numbers."""

    #: NaN and NULL array elements (which arrive as NaN) are missing values it scores
    nan: bool
    #: ±Infinity is compared like any number
    inf: bool
    #: the library reads float32: a value beyond ±3.4e38 is an infinity to it
    float32: bool = False

    @property
    def any_value(self) -> bool:
        return self.nan and self.inf


ANY_VALUE = InputPolicy(nan=True, inf=True)
FINITE_ONLY = InputPolicy(nan=False, inf=False)


def _allow_nan(estimator: Any) -> bool:
    """scikit-learn's own ``allow_nan`` tag (what its input validation enforces)."""
    try:
        from sklearn.utils import get_tags
    except ImportError:  # scikit-learn < 1.6
        tags = getattr(estimator, "_get_tags", None)
        return bool(tags()["allow_nan"]) if tags is not None else False
    return bool(get_tags(estimator).input_tags.allow_nan)


def input_policy(estimator: Any) -> InputPolicy:
    """The :class:`InputPolicy` of a fitted estimator (or an XGBoost / LightGBM booster)."""
    module = type(estimator).__module__ or ""
    if module.startswith(_ANY_VALUE_LIBRARIES):
        return ANY_VALUE
    inner = getattr(estimator, "estimators_", None)
    if type(estimator).__name__ == "MultiOutputRegressor" and isinstance(inner, list) and inner:
        policies = [input_policy(e) for e in inner]
        return InputPolicy(nan=all(p.nan for p in policies), inf=all(p.inf for p in policies),
                           float32=any(p.float32 for p in policies))
    if type(estimator).__name__.startswith("HistGradientBoosting"):
        return ANY_VALUE  # validates with ensure_all_finite=False: NaN learned, inf compared
    try:
        nan = _allow_nan(estimator)
    except (AttributeError, KeyError, TypeError, ValueError):
        nan = False
    return InputPolicy(nan=nan, inf=False,
                       float32=type(estimator).__name__.startswith(_FLOAT32_SKLEARN))


def _label(index: int, labels: Sequence[str] | None) -> str:
    if labels is not None and index < len(labels):
        return labels[index]
    return f"feature {index + 1}"


def check_features(
    x: np.ndarray,
    policy: InputPolicy,
    algorithm: str,
    labels: Sequence[str] | None = None,
) -> None:
    """Raise :class:`NonFiniteFeature` for the first value (row-major) the model refuses.

    ``x`` is ``(rows, features)``; ``labels`` name the features (the ``ROW`` form passes
    ``column 'x1'``), else they are numbered from 1 as in the SQL array.
    """
    if policy.any_value:
        return
    if policy.float32:
        with np.errstate(invalid="ignore"):
            finite = np.abs(x) <= REAL_MAX  # False for NaN and both infinities
    else:
        finite = np.isfinite(x)
    if finite.all():
        return
    refused = ~finite
    nan = np.isnan(x)
    if policy.nan:
        refused &= ~nan
    elif policy.inf:
        refused &= nan
    if not refused.any():
        return
    row, col = (int(i) for i in np.argwhere(refused)[0])
    where = _label(col, labels)
    if x.shape[0] > 1:
        where = f"row {row + 1}, {where}"
    value = float(x[row, col])
    if np.isnan(value):
        raise NonFiniteFeature(
            f"{where} is NaN or NULL, a missing value {algorithm} models cannot score; "
            "impute it in the query or in the model's preprocess",
            hint="Replace it in the query (e.g. coalesce(x, 0) for NULL, "
                 "nullif(x, 'NaN') inside it for NaN), or train with an impute rule "
                 "(preprocess => '{\"x\": {\"impute\": \"mean\"}}') and predict with the "
                 "ROW form, which applies it. xgboost, lightgbm, hist_gradient_boosting, "
                 "random_forest and extra_trees models score missing values.",
        )
    sign = "-" if value < 0 else ""
    shown = f"{sign}Infinity" if np.isinf(value) else f"{value:g} (beyond the range of real)"
    raise NonFiniteFeature(
        f"{where} is {shown}, which {algorithm} models cannot score; replace or clip it in "
        "the query, or leave the row out",
        hint="e.g. least(greatest(x, -1e6), 1e6), or WHERE x NOT IN ('Infinity', "
             "'-Infinity'). xgboost, lightgbm and hist_gradient_boosting models compare "
             "infinities with their thresholds like any number.",
    )
