"""Target options (engine.targets) on the native scorer vs the Python path, no database.

Every absolute-error and quantile objective pgml-flow documents, trained through the engine
with a log1p target or snapping, and calibrated classifiers: the C core (the blob with its
output section) must give what :class:`pgml_flow.engine.predict.Model` gives, and the stored
metrics must be those of the served predictions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from pgml_flow import engine
from pgml_flow.engine import native

N = 300
#: (algorithm, hyperparams, the quantile the objective estimates: 0.5 for absolute error)
OBJECTIVES: list[tuple[str, dict[str, Any], float | None]] = [
    ("xgboost", {"objective": "reg:absoluteerror", "n_estimators": 20}, 0.5),
    ("xgboost", {"objective": "reg:quantileerror", "quantile_alpha": 0.8, "n_estimators": 20},
     0.8),
    ("lightgbm", {"objective": "l1", "n_estimators": 20}, 0.5),
    ("lightgbm", {"objective": "quantile", "alpha": 0.8, "n_estimators": 20}, 0.8),
    ("gradient_boosting_trees", {"loss": "absolute_error", "n_estimators": 20}, 0.5),
    ("gradient_boosting_trees", {"loss": "quantile", "alpha": 0.8, "n_estimators": 20}, 0.8),
    ("hist_gradient_boosting", {"loss": "absolute_error", "max_iter": 20}, 0.5),
    ("hist_gradient_boosting", {"loss": "quantile", "quantile": 0.8, "max_iter": 20}, 0.8),
    ("quantile", {"quantile": 0.8, "alpha": 0.0}, 0.8),
    # SGD's epsilon-insensitive loss with epsilon 0 is absolute error, not reported as such
    ("stochastic_gradient_descent", {"loss": "epsilon_insensitive", "epsilon": 0.0}, None),
]


def _data() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, 3))
    x[rng.random(x.shape) < 0.05] = np.nan  # imputed by the row preprocessing
    z = np.nan_to_num(x)
    labels = {
        "days": np.exp(1 + z[:, 0] + 0.3 * rng.normal(size=N)),
        "points": np.array([1, 2, 3, 5, 8, 13])[np.clip((z[:, 1] * 1.5 + 2.5).astype(int), 0, 5)],
        "rework": (z[:, 2] + rng.normal(size=N) > 1).astype(int),
    }
    return x, labels


def _dataset(task: str, x: np.ndarray, y: np.ndarray, options: dict[str, Any]) -> Any:
    kind = "int4" if task == "classification" else "float8"
    columns = [("a", "float8"), ("b", "float8"), ("c", "float8"), ("y", kind)]
    rows = [[None if np.isnan(v) else float(v) for v in r] + [y[i].item()]
            for i, r in enumerate(x)]
    preprocess = {c: {"impute": "mean"} for c in "abc"} | {"y": options}
    return engine.prepare_dataset(task, columns, rows, "y", preprocess=preprocess)


def test_objectives_and_target_options_match_natively(native_lib: Any) -> None:
    x, labels = _data()
    for i, (algorithm, hyperparams, alpha) in enumerate(OBJECTIVES):
        label, options = (("days", {"transform": "log1p"}) if i % 2 == 0
                          else ("points", {"snap": True}))
        dataset = _dataset("regression", x, labels[label], options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = engine.train("regression", algorithm, dataset, hyperparams)
        blob = native.add_output_section(native.compile_model(result.estimator),
                                         result.model.meta["target"])
        x32 = dataset.x_test.astype(np.float32).astype(np.float64)
        python = result.model.predict(x32)
        got = native_lib.load(blob).predict(x32)
        assert np.allclose(got, python, rtol=1e-5), (algorithm, hyperparams)
        # the stored metrics are those of the served predictions, on the original scale
        served = result.model.predict(dataset.x_test)
        mae = float(np.mean(np.abs(dataset.y_test - served)))
        assert np.isclose(result.metrics["mean_absolute_error"], mae)
        if label == "points":
            assert set(np.unique(got)) <= {1.0, 2.0, 3.0, 5.0, 8.0, 13.0}
        assert result.metrics.get("quantile") == alpha, (algorithm, hyperparams)
    for algorithm in ("xgboost", "lightgbm", "random_forest", "linear"):
        for method in ("sigmoid", "isotonic"):
            dataset = _dataset("classification", x, labels["rework"], {"calibration": method})
            result = engine.train("classification", algorithm, dataset,
                                  {"n_estimators": 20} if algorithm != "linear" else {})
            blob = native.add_output_section(native.compile_model(result.estimator),
                                             result.model.meta["target"])
            x32 = dataset.x_test.astype(np.float32).astype(np.float64)
            scorer = native_lib.load(blob)
            assert np.allclose(scorer.outputs(x32), result.model.predict_proba(x32), atol=1e-5)
            assert np.array_equal(scorer.predict(x32), result.model.predict(x32))
            report = result.metrics["calibration"]
            assert report["method"] == method and report["rows"] == 45  # 20% of 225, stratified
            assert report["brier_after"] is not None and report["log_loss_before"] is not None
