"""``pgml-flow bench ...``: benchmarks that print figures and save them as JSON.

Each command builds one workload (feature rows and models, dropped afterwards), runs
its benchmarks from :mod:`pgml_flow.benchmarks` and renders the figures; ``bench all``
runs every benchmark on one workload and checks the issue's targets.

A benchmark interrupted (Ctrl-C, SIGTERM) or failing half-way keeps what it measured: the
workload is dropped, the figures measured so far are printed and saved (marked
``"interrupted": true``), and the command exits with the interruption's or the error's code.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import bench_citus
from cli.output import JsonOption, console, err_console, flow, new_table, print_json
from cli.progress import Steps, steps
from pgml_flow.errors import Interrupted

if TYPE_CHECKING:
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


class Run:
    """The sections of figures one command has measured so far, by name."""

    def __init__(self, step: Steps, model: str = "xgboost") -> None:
        self.step = step
        self.model = model
        self.sections: dict[str, Sequence[Any]] = {}

    def progress(self, message: str) -> None:
        self.step(message)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def _bench(name: str, out: Path, as_json: bool, model: str = "xgboost") -> Iterator[Run]:
    """Run one command's benchmarks; print and save its figures, also when interrupted."""
    previous = signal.signal(signal.SIGTERM, _sigterm)
    stopped: BaseException | None = None
    try:
        with steps(f"bench {name}", log=True) as step:
            run = Run(step, model)
            try:
                yield run
            except (KeyboardInterrupt, Exception) as exc:
                stopped = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped is not None and not run.sections:
        raise Interrupted("interrupted before any figure was measured") if isinstance(
            stopped, KeyboardInterrupt) else stopped
    path = _report(run, name, out, as_json, interrupted=stopped is not None)
    if isinstance(stopped, KeyboardInterrupt):
        raise Interrupted(f"interrupted; the figures measured so far are saved in {path}")
    if stopped is not None:
        err_console.print(f"the figures measured before the error are saved in {path}")
        raise stopped


def _url() -> str:
    pf = flow()
    pf.require_current_schema()
    return pf.url


def _clients(text: str) -> tuple[int, ...]:
    from pgml_flow.benchmarks import BenchmarkError

    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise BenchmarkError(f"--clients wants positive numbers like 1,8,32,64; got {text!r}")
    return counts


@app.command("predict")
def predict(rows: Rows = 100_000, out: Out = RESULTS, as_json: JsonOption = False) -> None:
    """Per-row pgml.predict (native and Python path), predict_batch, cold start."""
    from pgml_flow import benchmarks

    with _bench("predict", out, as_json) as run, \
            benchmarks.workload(_url(), rows, progress=run.progress) as work:
        run.sections["per_row"] = benchmarks.per_row(work, run.progress)
        run.sections["batch"] = benchmarks.batch(work, run.progress)
        run.sections["cold_start"] = benchmarks.cold_start(work, progress=run.progress)


@app.command("service")
def service(rows: Rows = 200_000, model: Model = "xgboost", out: Out = RESULTS,
            as_json: JsonOption = False) -> None:
    """In-database scoring against psycopg + Python and HTTP services, batch and per row."""
    from pgml_flow import benchmarks

    with _bench("service", out, as_json, model) as run, \
            benchmarks.workload(_url(), rows, (model,), progress=run.progress) as work:
        figures = benchmarks.end_to_end(work, model_name=model, progress=run.progress)
        run.sections["end_to_end"] = figures
        run.sections["targets"] = benchmarks.check(figures, [])


@app.command("concurrency")
def concurrency(rows: Rows = 100_000, clients: Clients = "1,8,32,64", seconds: Seconds = 10,
                model: Model = "xgboost", out: Out = RESULTS,
                as_json: JsonOption = False) -> None:
    """pgbench clients running a BI prediction query: throughput and p50/p95/p99."""
    from pgml_flow import benchmarks

    counts = _clients(clients)
    with _bench("concurrency", out, as_json, model) as run, \
            benchmarks.workload(_url(), rows, (model,), progress=run.progress) as work:
        run.sections["concurrency"] = benchmarks.pgbench(work, counts, seconds, model,
                                                         run.progress)


@app.command("cold-start")
def cold_start(rows: Rows = 10_000, out: Out = RESULTS, as_json: JsonOption = False) -> None:
    """The first prediction in a new connection, native and Python path."""
    from pgml_flow import benchmarks

    with _bench("cold-start", out, as_json) as run, \
            benchmarks.workload(_url(), rows, progress=run.progress) as work:
        run.sections["cold_start"] = benchmarks.cold_start(work, progress=run.progress)


@app.command("train")
def train(
    repeat: Annotated[int, typer.Option(envvar="PGML_FLOW_BENCH_REPEAT",
                                        help="Runs of each single training (median).")] = 3,
    grid: Annotated[bool, typer.Option(help="Also the 6x4 grid search against "
                                            "GridSearchCV(n_jobs=-1).")] = True,
    sequential: Annotated[bool, typer.Option(help="Also the grid search with "
                                                  "pgml.max_parallel_fits 1.")] = False,
    out: Out = RESULTS, as_json: JsonOption = False,
) -> None:
    """pgml.train against the same library's fit outside, idle and with a busy process."""
    from pgml_flow.benchmarks import training

    with _bench("train", out, as_json) as run:
        figures = training.train_speed(_url(), repeat, grid, sequential, run.progress)
        run.sections["train"] = figures
        run.sections["targets"] = training.targets(figures)


