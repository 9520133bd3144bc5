"""Target options are validated with messages that say what to do, in SQL and in specs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pgml_flow import engine
from pgml_flow.engine import targets
from pgml_flow.engine.errors import DataError, InvalidPreprocess
from pgml_flow.errors import SpecError
from pgml_models.specs import parse_spec

COLUMNS = [("a", "float8"), ("y", "float8")]
ROWS = [[float(i), float(i % 7)] for i in range(40)]


def _prepare(task: str, preprocess: dict[str, Any],
             rows: list[list[float]] = ROWS) -> engine.Dataset:
    return engine.prepare_dataset(task, COLUMNS, rows, "y", preprocess=preprocess)


def test_target_options_are_checked_and_snapping_ties_go_down() -> None:
    assert _prepare("regression", {"y": {"snap": True, "transform": "log1p"}}).target == \
        targets.TargetOptions("log1p", True)
    assert not _prepare("regression", {"a": {"impute": "mean"}}).target
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("regression", {"a": {"snap": True}}, "describe the target; put them under the label"),
        ("regression", {"y": {"transform": "log"}}, "transform must be one of"),
        ("regression", {"y": {"calibration": "sigmoid"}}, "calibration applies to classif"),
        ("classification", {"y": {"snap": True}}, "transform and snap apply to regression"),
        ("classification", {"y": {"calibration": "platt"}}, "'sigmoid' or 'isotonic'"),
        ("classification", {"y": {"calibration": "sigmoid", "calibration_size": 1.5}},
         "between 0 and 1"),
    ]
    for task, preprocess, message in cases:
        with pytest.raises(InvalidPreprocess, match=message):
            _prepare(task, preprocess)
    with pytest.raises(DataError, match=r"'y' has 1 negative value.*WHERE y >= 0"):
        _prepare("regression", {"y": {"transform": "log1p"}}, [*ROWS, [1.0, -2.0]])
    many = [[float(i), float(i) / 3] for i in range(2 * targets.MAX_SCALE)]
    dataset = _prepare("regression", {"y": {"snap": True}}, many)
    with pytest.raises(DataError, match="not a scale such as story points"):
        engine.train("regression", "linear", dataset)
    with pytest.raises(InvalidPreprocess, match="calibration applies to two classes"):
        engine.train("classification", "linear",
                     _prepare("classification", {"y": {"calibration": "sigmoid"}}))
    scale = np.array([1.0, 2.0, 3.0, 5.0, 8.0])
    assert targets.snap(np.array([-4, 1.5, 2.6, 4.0, 6.5, 6.6, 99, np.nan]), scale)[:7].tolist() \
        == [1, 1, 3, 3, 5, 8, 8]


def test_specs_take_target_options_under_the_target() -> None:
    body = {
        "task": "classification", "training_view": "v", "target": "y", "features": ["a"],
        "feature_view": "f", "preprocess": {"y": {"calibration": "isotonic"}},
        "retraining": {"schedule": "0 2 * * 0", "min_new_records": 1,
                       "performance_threshold": 0.1, "data_freshness_days": 1},
    }
    spec = parse_spec("m", body)
    assert not spec.reads_rows  # target options are no feature preprocessing
    with pytest.raises(SpecError, match=r"preprocess.y \(the target\) takes the target options"):
        parse_spec("m", {**body, "preprocess": {"y": {"snap": True}}})
