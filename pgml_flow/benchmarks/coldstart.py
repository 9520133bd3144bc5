"""Cold start (the first prediction in a new connection) and memory per backend.

Cold start: a new connection's first ``pgml.predict`` (native: the C function reads and
parses the model's blob) and first ``pgml._py_predict`` (the Python path: plpython3u
starts, imports the library and loads the model), each alone and with the connection.

Memory: one backend predicts once with each of ``models`` distinct cached models
(copies of the benchmark's XGBoost model deployed in projects of their own), with
``pgml.native_cache_mb`` at its default and at a small value; figures are the native
cache's bytes (``pgml.native_cache_stats()``) against its limit, the memory contexts
(``pg_backend_memory_contexts``) and the backend process's resident memory
(``/proc/<pid>/status``, when the server runs on this machine).  The Python path's
cache, bounded by a number of models, is measured the same way.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from pgml_flow import database
from pgml_flow.benchmarks.common import (
    PREFIX,
    Figure,
    Progress,
    Workload,
    has_function,
    query,
    quiet,
)

COLD_NATIVE = "cold first predict (native)"
COLD_PYTHON = "cold first predict (python)"
CONNECT_NATIVE = "connect + first predict (native)"
CONNECT_PYTHON = "connect + first predict (python)"
MEMORY_PREFIX = PREFIX + "mem_"


def cold_start(work: Workload, native_repeat: int = 5, python_repeat: int = 3,
               progress: Progress = quiet) -> list[Figure]:
    """Median first-prediction latency in a new connection, per model and path."""
    figures: list[Figure] = []
    for model in work.models.values():
        progress(f"{model.name}: cold start in new connections")
        paths = [("warm_predict", COLD_NATIVE, CONNECT_NATIVE, native_repeat)] if model.native \
            else []
        paths.append(("warm_python_predict", COLD_PYTHON, CONNECT_PYTHON, python_repeat))
        for name, first, connected, repeat in paths:
            alone, total = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                with database.connect(work.url, autocommit=True) as conn:
                    before = time.perf_counter()
                    conn.execute(query(name), {"project": model.project}).fetchall()
                    done = time.perf_counter()
                alone.append(done - before)
                total.append(done - started)
            note = f"median of {repeat}"
            figures.append(Figure(first, model.name, 1, statistics.median(alone), note))
            figures.append(Figure(connected, model.name, 1, statistics.median(total), note))
    return figures


@dataclass(frozen=True)
class Memory:
    """One backend after predicting once with each of ``models`` models."""

    path: str
    models: int
    cache_limit_mb: int | None
    cached_models: int
    cache_bytes: int | None
    largest_model_bytes: int | None
    native_context_bytes: int | None
    backend_context_bytes: int | None
    rss_kb: int | None
    rss_anon_kb: int | None
    baseline_rss_anon_kb: int | None

    @property
    def bounded(self) -> bool | None:
        """The native cache's bytes within its limit (None for the Python path).

        As documented for ``pgml.native_cache_mb``, one model larger than the limit is
        still loaded (alone), so the bound is the larger of the two.
        """
        if self.cache_limit_mb is None or self.cache_bytes is None:
            return None
        return self.cache_bytes <= max(self.cache_limit_mb * 2**20,
                                       self.largest_model_bytes or 0)

    @property
    def rss_anon_growth_kb(self) -> int | None:
        if self.rss_anon_kb is None or self.baseline_rss_anon_kb is None:
            return None
        return self.rss_anon_kb - self.baseline_rss_anon_kb

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "bounded": self.bounded,
                "rss_anon_growth_kb": self.rss_anon_growth_kb}


def memory(work: Workload, models: int = 100, small_cache_mb: int = 4,
           model_name: str = "xgboost", progress: Progress = quiet) -> list[Memory]:
    """Memory of one backend holding ``models`` cached models, per cache setting and path."""
    source = work.model(model_name)
    projects = [f"{MEMORY_PREFIX}{i}" for i in range(1, models + 1)]
    figures: list[Memory] = []
    with work.connect() as conn:
        progress(f"deploying {models} copies of the {source.name} model")
        conn.execute(query("delete_projects"), {"prefix": MEMORY_PREFIX})
        conn.execute(query("clone_model"), {"model_id": source.model_id,
                                            "prefix": MEMORY_PREFIX, "copies": models})
        native = source.native and has_function(conn, "pgml.native_cache_stats()")
        try:
            if native:
                for cache_mb in (None, small_cache_mb):
                    progress(f"{models} models, native, pgml.native_cache_mb="
                             f"{cache_mb or 'default'}")
                    figures.append(_measure(work.url, projects, "native", cache_mb))
            progress(f"{models} models, Python path")
            figures.append(_measure(work.url, projects, "python", None))
        finally:
            conn.execute(query("delete_projects"), {"prefix": MEMORY_PREFIX})
    return figures


def _measure(url: str, projects: list[str], path: str, cache_mb: int | None) -> Memory:
    with database.connect(url, autocommit=True) as conn:
        if cache_mb is not None:
            conn.execute(query("set_cache_mb"), {"mb": f"{cache_mb}MB"})
        pid = _one(conn, "backend_pid")
        baseline = _proc_status(pid)
        predict = "warm_predict" if path == "native" else "warm_python_predict"
        for project in projects:
            conn.execute(query(predict), {"project": project}).fetchall()
        if path == "native":
            limit = _one(conn, "cache_limit_mb")
            row = conn.execute(query("native_cache_stats")).fetchone()
            cached, cache_bytes, largest = (int(row[0]), int(row[1]), int(row[2])) if row \
                else (0, 0, 0)
        else:
            limit, cache_bytes, largest = None, None, None
            cached = _one(conn, "python_cached_models")
        contexts = _contexts(conn)
        status = _proc_status(pid)
    return Memory(path, len(projects), limit, cached, cache_bytes, largest,
                  contexts[0] if contexts and path == "native" else None,
                  contexts[1] if contexts else None,
                  status.get("VmRSS"), status.get("RssAnon"), baseline.get("RssAnon"))


def _one(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute(query(name)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _contexts(conn: psycopg.Connection) -> tuple[int, int] | None:
    try:
        row = conn.execute(query("memory_contexts")).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return (int(row[0]), int(row[1])) if row else None


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon (kB) of a server process on this machine; {} if not readable."""
    try:
        if b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return {}
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(value.split()[0])
    return out
