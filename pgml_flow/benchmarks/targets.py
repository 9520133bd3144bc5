"""The issue's targets, checked against the figures of one run (never by timed tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pgml_flow.benchmarks.coldstart import COLD_NATIVE, CONNECT_NATIVE, Memory
from pgml_flow.benchmarks.common import Figure
from pgml_flow.benchmarks.predict import PER_ROW_NATIVE, PER_ROW_PYTHON
from pgml_flow.benchmarks.service import BATCH_SERVICES, IN_DATABASE, ROW_SERVICES

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
    if base:
        # the premise: the service is called once per row, as pgml.predict is
        out.extend(_against(base, figures, ROW_SERVICES,
                            "in-database vs a Python service called per row, end to end"))
        # and, to be honest about it, the same target against a batch service
        out.extend(_against(base, figures, BATCH_SERVICES,
                            "in-database vs the fastest batch Python service, end to end"))
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


def _against(base: Figure, figures: Sequence[Figure], services: Sequence[str],
             name: str) -> list[Target]:
    """The 40x end-to-end target against the fastest of ``services`` (all of them shown)."""
    found = [f for f in (_find(figures, s) for s in services) if f]
    if not found:
        return []
    ratios = sorted((base.rows_per_second / f.rows_per_second, f.benchmark) for f in found)
    measured = "; ".join(f"{ratio:,.1f}x ({benchmark})" for ratio, benchmark in ratios)
    return [Target(name, ">= 40x", measured, ratios[0][0] >= 40)]
