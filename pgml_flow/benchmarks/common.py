"""What every benchmark shares: the figures, the workload (rows and models), saving.

A :class:`Workload` is one table of synthetic feature rows (20 ``real`` features) and
the models trained on it; every benchmark of a run reads the same rows and serves the
same stored models, so their figures can be compared and put in ratios.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgml_flow import database, sqlfiles
from pgml_flow.errors import PgmlFlowError

Progress = Callable[[str], None]

#: every project a benchmark creates starts with this (and is deleted at the end)
PREFIX = "pgml_flow_bench_"
NUM_FEATURES = 20
#: (model name, algorithm, hyperparams): the models the per-row figures are for
MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("linear", "linear", {}),
    ("xgboost", "xgboost", {"n_estimators": 100, "max_depth": 6}),
    ("lightgbm", "lightgbm", {"n_estimators": 100}),
    ("random_forest", "random_forest", {"n_estimators": 100, "max_depth": 8}),
)
MODEL_NAMES = tuple(name for name, _, _ in MODELS)


class BenchmarkError(PgmlFlowError):
    """A benchmark could not run; the message says which and why."""


def query(name: str) -> str:
    return sqlfiles.query(name, "bench")


def quiet(_: str) -> None:
    """A progress callback that says nothing."""


@dataclass(frozen=True)
class Figure:
    """``rows`` scored in ``seconds`` (a throughput; or one latency when rows is 1)."""

    benchmark: str
    model: str
    rows: int
    seconds: float
    note: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    @property
    def us_per_row(self) -> float:
        return self.seconds / self.rows * 1e6 if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": self.rows_per_second,
                "us_per_row": self.us_per_row}


@dataclass(frozen=True)
class Model:
    name: str
    project: str
    model_id: int
    native: bool


@dataclass
class Workload:
    """The feature rows and trained models a run measures (see :func:`workload`)."""

    url: str
    rows: int
    models: dict[str, Model] = field(default_factory=dict)

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise BenchmarkError(
                f"the benchmark needs the {name!r} model; the workload has "
                f"{', '.join(self.models) or 'none'}"
            ) from None

    def connect(self) -> psycopg.Connection:
        return database.connect(self.url, autocommit=True)


@contextlib.contextmanager
def workload(
    url: str, rows: int, models: Sequence[str] = MODEL_NAMES, progress: Progress = quiet
) -> Iterator[Workload]:
    """Create ``rows`` feature rows, train ``models`` on them; drop everything on exit."""
    unknown = set(models) - set(MODEL_NAMES)
    if unknown:
        raise BenchmarkError(f"unknown benchmark models {sorted(unknown)}; known: "
                             f"{', '.join(MODEL_NAMES)}")
    if rows < 1_000:
        raise BenchmarkError(f"--rows must be at least 1,000 (got {rows:,})")
    work = Workload(url, rows)
    with database.connect(url, autocommit=True) as conn:
        try:
            _prepare(conn, work, models, progress)
            yield work
        finally:
            progress("dropping the benchmark rows and models")
            if has_function(conn, "pgml.delete_project(text)"):  # also drops its snapshots
                for model in work.models.values():
                    conn.execute(query("delete_project"), {"project": model.project})
            conn.execute(query("delete_projects"), {"prefix": PREFIX})
            conn.execute(query("drop_training_view"))
            conn.execute(query("drop_rows"))


def _prepare(conn: psycopg.Connection, work: Workload, models: Sequence[str],
             progress: Progress) -> None:
    progress(f"creating {work.rows:,} feature rows")
    conn.execute(query("delete_projects"), {"prefix": PREFIX})
    conn.execute(query("drop_rows"))
    conn.execute(query("create_rows"))
    conn.execute(query("fill_rows"), {"rows": work.rows})
    conn.execute(query("rows_primary_key"))
    conn.execute(query("analyze_rows"))
    conn.execute(query("create_results"))
    conn.execute(query("training_view"))
    for name, algorithm, hyperparams in MODELS:
        if name not in models:
            continue
        project = PREFIX + name
        progress(f"training {project} ({algorithm} {json.dumps(hyperparams)})")
        conn.execute(query("train"), {"project": project, "algorithm": algorithm,
                                      "hyperparams": json.dumps(hyperparams)})
        row = conn.execute(query("deployed_model"), {"project": project}).fetchone()
        if row is None:
            raise BenchmarkError(f"training {project} deployed no model")
        work.models[name] = Model(name, project, int(row[0]), bool(row[1]))


def has_function(conn: psycopg.Connection, signature: str) -> bool:
    row = conn.execute(query("has_function"), {"signature": signature}).fetchone()
    return bool(row and row[0])


def timed(conn: psycopg.Connection, name: str, params: Mapping[str, Any]) -> float:
    """Seconds to run one named query and fetch its result."""
    started = time.perf_counter()
    cur = conn.execute(query(name), params)
    if cur.description is not None:
        cur.fetchall()
    return time.perf_counter() - started


def sample_size(rows: int, probe: int, probe_seconds: float, most: int,
                seconds: float) -> int:
    """Rows of a sample that takes about ``seconds``, judged by a ``probe``-row run.

    Slow baselines (hundreds of µs a row) are measured on a sample rather than all the
    rows, so that a run stays minutes long; at least the probe, at most ``most``/``rows``.
    """
    per_row = max(probe_seconds, 1e-9) / probe
    return int(max(probe, min(rows, most, seconds / per_row)))


def machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count()}


def save(sections: Mapping[str, Sequence[Any]], name: str, directory: Path,
         extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"machine": ..., section: [figure.to_json(), ...], **extra}`` as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    payload: dict[str, Any] = {"machine": machine(), "created": time.strftime("%FT%T%z")}
    for section, items in sections.items():
        payload[section] = [item.to_json() for item in items]
    payload.update(extra or {})
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
