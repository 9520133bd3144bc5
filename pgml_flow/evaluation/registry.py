"""What can be evaluated: one :class:`Benchmark` per (model, dataset), each in a small module.

A benchmark says which imported dataset a built-in model is judged on, by which metric,
against which published numbers, and which targets the evaluation reports on. Adding one
(trajectory on ``tawos-resolution-time-esem2022``, say) is a module like
:mod:`pgml_flow.evaluation.deepse` that calls :func:`register`, and its name in
``MODULES``: nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgml_flow.errors import ConfigurationError

#: the modules that register benchmarks (imported on first use)
MODULES = ("pgml_flow.evaluation.deepse", "pgml_flow.evaluation.tawos_storypoints",
           "pgml_flow.evaluation.lead_time", "pgml_flow.evaluation.rework")
#: the models `pgml-flow evaluate` knows (the built-in specs)
TASKS = ("complexity", "trajectory", "rework")


@dataclass(frozen=True)
class ProjectResult:
    """One project (one client) of an evaluation: our test metric beside the others'."""

    project: str
    client_id: int
    #: rows of the project's test split that were scored
    test_rows: int
    #: our model's metric on the test split (None: it did not train or predict)
    ours: float | None
    #: our model's key metric on its own held-out rows (before the test split)
    held_out: float | None
    #: constant baselines computed here from the train split: Mean, Median
    baselines: dict[str, float]
    #: the published methods' numbers for this project, by method
    published: dict[str, float]
    #: the candidate chosen on the validation slice (None: the spec has no candidates)
    chosen: str | None
    seconds: float
    #: promoted, skipped, failed ... (the training run's status) and why
    status: str
    detail: str | None = None


@dataclass(frozen=True)
class Target:
    """A goal of the issue that set it, and whether this evaluation meets it."""

    goal: str
    result: str
    met: bool


@dataclass(frozen=True)
class Benchmark:
    """A built-in model judged on one public dataset."""

    task: str
    dataset: str
    #: the metric of the test split, as pgml.models.metrics names it
    metric: str
    #: the published methods and their numbers per project: ``{method: {project: value}}``
    published: Callable[[Path], dict[str, dict[str, float]]]
    #: the targets reported on (given the results)
    targets: Callable[[Sequence[ProjectResult]], list[Target]]
    citation: str
    #: the splits the model trains on (its held-out rows are the newest of these) and the
    #: one it is tested on
    train_splits: tuple[str, ...] = ("train", "valid")
    test_split: str = "test"
    #: projects to evaluate when none are named: None = every project of the dataset
    default_projects: Callable[[Path], list[str]] | None = None
    #: footnotes by project (e.g. withheld from a replication)
    footnotes: dict[str, str] = field(default_factory=dict)
    #: the baseline our model must beat first (a key of ProjectResult.baselines)
    baseline: str = "Median"
    #: the spec evaluated when it is not the task's built-in one (its name), and the spec
    #: file that defines it (an evaluation spec: pgml_flow/evaluation/lead_time.toml)
    spec: str | None = None
    spec_file: Path | None = None
    #: a protocol of its own (not the train/test splits of one model per client), called
    #: as ``run(url, benchmark, root, spec, projects=..., progress=...)`` and returning an
    #: :class:`~pgml_flow.evaluation.run.Evaluation` (pgml_flow.evaluation.rework)
    run: Callable[..., Any] | None = None


_REGISTRY: dict[tuple[str, str], Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    _REGISTRY[(benchmark.task, benchmark.dataset)] = benchmark
    return benchmark


def benchmarks() -> dict[tuple[str, str], Benchmark]:
    for module in MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def find(task: str, dataset: str) -> Benchmark:
    """The benchmark of ``task`` on ``dataset``, or an error that lists what exists."""
    known = benchmarks()
    if task not in TASKS:
        raise ConfigurationError(f"no model {task!r} to evaluate; choose one of "
                                 f"{', '.join(TASKS)}")
    found = known.get((task, dataset))
    if found is None:
        supported = sorted(d for t, d in known if t == task)
        raise ConfigurationError(
            f"evaluate {task} is not yet supported for dataset {dataset!r}"
            + (f"; supported: {', '.join(supported)}" if supported else
               "; no dataset is supported for it yet (a benchmark module in "
               "pgml_flow/evaluation/ adds one: docs/models.md#evaluation)"))
    return found
