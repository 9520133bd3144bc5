"""Loaded models: ``predict`` / ``predict_proba`` / ``predict_joint`` on 2-D float arrays.

A :class:`Model` wraps one *backend* (the library's fastest in-process predictor) and
turns its raw output into what the SQL functions return:

* regression: the prediction; ``predict_joint`` gives every output of a joint model
  (``predict`` on a joint model is an error: use ``predict_joint``);
* classification: the class — the class *index* into the sorted classes for text
  labels (contract), the label value itself for number/bool labels;
  ``predict_proba`` gives one probability per sorted class;
* clustering: the cluster number (-1 = noise for dbscan/optics);
* decomposition: ``predict_joint`` is the projection onto all components and
  ``predict`` its first component (the coordinate on the principal axis), so a
  scalar ``pgml.predict`` is still meaningful.

Backends avoid per-call overhead for single rows: XGBoost uses ``inplace_predict`` on
the raw Booster, LightGBM ``Booster.predict(num_threads=1)`` for small batches,
scikit-learn the estimator's own ``predict``.  Classifiers without ``predict_proba``
(linear_svm, ridge, perceptron, passive_aggressive, hinge-loss SGD) report normalized
decision scores (sigmoid / softmax) as probabilities.

Each backend carries the :class:`~pgml_flow.engine.inputs.InputPolicy` of its library
(NaN / NULL and infinities scored or refused); :meth:`Model.check` applies it, so a
value the library would refuse is a :class:`NonFiniteFeature` error naming the feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pgml_flow.engine.errors import FeatureCountMismatch, InvalidArgument, NonFiniteFeature
from pgml_flow.engine.inputs import ANY_VALUE, InputPolicy, check_features, input_policy
from pgml_flow.engine.targets import OutputTransform

_SMALL_BATCH = 512


def _softmax(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 1:
        p = 1.0 / (1.0 + np.exp(-scores))
        return np.column_stack([1.0 - p, p])
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _two_columns(p: np.ndarray) -> np.ndarray:
    """Binary probability of class 1 -> (n, 2); a (n, k) matrix passes unchanged.

    ``1 - p`` is computed in the library's own dtype (float32 for XGBoost), as its
    sklearn wrapper does, so the probabilities are bit-identical to ``predict_proba``.
    """
    p = np.asarray(p)
    both = np.column_stack([1 - p, p]) if p.ndim == 1 else p
    return both.astype(np.float64)


class SklearnBackend:
    """Any scikit-learn-compatible estimator (also MultiOutputRegressor, our clusterers)."""

    def __init__(self, estimator: Any, task: str) -> None:
        self.estimator = estimator
        self.task = task
        self.policy: InputPolicy = input_policy(estimator)

    def raw(self, x: np.ndarray) -> np.ndarray:
        if self.task == "decomposition":
            return np.asarray(self.estimator.transform(x))
        return np.asarray(self.estimator.predict(x))

    def proba(self, x: np.ndarray) -> np.ndarray:
        if hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
        return _softmax(np.asarray(self.estimator.decision_function(x), dtype=np.float64))


class XGBoostBackend:
    """A raw ``xgboost.Booster`` predicted with ``inplace_predict`` (no DMatrix)."""

    policy = ANY_VALUE

    def __init__(self, booster: Any, task: str, n_classes: int) -> None:
        self.booster = booster
        self.task = task
        self.n_classes = n_classes

    def raw(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.booster.inplace_predict(x))
        if self.task != "classification":
            return out
        return self._codes(out)

    def _codes(self, out: np.ndarray) -> np.ndarray:
        if out.ndim == 1 and self.n_classes > 2:  # multi:softmax already gives classes
            return out.astype(np.int64)
        return self._classes(out)

    def _classes(self, out: np.ndarray) -> np.ndarray:
        if out.ndim == 1:  # same rule as XGBClassifier.predict
            return (out > 0.5).astype(np.int64)
        return np.argmax(out, axis=1)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return _two_columns(self.booster.inplace_predict(x))

    def raw_and_proba(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classification: :meth:`raw` and :meth:`proba` from one prediction."""
        out = np.asarray(self.booster.inplace_predict(x))
        return self._codes(out), _two_columns(out)