@app.command("memory")
def memory(models: Models = 100, small_cache_mb: CacheMb = 4, model: Model = "xgboost",
           out: Out = RESULTS, as_json: JsonOption = False) -> None:
    """Memory of one backend with many cached models, and the native cache's bound."""
    from pgml_flow import benchmarks

    with _bench("memory", out, as_json, model) as run, \
            benchmarks.workload(_url(), 10_000, (model,), progress=run.progress) as work:
        run.sections["memory"] = benchmarks.memory(work, models, small_cache_mb, model,
                                                   run.progress)


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
    as_json: JsonOption = False,
) -> None:
    """Every benchmark on one workload, and the issue's targets against the figures."""
    from pgml_flow import benchmarks

    counts = _clients(clients)
    with _bench("all", out, as_json) as run, \
            benchmarks.workload(_url(), rows, progress=run.progress) as work:
        found = run.sections
        found["per_row"] = benchmarks.per_row(work, run.progress)
        found["batch"] = benchmarks.batch(work, run.progress)
        found["end_to_end"] = benchmarks.end_to_end(work, service_rows, progress=run.progress)
        found["concurrency"] = benchmarks.pgbench(work, counts, seconds, progress=run.progress)
        found["cold_start"] = benchmarks.cold_start(work, progress=run.progress)
        found["memory"] = benchmarks.memory(work, models, small_cache_mb, progress=run.progress)
        found["targets"] = benchmarks.check(
            [*found["per_row"], *found["end_to_end"], *found["cold_start"]], found["memory"])


# one server against a local Citus cluster: its own module (it starts two systems)
app.command("citus")(bench_citus.citus)


def _report(run: Run, name: str, out: Path, as_json: bool, *, interrupted: bool) -> Path:
    """Print the figures (tables, or JSON with --json) and save them; the file's path."""
    from pgml_flow import benchmarks

    found = run.sections
    extra: dict[str, Any] = {}
    if found.get("per_row"):
        extra["speedups"] = benchmarks.speedups(list(found["per_row"]))
    if found.get("end_to_end"):
        extra["ratios"] = benchmarks.ratios(list(found["end_to_end"]))
    if interrupted:
        extra["interrupted"] = True
    path = benchmarks.save(found, name, out, extra)
    if as_json:
        print_json(json.loads(path.read_text()))
        err_console.print(f"saved {path}")
        return path
    if "per_row" in found or "batch" in found:
        _print_predict(found.get("per_row", []), found.get("batch", []))
    if "cold_start" in found:
        _print_figures("Cold start: first prediction in a new connection", found["cold_start"])
    if "end_to_end" in found:
        _print_service(found["end_to_end"])
    if "concurrency" in found:
        _print_latency(found["concurrency"], run.model)
    if "memory" in found:
        _print_memory(found["memory"])
    if "train" in found:
        _print_figures("Training XGBoost on digits: pgml.train vs the same fit outside "
                       "(rows = training rows)", found["train"])
    if found.get("targets"):
        _print_targets(found["targets"])
    console.print(f"saved {path}")
    return path


# -- rendering -----------------------------------------------------------------------------
def _print_figures(title: str, figures: Sequence[Figure],
                   ratio: dict[str, float] | None = None, ratio_header: str = "") -> None:
    columns = ["benchmark", "model", "rows", "seconds", "rows/s", "µs/row"]
    if ratio is not None:
        columns.append(ratio_header)
    table = new_table(*columns, "note", title=title)
    for f in figures:
        cells = [f.benchmark, f.model, f"{f.rows:,}", f"{f.seconds:.4f}",
                 f"{f.rows_per_second:,.0f}", f"{f.us_per_row:,.2f}"]
        if ratio is not None:
            value = ratio.get(f.benchmark)
            cells.append(f"{value:,.1f}x" if value else "")
        table.add_row(*cells, f.note)
    console.print(table)


def _print_predict(per_row: Sequence[Figure], batch: Sequence[Figure]) -> None:
    from pgml_flow import benchmarks

    speedups = benchmarks.speedups(list(per_row))
    _print_figures("pgml.predict per row (one core) and predict_batch", [*per_row, *batch])
    for model, speedup in speedups.items():
        console.print(f"{model}: native per-row scoring is {speedup:,.0f}x the Python path")


def _print_service(figures: Sequence[Figure]) -> None:
    from pgml_flow import benchmarks

    ratios = benchmarks.ratios(list(figures))
    _print_figures("End to end (read, predict, write back): in the database vs a service",
                   figures, ratios, "in-db is")


def _print_latency(levels: Sequence[Latency], model: str) -> None:
    table = new_table("clients", "threads", "transactions", "failed", "tps", "rows/s",
                      "p50 ms", "p95 ms", "p99 ms", "max ms",
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
    table = new_table("path", "models", "cache limit MB", "cached", "cache MiB",
                      "native ctx MiB", "backend ctx MiB", "RSS MiB", "RssAnon growth MiB",
                      "bounded", title="Memory of one backend that predicted with each model once")
    for m in figures:
        table.add_row(m.path, str(m.models), "" if m.cache_limit_mb is None
                      else str(m.cache_limit_mb), str(m.cached_models), _mib(m.cache_bytes),
                      _mib(m.native_context_bytes), _mib(m.backend_context_bytes),
                      _mib(m.rss_kb, 1024), _mib(m.rss_anon_growth_kb, 1024),
                      "" if m.bounded is None else ("yes" if m.bounded else "NO"))
    console.print(table)


def _print_targets(targets: Sequence[Target]) -> None:
    table = new_table("target", "wanted", "measured", "met", title="Targets of the issue")
    for t in targets:
        table.add_row(t.name, t.target, t.measured,
                      "-" if t.met is None else ("yes" if t.met else "no"))
    console.print(table)
