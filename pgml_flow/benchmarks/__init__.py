"""Benchmarks that print figures: how fast is in-database prediction?

Targets are checked by reading these figures, never by timed unit tests.  Every run
measures its own baselines on the same machine, rows and stored models, and reports
rows/s, µs/row and ratios; results are also written as JSON (docs/benchmarks.md).

* :mod:`~pgml_flow.benchmarks.common`: the workload (rows, models), figures, saving;
* :mod:`~pgml_flow.benchmarks.predict`: per-row ``pgml.predict`` (native and Python
  path) and ``predict_batch``;
* :mod:`~pgml_flow.benchmarks.service`: in-database scoring against a psycopg + Python
  service and an HTTP service, batch and called per row, end to end;
* :mod:`~pgml_flow.benchmarks.concurrency`: pgbench clients running a BI query;
* :mod:`~pgml_flow.benchmarks.coldstart`: cold start and memory per backend;
* :mod:`~pgml_flow.benchmarks.targets`: the issue's targets against a run's figures;
* :mod:`~pgml_flow.benchmarks.training`: ``pgml.train`` against the same fit outside the
  database, and a grid search against ``GridSearchCV`` (``bench train``);
* :mod:`~pgml_flow.benchmarks.citus`: one server against a local Citus cluster, the
  retrain of every client and BI reads as tenant logins (``bench citus``).
* :mod:`~pgml_flow.benchmarks.cpu`: core-seconds of a server process from ``/proc``,
  reported beside wall time on a shared machine.
"""

from __future__ import annotations

from pgml_flow.benchmarks.coldstart import Memory, cold_start, memory
from pgml_flow.benchmarks.common import (
    MODEL_NAMES,
    BenchmarkError,
    Figure,
    Workload,
    save,
    workload,
)
from pgml_flow.benchmarks.concurrency import CLIENTS, Latency, pgbench
from pgml_flow.benchmarks.predict import batch, per_row, speedups
from pgml_flow.benchmarks.service import end_to_end, ratios
from pgml_flow.benchmarks.targets import Target, check

__all__ = [
    "CLIENTS",
    "MODEL_NAMES",
    "BenchmarkError",
    "Figure",
    "Latency",
    "Memory",
    "Target",
    "Workload",
    "batch",
    "check",
    "cold_start",
    "end_to_end",
    "memory",
    "per_row",
    "pgbench",
    "ratios",
    "save",
    "speedups",
    "workload",
]
