"""Target options: how a model treats its label, declared under the label column in ``preprocess``.

PostgresML's ``preprocess`` is keyed by column and only ever meant feature columns; pgml-flow
reads the *label* column's entry as the target's treatment, so that it travels with every
``pgml.train`` call (and a model spec's ``target_options``) without a new argument::

    preprocess => '{"lead_time_days": {"transform": "log1p"}}'    -- durations
    preprocess => '{"story_points": {"snap": true}}'               -- the client's own scale
    preprocess => '{"reworked": {"calibration": "isotonic"}}'      -- probabilities that mean it

* ``transform: "log1p"`` (regression): the estimator learns ``log1p(y)``, so a few very
  long durations stop dominating a squared loss and errors count relatively; predictions
  are ``expm1`` of the model's output on both serving paths and every stored metric is on
  the original scale (a metric on the log scale would not be comparable with a model
  trained without the transform).  Negative labels are refused: durations and counts
  cannot be negative, and log1p of one below -1 does not exist.
* ``snap: true`` (regression): predictions are rounded to the nearest of the distinct label
  values of the training rows (a client's 1, 2, 3, 5, 8, 13), stored with the model; a
  prediction exactly halfway between two values goes to the smaller one.  Metrics are of
  the snapped predictions (what is served); ``target.mean_absolute_error_unsnapped`` in the
  metrics says what snapping cost or gained.
* ``classes: "median"`` (and ``min_class``, regression): the label's values become classes,
  the algorithm's classifier is fitted on them and the prediction is the lower weighted
  median of its class probabilities over the values, the MAE-optimal point
  (:mod:`pgml_flow.engine.targets_classes`).
* ``calibration: "sigmoid" | "isotonic"`` (binary classification): the estimator is fitted
  on the training rows minus ``calibration_size`` (default 0.2) of them, stratified; the
  calibrator is fitted on that held-out part, never on the test rows.  ``sigmoid`` is a
  logistic fit on the log-odds (two numbers, ``sigmoid(a * logit(p) + b)``), ``isotonic``
  a monotone piecewise-linear table.  ``pgml.predict_proba`` returns calibrated
  probabilities; ``pgml.predict`` keeps the model's own class decision, so the key metric
  (f1) does not move and a calibrated model is compared fairly with an uncalibrated one.

The fitted options are stored in the model's ``meta.json`` as ``"target"``
(:class:`OutputTransform`) and applied by :class:`pgml_flow.engine.predict.Model` and by
the native scorer (its blob's output section, :func:`pgml_flow.engine.native.add_output_section`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgml_flow.engine.errors import DataError, InvalidPreprocess

TRANSFORMS = ("log1p",)
CALIBRATIONS = ("sigmoid", "isotonic")
#: keys of a label column's preprocess entry
TARGET_KEYS = frozenset({"transform", "snap", "calibration", "calibration_size", "classes",
                         "min_class"})
#: ``classes``: how a prediction is read off the class probabilities (targets_classes)
CLASS_OUTPUTS = ("median",)
#: snapping is for a scale of a few values; more distinct labels than this is not a scale
MAX_SCALE = 256
#: probabilities are clipped to this distance from 0 and 1 before taking log-odds
_EPS = 1e-12


@dataclass(frozen=True)
class TargetOptions:
    """The validated target options of one ``pgml.train`` call."""

    transform: str | None = None
    snap: bool = False
    calibration: str | None = None
    calibration_size: float = 0.2
    #: "median": the label's values are classes, the prediction the MAE-optimal point
    classes: str | None = None
    min_class: int = 5

    def __bool__(self) -> bool:
        return bool(self.transform or self.snap or self.calibration or self.classes)


def take_target_options(
    preprocess: Mapping[str, Any] | None, labels: Sequence[str], task: str
) -> tuple[dict[str, Any], TargetOptions]:
    """``preprocess`` without the target keys, and those keys parsed.

    Feature keys (``impute``...) under a label column are left where they were (ignored, as
    before); target keys under a feature column are an error naming the label column.
    """
    if not isinstance(preprocess or {}, Mapping):
        # a JSON string or array ('"scale"', '[1]'): dict() of it was a ValueError, an
        # internal error (XX000) instead of the caller's mistake (tests/test_hostile.py)
        raise InvalidPreprocess('preprocess must be a JSON object like {"col": {"impute": '
                                f'"mean"}}, got {preprocess!r}')
    rest: dict[str, Any] = {}
    found: dict[str, Any] = {}
    owner = None
    for column, rule in (preprocess or {}).items():
        keys = set(rule) & TARGET_KEYS if isinstance(rule, Mapping) else set()
        if not keys:
            rest[column] = rule
            continue
        if column not in labels:
            where = f"the label column {labels[0]!r}" if labels else "the label column"
            raise InvalidPreprocess(
                f"preprocess key(s) {sorted(keys)} of column {column!r} describe the target; "
                f"put them under {where}, e.g. preprocess => '{{\"{labels[0] if labels else 'y'}"
                f"\": {{\"{sorted(keys)[0]}\": ...}}}}'"
            )
        owner = column
        found = {k: rule[k] for k in keys}
        other = {k: v for k, v in rule.items() if k not in TARGET_KEYS}
        if other:
            rest[column] = other
    if not found:
        return rest, TargetOptions()
    if len(labels) != 1:
        raise InvalidPreprocess(
            "target options (transform, snap, calibration) apply to one label column; "
            "train_joint models take none"
        )
    return rest, _parse(str(owner), found, task)


def _parse(column: str, rule: Mapping[str, Any], task: str) -> TargetOptions:
    transform = rule.get("transform")
    snap = rule.get("snap", False)
    calibration = rule.get("calibration")
    size = rule.get("calibration_size", 0.2)
    where = f"preprocess for label column {column!r}"
    if transform is not None and transform not in TRANSFORMS:
        raise InvalidPreprocess(f"{where}: transform must be one of {TRANSFORMS}, got "
                                f"{transform!r}")
    if not isinstance(snap, bool):
        raise InvalidPreprocess(f"{where}: snap must be true or false, got {snap!r}")
    if calibration is not None and calibration not in CALIBRATIONS:
        raise InvalidPreprocess(f"{where}: calibration must be 'sigmoid' or 'isotonic', got "
                                f"{calibration!r}")
    if (isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size < 1):
        raise InvalidPreprocess(f"{where}: calibration_size is the fraction of the training "
                                f"rows held out to fit the calibration, between 0 and 1 "
                                f"(default 0.2), got {size!r}")
    if (transform or snap) and task != "regression":
        raise InvalidPreprocess(f"{where}: transform and snap apply to regression; this is "
                                f"{task} (for probabilities use calibration)")
    if calibration and task != "classification":
        raise InvalidPreprocess(f"{where}: calibration applies to classification; this is "
                                f"{task}")
    classes, min_class = _parse_classes(where, rule, task, transform, snap)
    return TargetOptions(transform, snap, calibration, float(size), classes, min_class)


def _parse_classes(where: str, rule: Mapping[str, Any], task: str, transform: str | None,
                   snap: bool) -> tuple[str | None, int]:
    """``classes`` and ``min_class`` (pgml_flow.engine.targets_classes), validated."""
    classes = rule.get("classes")
    min_class = rule.get("min_class", 5)
    if classes is None:
        if "min_class" in rule:
            raise InvalidPreprocess(f"{where}: min_class goes with classes, e.g. "
                                    '{"classes": "median", "min_class": 5}')
        return None, 5
    if classes not in CLASS_OUTPUTS:
        raise InvalidPreprocess(f"{where}: classes must be one of {CLASS_OUTPUTS} (predict "
                                f"the median of the class probabilities), got {classes!r}")
    if task != "regression":
        raise InvalidPreprocess(f"{where}: classes applies to regression (a label whose "
                                f"values are a scale, such as story points); this is {task}")
    if transform or snap:
        raise InvalidPreprocess(f"{where}: classes already predicts one of the label's "
                                "values; train it without transform and snap")
    if isinstance(min_class, bool) or not isinstance(min_class, int) or min_class < 1:
        raise InvalidPreprocess(f"{where}: min_class is the number of training rows a value "
                                f"needs to be a class of its own, an integer >= 1 (default "
                                f"5), got {min_class!r}")
    return str(classes), int(min_class)


def check_labels(options: TargetOptions, y: np.ndarray, column: str) -> None:
    """Refuse labels the transform cannot take (negative durations), naming how many."""
    if options.transform == "log1p":
        negative = int(np.sum(y < 0))
        if negative:
            raise DataError(
                f"label column {column!r} has {negative} negative value(s) (the smallest is "
                f"{float(np.min(y)):g}); transform 'log1p' is for durations and counts, which "
                f"are >= 0: filter those rows out (WHERE {column} >= 0) in a view, or train "
                "without the transform"
            )


def scale_of(y: np.ndarray) -> list[float]:
    """The distinct training labels, sorted: the scale predictions snap to."""
    values = np.unique(np.asarray(y, dtype=np.float64))
    if len(values) > MAX_SCALE:
        raise DataError(
            f"snap rounds predictions to the training labels, which have {len(values)} distinct "
            f"values (at most {MAX_SCALE}): this label is not a scale such as story points; "
            "train without snap"
        )
    return [float(v) for v in values]


def snap(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Each value rounded to the nearest of ``scale`` (sorted); halfway goes to the smaller.

    The C scorer (ext/pgml_native/model.c, ``snap_to``) does the same comparisons in double.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(scale) == 1:
        return np.where(np.isnan(v), v, scale[0])
    idx = np.clip(np.searchsorted(scale, v, side="left"), 1, len(scale) - 1)
    lo, hi = scale[idx - 1], scale[idx]
    return np.where(np.isnan(v), v, np.where(hi - v < v - lo, hi, lo))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def calibration_split(y: np.ndarray, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, calibration rows) of the training rows, stratified by class."""
    from pgml_flow.engine.split import split_indices

    try:
        return split_indices(len(y), size, "stratified", y, seed + 1)
    except DataError as exc:
        raise DataError(f"calibration needs its own rows from the training rows: {exc}") from exc


