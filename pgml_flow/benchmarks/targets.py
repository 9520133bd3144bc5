"""The issue's targets, checked against the figures of one run (never by timed tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pgml_flow.benchmarks.coldstart import COLD_NATIVE, CONNECT_NATIVE, Memory
from pgml_flow.benchmarks.common import Figure
from pgml_flow.benchmarks.predict import PER_ROW_NATIVE, PER_ROW_PYTHON
from pgml_flow.benchmarks.service import COPY_SERVICE, FETCH_SERVICE, IN_DATABASE

MODEL = "xgboost"


@dataclass(frozen=True)
class Target:
    name: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _find(figures: Sequence[Figure], benchmark: str, model: str = MODEL) -> Figure | None:
    return next((f for f in figures if f.benchmark == benchmark and f.model == model), None)


def check(figures: Sequence[Figure], memory: Sequence[Memory]) -> list[Target]:
    out: list[Target] = []
    native = _find(figures, PER_ROW_NATIVE)
    python = _find(figures, PER_ROW_PYTHON)
    if native:
        out.append(Target("native per-row, XGBoost 100x6, 20 features, one core",
                          ">= 1,000,000 rows/s", f"{native.rows_per_second:,.0f} rows/s",
                          native.rows_per_second >= 1_000_000))
    if native and python:
        ratio = native.rows_per_second / python.rows_per_second
        out.append(Target("native per-row vs the Python path", ">= 50x", f"{ratio:,.0f}x",
                          ratio >= 50))
    base = _find(figures, IN_DATABASE)
    services = [f for f in (_find(figures, COPY_SERVICE),
                            _find(figures, FETCH_SERVICE)) if f]
    if base and services:
        fastest = max(services, key=lambda f: f.rows_per_second)
        ratio = base.rows_per_second / fastest.rows_per_second
        out.append(Target("in-database vs the fastest psycopg + Python service, end to end",
                          ">= 40x", f"{ratio:,.1f}x ({fastest.benchmark})", ratio >= 40))
    cold = _find(figures, COLD_NATIVE)
    if cold:
        connected = _find(figures, CONNECT_NATIVE)
        extra = f"; {connected.seconds * 1000:.1f} ms with connecting" if connected else ""
        out.append(Target("cold start: first native predict in a new connection", "< 50 ms",
                          f"{cold.seconds * 1000:.1f} ms{extra}", cold.seconds < 0.050))
    bounded = [m for m in memory if m.bounded is not None]
    if bounded:
        shown = "; ".join(f"{(m.cache_bytes or 0) / 2**20:.1f} MiB of {m.cache_limit_mb} MB "
                          f"({m.cached_models} models)" for m in bounded)
        out.append(Target("native cache memory bounded by pgml.native_cache_mb",
                          "cache bytes <= limit", shown, all(m.bounded for m in bounded)))
    return out