class LightGBMBackend:
    """One ``lightgbm.Booster`` per output (joint regression has several)."""

    policy = ANY_VALUE

    def __init__(self, boosters: Sequence[Any], task: str) -> None:
        self.boosters = list(boosters)
        self.task = task

    def _predict(self, booster: Any, x: np.ndarray) -> np.ndarray:
        if len(x) <= _SMALL_BATCH:
            return np.asarray(booster.predict(x, num_threads=1))
        return np.asarray(booster.predict(x))

    def raw(self, x: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            out = self._predict(self.boosters[0], x)
            return (out > 0.5).astype(np.int64) if out.ndim == 1 else np.argmax(out, axis=1)
        outs = [self._predict(b, x) for b in self.boosters]
        return outs[0] if len(outs) == 1 else np.column_stack(outs)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return _two_columns(self._predict(self.boosters[0], x))


class CatBoostBackend:
    """CatBoost models (one per output for joint regression)."""

    policy = ANY_VALUE

    def __init__(self, models: Sequence[Any], task: str) -> None:
        self.models = list(models)
        self.task = task

    def raw(self, x: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return np.argmax(self.proba(x), axis=1)
        outs = [np.asarray(m.predict(x), dtype=np.float64).reshape(len(x), -1) for m in self.models]
        out = np.hstack(outs)
        return out[:, 0] if out.shape[1] == 1 else out

    def proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.models[0].predict_proba(x), dtype=np.float64)


class Model:
    """A trained model as served by ``pgml.predict*`` (see the module docstring)."""

    def __init__(self, backend: Any, meta: dict[str, Any]) -> None:
        self.backend = backend
        self.meta = meta
        self.task: str = meta["task"]
        self.algorithm: str = meta["algorithm"]
        self.num_features: int = meta["num_features"]
        self.num_outputs: int = meta.get("num_outputs", 1)
        self.classes: list[Any] | None = meta.get("classes")
        self.policy: InputPolicy = backend.policy
        #: log1p inverse, snapping, calibration (engine.targets): applied after the backend
        self.target = OutputTransform(meta.get("target"))
        text = self.classes is not None and any(isinstance(c, str) for c in self.classes)
        self._class_values = (
            None if self.classes is None or text else np.asarray(self.classes, dtype=np.float64)
        )

    def check(self, x: Any, labels: Sequence[str] | None = None) -> np.ndarray:
        """A 2-D float64 array with ``num_features`` columns, or a clear error.

        The error is :class:`FeatureCountMismatch` for a wrong width, and
        :class:`NonFiniteFeature` for a NaN / NULL or infinity the model's library refuses
        (``labels`` name the features in that message; default ``feature 1``, ...).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            got = x.shape[-1] if x.ndim else 0
            raise FeatureCountMismatch(f"expected {self.num_features} features, got {got}")
        check_features(x, self.policy, self.algorithm, labels)
        return x

    def predict_codes(self, x: Any) -> np.ndarray:
        """Raw predictions: class codes for classification, else as :meth:`predict`."""
        return self.backend.raw(self.check(x))

    def predict_codes_and_proba(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_codes` and :meth:`predict_proba` of a classifier, from one
        prediction where the backend can (XGBoost: both come from the same output), so
        that scoring a test split does not predict it twice."""
        if self.task != "classification":
            raise InvalidArgument(f"predict_codes_and_proba needs a classification model; "
                                  f"this one is {self.task}")
        x = self.check(x)
        both = getattr(self.backend, "raw_and_proba", None)
        codes, proba = both(x) if both else (self.backend.raw(x), self.backend.proba(x))
        return codes, self.target.proba(proba) if self.target else proba

    def predict(self, x: Any) -> np.ndarray:
        """One float per row: the value ``pgml.predict`` returns."""
        if self.target.class_values is not None:  # a classifier read as points (classes)
            from pgml_flow.engine.targets_classes import class_median

            return class_median(self.backend.proba(self.check(x)), self.target.class_values)
        out = self.backend.raw(self.check(x))
        if self.task == "classification":
            if self._class_values is not None:
                return self._class_values[np.asarray(out, dtype=np.int64)]
            return np.asarray(out, dtype=np.float64)
        if self.task == "decomposition":
            return np.asarray(out[:, 0], dtype=np.float64)
        if out.ndim == 2 and out.shape[1] > 1:
            raise InvalidArgument(
                f"this model predicts {out.shape[1]} outputs (train_joint); use pgml.predict_joint"
            )
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        return self.target.regression(out) if self.target else out

    def predict_proba(self, x: Any) -> np.ndarray:
        """(n, classes) probabilities, columns in sorted class order."""
        if self.task != "classification":
            raise InvalidArgument(
                f"predict_proba needs a classification model; this one is {self.task} "
                "(use pgml.predict)"
            )
        proba = self.backend.proba(self.check(x))
        return self.target.proba(proba) if self.target else proba

    def predict_joint(self, x: Any) -> np.ndarray:
        """(n, outputs): joint regression outputs, or all decomposition components."""
        if self.task not in ("regression", "decomposition"):
            raise InvalidArgument(
                f"predict_joint needs a regression or decomposition model; this one is {self.task}"
            )
        out = np.asarray(self.backend.raw(self.check(x)), dtype=np.float64)
        return out.reshape(len(out), -1)


def _refuse_null(index: int, num_features: int, batch: bool) -> None:
    """A NULL element of the features array: an error, as in PostgresML.

    NULL is no number; a NaN (a number) is the array form's missing value, which the tree
    libraries score and the others refuse (:mod:`pgml_flow.engine.inputs`).
    """
    where = f"feature {index + 1}"
    if batch and num_features:
        where = f"row {index // num_features + 1}, feature {index % num_features + 1}"
    raise NonFiniteFeature(
        f"{where} is NULL: the features array cannot contain NULL",
        hint="Replace it in the query: coalesce(x, 0), or coalesce(x, 'NaN') for a missing "
             "value that XGBoost, LightGBM, HistGradientBoosting and scikit-learn's trees "
             "score; or predict with the ROW form, whose preprocess imputes NULL.",
    )


def features_from_array(
    values: Sequence[Any], num_features: int, batch: bool = False
) -> np.ndarray:
    """The ``real[]`` form of predict: numbers used as is (no snapshot preprocessing).

    ``batch`` accepts several rows flattened into one array (``predict_batch``), whose
    length must be a multiple of ``num_features`` (an empty array is zero rows).  A NULL
    element is an error (PostgresML's too); a NaN is a missing value, which
    :meth:`Model.check` refuses unless the model scores missing values
    (:mod:`pgml_flow.engine.inputs`).
    """
    if not isinstance(values, np.ndarray) and None in values:  # numpy would make it NaN
        _refuse_null(list(values).index(None), num_features, batch)
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        x = np.array([float(v) for v in values], dtype=np.float64)
    x = x.reshape(-1)
    n = x.shape[0]
    if batch and num_features and n % num_features == 0:
        return x.reshape(-1, num_features)
    if n != num_features:
        raise FeatureCountMismatch(
            f"expected {num_features} features"
            + (" per row (a multiple of it)" if batch else "")
            + f", got {n}"
        )
    return x.reshape(1, -1)
