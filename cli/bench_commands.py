"""``pgml-flow bench ...``: benchmarks that print figures and save them as JSON.

Each command builds one workload (feature rows and models, dropped afterwards), runs
its benchmarks from :mod:`pgml_flow.benchmarks` and renders the figures; ``bench all``
runs every benchmark on one workload and checks the issue's targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.output import console, err_console, flow
from pgml_flow import benchmarks
from pgml_flow.benchmarks import Figure, Latency, Memory, Target

RESULTS = Path("bench/results")
app = typer.Typer(help="Benchmarks that print figures (and save them as JSON).",
                  no_args_is_help=True)

Rows = Annotated[int, typer.Option(envvar="PGML_FLOW_BENCH_ROWS",
                                   help="Feature rows created and scored per measurement.")]
Out = Annotated[Path, typer.Option(envvar="PGML_FLOW_BENCH_DIR",
                                   help="Directory for the JSON results.")]
Model = Annotated[str, typer.Option(envvar="PGML_FLOW_BENCH_MODEL",
                                    help="Model served: linear, xgboost, lightgbm, "
                                         "random_forest.")]
Clients = Annotated[str, typer.Option(envvar="PGML_FLOW_BENCH_CLIENTS",
                                      help="pgbench client counts, comma-separated.")]
Seconds = Annotated[int, typer.Option(envvar="PGML_FLOW_BENCH_SECONDS",
                                      help="Duration of each pgbench level.")]
Models = Annotated[int, typer.Option(envvar="PGML_FLOW_BENCH_CACHED_MODELS",
                                     help="Models cached by one backend for the memory "
                                          "figures.")]
CacheMb = Annotated[int, typer.Option(envvar="PGML_FLOW_BENCH_SMALL_CACHE_MB",
                                      help="The small pgml.native_cache_mb the memory bound "
                                           "is shown with.")]


def _progress(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")


def _url() -> str:
    pf = flow()
    pf.require_current_schema()
    return pf.url


def _clients(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise benchmarks.BenchmarkError(f"--clients wants positive numbers like 1,8,32,64; "
                                        f"got {text!r}")
    return counts


@app.command("predict")
def predict(rows: Rows = 100_000, out: Out = RESULTS) -> None:
    """Per-row pgml.predict (native and Python path), predict_batch, cold start."""
    with benchmarks.workload(_url(), rows, progress=_progress) as work:
        per_row = benchmarks.per_row(work, _progress)
        batch = benchmarks.batch(work, _progress)
        cold = benchmarks.cold_start(work, progress=_progress)
    _print_predict(per_row, batch, cold)
    _saved(benchmarks.save({"per_row": per_row, "batch": batch, "cold_start": cold},
                           "predict", out, {"speedups": benchmarks.speedups(per_row)}))


@app.command("service")
def service(rows: Rows = 200_000, model: Model = "xgboost", out: Out = RESULTS) -> None:
    """In-database scoring against psycopg + Python and HTTP services, batch and per row."""
    with benchmarks.workload(_url(), rows, (model,), progress=_progress) as work:
        figures = benchmarks.end_to_end(work, model_name=model, progress=_progress)
    targets = benchmarks.check(figures, [])
    _print_service(figures)
    if targets:
        _print_targets(targets)
    _saved(benchmarks.save({"end_to_end": figures, "targets": targets}, "service", out,
                           {"ratios": benchmarks.ratios(figures)}))


@app.command("concurrency")
def concurrency(rows: Rows = 100_000, clients: Clients = "1,8,32,64", seconds: Seconds = 10,
                model: Model = "xgboost", out: Out = RESULTS) -> None:
    """pgbench clients running a BI prediction query: throughput and p50/p95/p99."""
    counts = _clients(clients)
    with benchmarks.workload(_url(), rows, (model,), progress=_progress) as work:
        levels = benchmarks.pgbench(work, counts, seconds, model, _progress)
    _print_latency(levels, model)
    _saved(benchmarks.save({"concurrency": levels}, "concurrency", out))


@app.command("cold-start")
def cold_start(rows: Rows = 10_000, out: Out = RESULTS) -> None:
    """The first prediction in a new connection, native and Python path."""
    with benchmarks.workload(_url(), rows, progress=_progress) as work:
        cold = benchmarks.cold_start(work, progress=_progress)
    _print_figures("Cold start: first prediction in a new connection", cold)
    _saved(benchmarks.save({"cold_start": cold}, "cold-start", out))


@app.command("memory")
def memory(models: Models = 100, small_cache_mb: CacheMb = 4, model: Model = "xgboost",
           out: Out = RESULTS) -> None:
    """Memory of one backend with many cached models, and the native cache's bound."""
    with benchmarks.workload(_url(), 10_000, (model,), progress=_progress) as work:
        figures = benchmarks.memory(work, models, small_cache_mb, model, _progress)
    _print_memory(figures)
    _saved(benchmarks.save({"memory": figures}, "memory", out))


