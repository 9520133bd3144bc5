"""Training with target options (:mod:`pgml_flow.engine.targets`): which rows and labels the
estimator is fitted on, the output transform stored with it, and what the metrics add.

Kept apart from :mod:`pgml_flow.engine.training` so that a training without target options
runs exactly as before (``FitRows.of`` is then the dataset's train rows, untouched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgml_flow.engine import targets, targets_classes
from pgml_flow.engine.dataset import Dataset
from pgml_flow.engine.errors import InvalidPreprocess
from pgml_flow.engine.predict import Model

Saver = Callable[[dict[str, Any] | None], tuple[list[tuple[str, bytes]], Model]]


@dataclass
class FitRows:
    """The rows and labels the estimator is fitted (and searched) on."""

    dataset: Dataset
    #: (a scipy CSR matrix for the classes option of ``linear``: targets_classes.fit_matrix)
    x: np.ndarray
    y: np.ndarray | None
    #: indices into the train rows held out to fit the calibration (None: no calibration)
    calibration_rows: np.ndarray | None = None
    #: ``classes``: the class values (ascending); ``y`` then holds class indexes
    class_values: np.ndarray | None = None

    @staticmethod
    def estimator_task(dataset: Dataset, task: str, algorithm: str, search: str | None) -> str:
        """The task of the estimator fitted: a classifier for the ``classes`` option
        (targets_classes), whose algorithm is checked here, before any fit."""
        if not dataset.target.classes:
            return task
        targets_classes.check_algorithm(algorithm)
        if search is not None:
            raise InvalidPreprocess(
                "the target option classes is not searched (a search would score the "
                "classifier's classes, not the points it predicts): train without search, "
                "or compare hyperparameters as spec candidates"
            )
        return "classification"

    @classmethod
    def of(cls, dataset: Dataset, n_classes: int, seed: int, algorithm: str = "") -> FitRows:
        options = dataset.target
        x, y = dataset.x_train, dataset.y_train
        if not options or y is None:
            return cls(dataset, x, y)
        if options.snap:
            targets.scale_of(y)  # a label that is no scale fails before the fit
        if options.classes:
            label = (dataset.columns.get("labels") or [{}])[0].get("name", "label")
            values, codes = targets_classes.merge_classes(y, options.min_class, str(label))
            return cls(dataset, targets_classes.fit_matrix(x, algorithm), codes,
                       class_values=values)
        if options.transform == "log1p":
            y = np.log1p(y)  # labels were checked >= 0 by prepare_dataset
        if not options.calibration:
            return cls(dataset, x, y)
        if n_classes != 2:
            raise InvalidPreprocess(
                f"calibration applies to two classes (a probability per row); this label has "
                f"{n_classes}: train without calibration"
            )
        fit_rows, calibration_rows = targets.calibration_split(y, options.calibration_size, seed)
        return cls(dataset, x[fit_rows], y[fit_rows], calibration_rows)

    def output(self, estimator: Any) -> dict[str, Any] | None:
        """The output transform before calibration (log1p, the snapping scale)."""
        options = self.dataset.target
        out: dict[str, Any] = {}
        if options.transform:
            out["transform"] = options.transform
        if options.snap and self.dataset.y_train is not None:
            out["scale"] = targets.scale_of(self.dataset.y_train)
        if options.classes and self.class_values is not None:
            out["classes"] = options.classes
            out["class_values"] = [float(v) for v in self.class_values]
        return out or None

    def calibrate(self, model: Model, save: Saver) -> tuple[list[tuple[str, bytes]], Model,
                                                             dict[str, Any]]:
        """Fit the calibration on the held-out train rows; the model saved with it."""
        data, method = self.dataset, str(self.dataset.target.calibration)
        rows, y_train = self.calibration_rows, data.y_train
        assert rows is not None and y_train is not None
        p = model.predict_proba(data.x_train[rows])[:, 1]
        calibration = targets.fit_calibration(method, p, y_train[rows])
        test_y = data.y_test
        before = model.predict_proba(data.x_test)[:, 1] if test_y is not None else None
        files, model = save({**(self.output(None) or {}), "calibration": calibration})
        report: dict[str, Any] = {"method": method, "rows": len(rows),
                                  "fit_rows": len(self.x)}
        if before is not None and test_y is not None and len(test_y):
            after = model.predict_proba(data.x_test)[:, 1]
            report.update(targets.calibration_report(test_y, before, after))
        return files, model, {"calibration": report}

    def report(self, model: Model, estimator: Any, extra: dict[str, Any]) -> dict[str, Any]:
        """Metrics the options add: ``target`` (regression), ``calibration``, quantiles."""
        data, options = self.dataset, self.dataset.target
        out = dict(extra)
        y, x = data.y_test, data.x_test
        if data.task != "regression" or y is None or y.ndim != 1 or not len(y):
            return out
        if options.classes and model.target.class_values is not None:
            out["target"] = {"classes": options.classes, "min_class": options.min_class,
                             "class_values": model.target.class_values.tolist(),
                             "metrics_scale": "original"}
        if options.transform or options.snap:
            block: dict[str, Any] = {"transform": options.transform, "snap": options.snap,
                                     "metrics_scale": "original"}
            if model.target.scale is not None:
                block["scale"] = model.target.scale.tolist()
                unsnapped = model.target.regression(model.predict_codes(x), snapped=False)
                block["mean_absolute_error_unsnapped"] = float(np.mean(np.abs(y - unsnapped)))
            out["target"] = block
        alpha = targets.objective_quantile(estimator)
        if alpha is not None:
            out.update(targets.quantile_metrics(alpha, y, model.predict(x)))
        return out
