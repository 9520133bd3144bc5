"""Benchmarks that print figures: how fast is in-database prediction?

Targets are checked by reading these figures, never by timed unit tests.  Every run
measures its own baseline on the same machine, model and rows, and figures are
reported as rows/s, µs/row and ratios.  Results are also written as JSON.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from pgml_flow import database, sqlfiles

#: rows the (slow) Python path scores when it is the baseline of a native run
PYTHON_SAMPLE_ROWS = 5_000
#: (project suffix, algorithm, hyperparams)
MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("linear", "linear", {}),
    ("xgboost", "xgboost", {"n_estimators": 100, "max_depth": 6}),
    ("lightgbm", "lightgbm", {"n_estimators": 100}),
    ("random_forest", "random_forest", {"n_estimators": 100, "max_depth": 8}),
)


@dataclass(frozen=True)
class Figure:
    benchmark: str
    model: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    @property
    def us_per_row(self) -> float:
        return self.seconds / self.rows * 1e6 if self.rows else 0.0


def _timed(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> float:
    """Seconds to run one query and fetch its (single-row) result."""
    started = time.perf_counter()
    conn.execute(query, params).fetchall()
    return time.perf_counter() - started


def predict_benchmark(url: str, rows: int, progress: Callable[[str], None]) -> list[Figure]:
    """Per-row ``pgml.predict`` over ``rows`` rows, ``predict_batch``, and cold start."""
    figures: list[Figure] = []
    with database.connect(url, autocommit=True) as conn:
        progress(f"creating {rows:,} feature rows")
        for name in ("bench_drop_rows", "bench_create_rows"):
            conn.execute(sqlfiles.query(name))
        conn.execute(sqlfiles.query("bench_fill_rows"), {"rows": rows})
        conn.execute(sqlfiles.query("bench_training_view"))
        conn.execute("VACUUM ANALYZE pgml_flow_bench_rows")
        for suffix, algorithm, hyperparams in MODELS:
            project = f"pgml_flow_bench_{suffix}"
            progress(f"training {project}")
            conn.execute(
                "SELECT * FROM pgml.train(%s, 'regression', 'pgml_flow_bench_train', 'y', "
                "%s::pgml.algorithm, %s::jsonb)",
                (project, algorithm, json.dumps(hyperparams)),
            )
            model_id = conn.execute(
                "SELECT d.model_id FROM pgml.deployments d JOIN pgml.projects p "
                "ON p.id = d.project_id WHERE p.name = %s ORDER BY d.id DESC LIMIT 1", (project,)
            ).fetchone()[0]  # type: ignore[index]
            progress(f"{suffix}: per-row pgml.predict over {rows:,} rows")
            conn.execute("SELECT pgml.predict(%s, array_fill(1, ARRAY[20])::real[])",
                         (project,))  # warm: load the model in this backend
            per_row = _timed(
                conn, "SELECT sum(pgml.predict(%s, features)) FROM pgml_flow_bench_rows", (project,)
            )
            native = _has_native(conn, model_id)
            figures.append(Figure(f"predict per row ({'native' if native else 'python'})",
                                  suffix, rows, per_row))
            if native:
                # the Python path on the same model and rows, as the baseline of this run
                sample = min(rows, PYTHON_SAMPLE_ROWS)
                python = _timed(
                    conn, "SELECT sum(pgml._py_predict(%s, features)) FROM pgml_flow_bench_rows "
                    "WHERE id <= %s", (project, sample)
                )
                figures.append(Figure("predict per row (python)", suffix, sample, python))
            progress(f"{suffix}: predict_batch over {rows:,} rows")
            batch = _timed(
                conn, "SELECT cardinality(pgml.predict_batch(%s::bigint, array_agg(v))) FROM "
                "(SELECT unnest(features) AS v FROM pgml_flow_bench_rows) s", (model_id,)
            )
            figures.append(Figure("predict_batch", suffix, rows, batch))
            cold = []
            for _ in range(3):
                with database.connect(url, autocommit=True) as fresh:
                    cold.append(_timed(
                        fresh, "SELECT pgml.predict(%s, array_fill(1, ARRAY[20])::real[])",
                        (project,),
                    ))
            figures.append(Figure("cold first predict", suffix, 1, statistics.median(cold)))
        if _has_delete(conn):
            for suffix, _, _ in MODELS:
                conn.execute("SELECT pgml.delete_project(%s)", (f"pgml_flow_bench_{suffix}",))
        conn.execute(sqlfiles.query("bench_drop_rows"))
    return figures


def _has_native(conn: psycopg.Connection, model_id: int) -> bool:
    row = conn.execute(
        "SELECT count(*) > 0 FROM pgml.files WHERE model_id = %s AND path = 'native'", (model_id,)
    ).fetchone()
    return bool(row and row[0])


def _has_delete(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regprocedure('pgml.delete_project(text)')").fetchone()
    return bool(row and row[0])


def save(figures: list[Figure], name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    payload = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "figures": [
            {**asdict(f), "rows_per_second": f.rows_per_second, "us_per_row": f.us_per_row}
            for f in figures
        ],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
