"""Lead time of issues on the 29 TAWOS projects of ``tawos-resolution-time-esem2022``.

V. Tawosi, R. Moussa, F. Sarro, "On the Relationship Between Story Point and Development
Effort in Agile Open-Source Software", ESEM 2022 (its SOURCE.txt has the full citation).
The paper publishes correlations only (story points against resolution time, mean
Spearman 0.19), no prediction: the numbers to beat are the constant baselines of each
project's train split, on the scale the evaluation judges, log(1 + days), where the
median is the constant with the least absolute error.

Why a spec of its own (``lead_time``, :file:`lead_time.toml`) and not the built-in
trajectory: that one predicts an epic's lead time from its children, and TAWOS has 1,748
epics, 1,672 of them in one project, with no child links; every one of its 47,205 issues
has a creation and a resolution date. The target is per issue (the dataset's
``Resolution_Time_Minutes``, which is creation to resolution), the features are those known
when the issue is created (``sql/idempotent/150_lead_time_features.sql``). The import
splits each project chronologically 60/20/20 (the file is in creation order; no split is
shipped); the model trains on train and valid, its candidates chosen on a validation
slice of those, and is tested on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pgml_flow.evaluation.registry import Benchmark, ProjectResult, Target, register

#: how much below the median baseline a project's test MAE must be to count
MARGIN = 0.10


def _published(root: Path) -> dict[str, dict[str, float]]:
    """None to compare with: the paper reports correlations, not predictions."""
    return {}


def _targets(results: Sequence[ProjectResult]) -> list[Target]:
    n = len(results)
    below = sum(1 for r in results if r.ours is not None and "Median" in r.baselines
                and r.ours <= (1 - MARGIN) * r.baselines["Median"])
    need = round(20 * n / 29)
    return [Target(f"test MAE of log(1 + days) at least {MARGIN:.0%} below the Median "
                   f"baseline on at least {need} of {n} projects", f"{below} of {n}",
                   below >= need)]


BENCHMARK = register(Benchmark(
    task="trajectory", dataset="tawos-resolution-time-esem2022", metric="mean_absolute_error",
    published=_published, targets=_targets, spec="lead_time",
    spec_file=Path(__file__).resolve().parent / "lead_time.toml",
    citation="V. Tawosi, R. Moussa, F. Sarro, On the Relationship Between Story Point and "
             "Development Effort in Agile Open-Source Software, ESEM 2022; dataset: TAWOS, "
             "MSR 2022, doi:10.1145/3524842.3528029",
))