@app.command("all")
def run_all(
    rows: Rows = 200_000,
    service_rows: Annotated[int | None, typer.Option(
        envvar="PGML_FLOW_BENCH_SERVICE_ROWS",
        help="Rows of the end-to-end service comparison (default: --rows).")] = None,
    clients: Clients = "1,8,32,64",
    seconds: Seconds = 10,
    models: Models = 100,
    small_cache_mb: CacheMb = 4,
    out: Out = RESULTS,
) -> None:
    """Every benchmark on one workload, and the issue's targets against the figures."""
    counts = _clients(clients)
    with benchmarks.workload(_url(), rows, progress=_progress) as work:
        per_row = benchmarks.per_row(work, _progress)
        batch = benchmarks.batch(work, _progress)
        e2e = benchmarks.end_to_end(work, service_rows, progress=_progress)
        levels = benchmarks.pgbench(work, counts, seconds, progress=_progress)
        cold = benchmarks.cold_start(work, progress=_progress)
        mem = benchmarks.memory(work, models, small_cache_mb, progress=_progress)
    targets = benchmarks.check([*per_row, *e2e, *cold], mem)
    _print_predict(per_row, batch, cold)
    _print_service(e2e)
    _print_latency(levels, "xgboost")
    _print_memory(mem)
    _print_targets(targets)
    sections: dict[str, Sequence[Any]] = {
        "per_row": per_row, "batch": batch, "end_to_end": e2e, "concurrency": levels,
        "cold_start": cold, "memory": mem, "targets": targets}
    _saved(benchmarks.save(sections, "all", out, {
        "speedups": benchmarks.speedups(per_row), "ratios": benchmarks.ratios(e2e)}))


# -- rendering -----------------------------------------------------------------------------
def _saved(path: Path) -> None:
    console.print(f"saved {path}")


def _print_figures(title: str, figures: Sequence[Figure],
                   ratio: dict[str, float] | None = None, ratio_header: str = "") -> None:
    columns = ["benchmark", "model", "rows", "seconds", "rows/s", "µs/row"]
    if ratio is not None:
        columns.append(ratio_header)
    table = Table(*columns, "note", title=title)
    for f in figures:
        cells = [f.benchmark, f.model, f"{f.rows:,}", f"{f.seconds:.4f}",
                 f"{f.rows_per_second:,.0f}", f"{f.us_per_row:,.2f}"]
        if ratio is not None:
            value = ratio.get(f.benchmark)
            cells.append(f"{value:,.1f}x" if value else "")
        table.add_row(*cells, f.note)
    console.print(table)


def _print_predict(per_row: Sequence[Figure], batch: Sequence[Figure],
                   cold: Sequence[Figure]) -> None:
    speedups = benchmarks.speedups(list(per_row))
    _print_figures("pgml.predict per row (one core) and predict_batch", [*per_row, *batch])
    for model, speedup in speedups.items():
        console.print(f"{model}: native per-row scoring is {speedup:,.0f}x the Python path")
    _print_figures("Cold start: first prediction in a new connection", cold)


def _print_service(figures: Sequence[Figure]) -> None:
    ratios = benchmarks.ratios(list(figures))
    _print_figures("End to end (read, predict, write back): in the database vs a service",
                   figures, ratios, "in-db is")


def _print_latency(levels: Sequence[Latency], model: str) -> None:
    table = Table("clients", "threads", "transactions", "failed", "tps", "rows/s", "p50 ms",
                  "p95 ms", "p99 ms", "max ms",
                  title=f"pgbench: BI query, avg(pgml.predict) over 1,000 rows ({model})")
    for level in levels:
        table.add_row(str(level.clients), str(level.threads), f"{level.transactions:,}",
                      str(level.failed), f"{level.tps:,.1f}", f"{level.rows_per_second:,.0f}",
                      f"{level.p50_ms:.2f}", f"{level.p95_ms:.2f}", f"{level.p99_ms:.2f}",
                      f"{level.max_ms:.2f}")
    console.print(table)


def _mib(value: int | None, unit: int = 2**20) -> str:
    return "" if value is None else f"{value / unit:,.1f}"


def _print_memory(figures: Sequence[Memory]) -> None:
    table = Table("path", "models", "cache limit MB", "cached", "cache MiB", "native ctx MiB",
                  "backend ctx MiB", "RSS MiB", "RssAnon growth MiB", "bounded",
                  title="Memory of one backend that predicted with each model once")
    for m in figures:
        table.add_row(m.path, str(m.models), "" if m.cache_limit_mb is None
                      else str(m.cache_limit_mb), str(m.cached_models), _mib(m.cache_bytes),
                      _mib(m.native_context_bytes), _mib(m.backend_context_bytes),
                      _mib(m.rss_kb, 1024), _mib(m.rss_anon_growth_kb, 1024),
                      "" if m.bounded is None else ("yes" if m.bounded else "NO"))
    console.print(table)


def _print_targets(targets: Sequence[Target]) -> None:
    table = Table("target", "wanted", "measured", "met", title="Targets of the issue")
    for t in targets:
        table.add_row(t.name, t.target, t.measured,
                      "-" if t.met is None else ("yes" if t.met else "no"))
    console.print(table)