def fit_calibration(method: str, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Fit the calibrator of class-1 probabilities ``p`` against labels ``y`` (0/1)."""
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise DataError("the calibration rows have a single class; use a larger "
                        "calibration_size or more data")
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        fit = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
        return {"method": "sigmoid", "a": float(fit.coef_[0, 0]),
                "b": float(fit.intercept_[0])}
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    xs = np.asarray(iso.X_thresholds_, dtype=np.float64)
    ys = np.asarray(iso.y_thresholds_, dtype=np.float64)
    keep = np.concatenate([[True], np.diff(xs) > 0])  # strictly increasing x for the C scorer
    return {"method": "isotonic", "x": xs[keep].tolist(), "y": ys[keep].tolist()}


def calibrate(calibration: Mapping[str, Any], p: np.ndarray) -> np.ndarray:
    """Calibrated class-1 probabilities (the C scorer's ``calibrate`` mirrors this)."""
    if calibration["method"] == "sigmoid":
        z = calibration["a"] * logit(p) + calibration["b"]
        return np.asarray(1.0 / (1.0 + np.exp(-z)))
    return np.interp(np.asarray(p, dtype=np.float64), calibration["x"], calibration["y"])


class OutputTransform:
    """What a model does to its output after the estimator: stored in ``meta.json``."""

    def __init__(self, data: Mapping[str, Any] | None) -> None:
        data = dict(data or {})
        self.data = data
        self.transform: str | None = data.get("transform")
        scale = data.get("scale")
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.calibration: dict[str, Any] | None = data.get("calibration")
        #: the ``classes`` option: the class values whose probabilities give the median
        values = data.get("class_values") if data.get("classes") == "median" else None
        self.class_values = None if values is None else np.asarray(values, dtype=np.float64)

    def __bool__(self) -> bool:
        return bool(self.transform or self.scale is not None or self.calibration
                    or self.class_values is not None)

    def regression(self, out: np.ndarray, *, snapped: bool = True) -> np.ndarray:
        if self.transform == "log1p":
            out = np.expm1(np.asarray(out, dtype=np.float64))
        if snapped and self.scale is not None:
            out = snap(out, self.scale)
        return out

    def proba(self, proba: np.ndarray) -> np.ndarray:
        if not self.calibration or proba.shape[1] != 2:
            return proba
        q = calibrate(self.calibration, proba[:, 1])
        return np.column_stack([1.0 - q, q])


def calibration_report(y: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    """Brier score and log loss of class-1 probabilities before and after calibration."""
    from sklearn import metrics

    from pgml_flow.engine.metrics import clean

    def both(p: np.ndarray) -> tuple[float | None, float | None]:
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        return (clean(metrics.brier_score_loss(y, p, pos_label=1)),
                clean(metrics.log_loss(y, np.column_stack([1 - p, p]), labels=[0, 1])))

    brier_before, loss_before = both(before)
    brier_after, loss_after = both(after)
    return {"brier_before": brier_before, "brier_after": brier_after,
            "log_loss_before": loss_before, "log_loss_after": loss_after}


def objective_quantile(estimator: Any) -> float | None:
    """The quantile a regressor's objective estimates (0.5 for absolute error), or None."""
    inner = getattr(estimator, "estimator", None)
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    if type(estimator).__name__ == "MultiOutputRegressor" and inner is not None:
        params = inner.get_params(deep=False)
    objective = str(params.get("objective") or params.get("loss") or "")
    name = type(estimator).__name__
    if objective in ("reg:absoluteerror", "l1", "regression_l1", "mae", "absolute_error"):
        return 0.5
    if objective == "reg:quantileerror":
        alpha = params.get("quantile_alpha", 0.5)
        return None if isinstance(alpha, list | tuple) else float(alpha)
    if objective == "quantile":
        if name.startswith("HistGradientBoosting"):
            return float(params.get("quantile") or 0.5)
        return float(params.get("alpha", 0.9))
    if name == "QuantileRegressor":
        return float(params.get("quantile", 0.5))
    return None


def quantile_metrics(alpha: float, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Pinball loss at ``alpha`` and the share of rows at or below the prediction (≈ alpha)."""
    from sklearn import metrics

    from pgml_flow.engine.metrics import clean

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    coverage = float(np.mean(y <= pred)) if len(y) else math.nan
    return {"quantile": alpha,
            "mean_pinball_loss": clean(metrics.mean_pinball_loss(y, pred, alpha=alpha)),
            "coverage": clean(coverage)}
