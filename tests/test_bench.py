"""Smoke test of the benchmarks: every one runs at tiny sizes and returns well-formed
figures.  No timing is asserted; the figures are read, not tested (docs/benchmarks.md)."""

from __future__ import annotations

import json
import math

import psycopg
from typer.testing import CliRunner

from cli import bench_commands
from pgml_flow import benchmarks


def _finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_every_benchmark_returns_figures(db_url, tmp_path):
    with benchmarks.workload(db_url, 2_000, ("linear", "xgboost")) as work:
        assert set(work.models) == {"linear", "xgboost"}
        per_row = benchmarks.per_row(work, repeat=1)
        batch = benchmarks.batch(work)
        e2e = benchmarks.end_to_end(work)
        levels = benchmarks.pgbench(work, (2,), 2)
        cold = benchmarks.cold_start(work, native_repeat=1, python_repeat=1)
        memory = benchmarks.memory(work, models=5, small_cache_mb=0)

    for figure in [*per_row, *batch, *e2e, *cold]:
        assert figure.rows >= 1 and _finite(figure.seconds), figure
        assert _finite(figure.rows_per_second) and _finite(figure.us_per_row), figure
    assert {f.model for f in batch} == {"linear", "xgboost"}
    service = benchmarks.service
    assert [f.benchmark for f in e2e] == [service.IN_DATABASE, *service.BATCH_SERVICES,
                                          *service.ROW_SERVICES, service.WRITE_ONLY]
    for f in e2e:
        if f.benchmark in service.ROW_SERVICES:  # a sample of the first rows, named
            assert service.PER_ROW_PROBE_ROWS <= f.rows <= 2_000, f
            assert f"sample of {f.rows:,} rows" in f.note, f
        else:
            assert f.rows == 2_000, f
    assert set(benchmarks.ratios(e2e)) == {f.benchmark for f in e2e} - {
        service.IN_DATABASE, service.WRITE_ONLY}

    [level] = levels
    assert level.clients == 2 and level.transactions > 0 and level.failed == 0
    assert 0 < level.p50_ms <= level.p95_ms <= level.p99_ms <= level.max_ms
    assert level.rows_per_query == 1_000

    python = [m for m in memory if m.path == "python"]
    assert len(python) == 1 and python[0].cached_models == 5
    for m in memory:
        assert m.models == 5
        if m.path == "native":
            assert m.bounded, m  # the cache never holds more than its limit
    native = [m for m in memory if m.path == "native"]
    if native:  # pgml_native installed: per-row native figures, default and tiny cache
        assert {f.model for f in per_row if f.benchmark == "predict per row (native)"} == {
            "linear", "xgboost"}
        assert native[0].cached_models == 5 and native[1].cache_limit_mb == 0
        assert benchmarks.speedups(per_row).keys() == {"linear", "xgboost"}

    targets = benchmarks.check([*per_row, *e2e, *cold], memory)
    assert all(t.measured for t in targets)
    end_to_end = [t for t in targets if t.name.startswith("in-database vs")]
    assert [("per row" in t.name, "batch" in t.name) for t in end_to_end] == [
        (True, False), (False, True)]
    assert all(t.met is not None for t in end_to_end)
    path = benchmarks.save({"per_row": per_row, "concurrency": levels, "memory": memory,
                            "targets": targets}, "smoke", tmp_path)
    saved = json.loads(path.read_text())
    assert saved["concurrency"][0]["rows_per_second"] > 0
    assert len(saved["per_row"]) == len(per_row)

    # everything dropped afterwards
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('pgml_flow_bench_rows')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM pgml.projects WHERE name LIKE "
                            "'pgml_flow_bench_%'").fetchone()[0] == 0


def test_cli_renders_and_validates(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    result = CliRunner().invoke(bench_commands.app, ["concurrency", "--clients", "x"])
    assert result.exit_code != 0
    assert isinstance(result.exception, benchmarks.BenchmarkError)
    result = CliRunner().invoke(bench_commands.app, [
        "memory", "--models", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Memory of one backend" in result.output
    assert list(tmp_path.glob("memory-*.json"))


def test_cli_service_prints_per_row_services_and_targets(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "300")  # one line per table row
    result = CliRunner().invoke(bench_commands.app, [
        "service", "--rows", "1000", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in benchmarks.service.ROW_SERVICES:
        assert name in result.output
    assert "Targets of the issue" in result.output
    assert "called per row" in result.output and "batch Python service" in result.output
    [path] = tmp_path.glob("service-*.json")
    saved = json.loads(path.read_text())
    assert len(saved["targets"]) == 2
    assert set(benchmarks.service.ROW_SERVICES) <= set(saved["ratios"])


def test_interrupted_bench_keeps_its_figures_and_drops_its_workload(db_url, tmp_path,
                                                                    monkeypatch):
    from pgml_flow.errors import Interrupted

    measured = [benchmarks.Figure("predict per row (native)", "linear", 1_000, 0.01)]

    def per_row(work, progress, repeat=2):
        assert work.models  # the workload was created
        return measured

    def batch(work, progress):
        raise KeyboardInterrupt  # Ctrl-C half-way

    monkeypatch.setattr(benchmarks, "per_row", per_row)
    monkeypatch.setattr(benchmarks, "batch", batch)
    monkeypatch.setenv("DATABASE_URL", db_url)
    result = CliRunner().invoke(bench_commands.app, [
        "predict", "--rows", "1000", "--out", str(tmp_path)])
    assert isinstance(result.exception, Interrupted), result.output  # main(): exit code 8
    [path] = tmp_path.glob("predict-*.json")
    saved = json.loads(path.read_text())
    assert saved["interrupted"] is True
    assert [f["benchmark"] for f in saved["per_row"]] == ["predict per row (native)"]
    assert "batch" not in saved and "cold_start" not in saved
    assert "pgml.predict per row" in result.output  # the figures it has are printed
    assert "dropping the benchmark rows and models" in result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('pgml_flow_bench_rows')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM pgml.projects WHERE name LIKE "
                            "'pgml_flow_bench_%'").fetchone()[0] == 0
