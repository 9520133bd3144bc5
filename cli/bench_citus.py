"""``pgml-flow bench citus``: one server against a local Citus cluster (issue 17).

The measurements are :mod:`pgml_flow.benchmarks.citus`'s; this module starts the two
systems (a scratch database on the server pgml-flow uses, and a coordinator with workers
under a ``PGML_FLOW_HOME`` of their own in /tmp), renders the figures and saves them.  As
with every ``bench`` command, a run interrupted or failing half-way prints and saves what
it measured (``"interrupted": true``) and still drops its database and stops its cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.output import JsonOption, console, err_console, flow, new_table, print_json
from cli.progress import steps

if TYPE_CHECKING:
    from pgml_flow.benchmarks.citus import Result

RESULTS = Path("bench/results")
NAME = "citus"


def citus(
    clients: Annotated[int, typer.Option(min=1, help="Synthetic clients on each system.")] = 6,
    issues: Annotated[int, typer.Option(min=10, help="Issues per client.")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data (same data on both "
                                           "systems).")] = 42,
    workers: Annotated[int, typer.Option(min=1, help="Citus workers.")] = 2,
    parallelism: Annotated[int, typer.Option(
        min=1, max=64, help="Clients retrained at once, on both systems.")] = 1,
    models: Annotated[str, typer.Option(help="Models retrained, comma-separated.")] =
        "trajectory,complexity,rework",
    sessions: Annotated[int, typer.Option(min=1, help="Concurrent BI sessions (the client's "
                                                      "login) per client.")] = 4,
    seconds: Annotated[float, typer.Option(min=0.1, help="Seconds of BI reads per client "
                                                         "and view.")] = 2.0,
    home: Annotated[Path | None, typer.Option(
        help="PGML_FLOW_HOME of the Citus cluster (default: a new directory in /tmp, deleted "
             "at the end unless --keep).")] = None,
    database: Annotated[str, typer.Option(
        help="Scratch database on the single server.")] = "pgmlflow_bench_citus",
    keep: Annotated[bool, typer.Option(help="Keep the scratch database and leave the Citus "
                                            "cluster running.")] = False,
    out: Annotated[Path, typer.Option(envvar="PGML_FLOW_BENCH_DIR",
                                      help="Directory for the JSON results.")] = RESULTS,
    as_json: JsonOption = False,
) -> None:
    """Retrain of all clients and BI prediction throughput: one server against a Citus
    coordinator with workers on this machine, same data, as ratios (docs/scale-out.md)."""
    from pgml_flow.benchmarks import citus as bench
    from pgml_flow.benchmarks.common import BenchmarkError

    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = set(chosen) - set(bench.MODELS)
    if not chosen or unknown:
        raise BenchmarkError(f"--models wants some of {', '.join(bench.MODELS)}; "
                             f"got {models!r}")
    pf = flow()
    pf.require_current_schema()
    result = bench.Result(list(range(1, clients + 1)), issues, seed, parallelism, sessions,
                          seconds)
    made = home is None
    citus_home = home or Path(tempfile.mkdtemp(prefix="pgml-flow-bench-citus-", dir="/tmp"))
    citus_home.mkdir(parents=True, exist_ok=True)
    citus_home.chmod(0o755)  # the server's OS user must reach its nodes' directories
    settings = dataclasses.replace(pf.settings, home=citus_home)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    stopped: BaseException | None = None
    try:
        with steps(f"bench {NAME}", log=True) as step, contextlib.ExitStack() as stack:
            single = stack.enter_context(bench.single_server(
                pf.url, database, keep=keep, local=not pf.settings.external, progress=step))
            cluster = stack.enter_context(bench.local_citus(settings, workers, keep=keep,
                                                            progress=step))
            bench.run([single, cluster], clients=clients, issues=issues, seed=seed,
                      models=chosen, parallelism=parallelism, sessions=sessions,
                      seconds=seconds, progress=step, result=result)
    except (KeyboardInterrupt, Exception) as exc:
        stopped = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
        if made and not keep:
            shutil.rmtree(citus_home, ignore_errors=True)
    if stopped is not None and not (result.retrains or result.bi):
        raise _interrupted(stopped, "interrupted before any figure was measured")
    path = report(result, out, as_json, interrupted=stopped is not None)
    if stopped is not None:
        err_console.print(f"the figures measured before the error are saved in {path}")
        raise _interrupted(stopped, f"interrupted; the figures measured so far are saved in "
                                    f"{path}")


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _interrupted(exc: BaseException, message: str) -> BaseException:
    from pgml_flow.errors import Interrupted

    return Interrupted(message) if isinstance(exc, KeyboardInterrupt) else exc


def report(result: Result, out: Path, as_json: bool, *, interrupted: bool = False) -> Path:
    """Save the figures as JSON in ``out`` and print them (tables, or the JSON)."""
    import json

    from pgml_flow.benchmarks import save

    if result.loadavg_end is None:
        from pgml_flow.benchmarks.citus import loadavg

        result.loadavg_end = loadavg()
    extra = result.extra() | ({"interrupted": True} if interrupted else {})
    path = save(result.sections(), NAME, out, extra)
    if as_json:
        print_json(json.loads(path.read_text()))
        err_console.print(f"saved {path}")
        return path
    render(result)
    console.print(f"saved {path}")
    return path


def _load(load: tuple[float, float, float] | None) -> str:
    return "-" if load is None else f"{load[0]:.1f}"


def _cpu(cpu: dict[str, float] | None, scale: float = 1.0, unit: str = "") -> str:
    if cpu is None:
        return "-"
    total = sum(cpu.values()) * scale
    if len(cpu) == 1:
        return f"{total:,.2f}{unit}"
    parts = " + ".join(f"{v * scale:,.2f}" for v in cpu.values())
    return f"{total:,.2f}{unit} ({parts})"


def render(result: Result) -> None:
    """The tables: retrain, BI reads, ratios, the Citus plans, the load average."""
    clients, issues = len(result.clients), result.issues
    table = new_table("system", "clients", "models", "parallel", "wall s", "s per client",
                      "db core-s (per node)", "core-s per client", "statuses", "load 1m",
                      title=f"Forced retrain of every client ({clients} clients x {issues:,} "
                            "issues, same data on both)")
    for r in result.retrains:
        cpu = r.cpu_total
        table.add_row(r.system, str(r.clients), ",".join(r.models), str(r.parallelism),
                      f"{r.wall_seconds:.1f}", f"{r.per_client:.2f}", _cpu(r.cpu_seconds),
                      "-" if cpu is None else f"{cpu / r.clients:.2f}",
                      ", ".join(f"{n} {s}" for s, n in sorted(r.statuses.items())),
                      f"{_load(r.loadavg_start)}-{_load(r.loadavg_end)}")
    console.print(table)
    for r in result.retrains:
        if r.failures:
            console.print(f"{r.system}: {len(r.failures)} of {sum(r.statuses.values())} "
                          f"runs failed, so its retrain figures (and their ratios) cover less "
                          f"work than the other system's; first: {r.failures[0]}",
                          markup=False, highlight=False)
    table = new_table("system", "view", "sessions", "queries", "failed", "rows/s", "queries/s",
                      "p50 ms", "p95 ms", "max ms", "db core-ms per query (per node)",
                      "load 1m",
                      title="BI reads as each client's login, one client at a time (a whole "
                            "view per query, every row predicted)")
    for b in result.bi:
        p50, p95 = b.percentile(0.5), b.percentile(0.95)
        table.add_row(b.system, b.view, str(b.sessions), f"{b.queries:,}", str(b.failed),
                      f"{b.rows_per_second:,.0f}", f"{b.queries_per_second:,.1f}",
                      "-" if p50 is None else f"{p50:,.1f}",
                      "-" if p95 is None else f"{p95:,.1f}",
                      f"{max(b.latencies_ms):,.1f}" if b.latencies_ms else "-",
                      _cpu(b.cpu_seconds, 1000 / b.queries, "") if b.queries else "-",
                      f"{_load(b.loadavg_start)}-{_load(b.loadavg_end)}")
    console.print(table)
    for b in result.bi:
        if b.error:
            console.print(f"{b.system}, {b.view}: {b.error}")
    ratios = result.ratios()
    if ratios:
        table = new_table("figure", "Citus / one server",
                          title="Ratios (above 1: Citus takes longer or serves more)")
        for name, value in ratios.items():
            table.add_row(name, f"{value:.2f}x")
        console.print(table)
    for plan in result.plans:
        counts = ", ".join(str(n) for n in plan.task_counts) or "none"
        console.print(f"EXPLAIN on Citus: {plan.title}, as {plan.role} "
                      f"(Task Count: {counts})")
        console.print(plan.error or plan.text, markup=False, highlight=False)
    console.print(f"load average at start: {_load(result.loadavg_start)}; at end: "
                  f"{_load(result.loadavg_end)} ({_cpus()} CPUs)")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
