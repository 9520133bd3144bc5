"""Retrain time of the three built-in models, and how it grows with the number of clients.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/retrain_bench.py --clients 2,4,8 --issues 3000 --repeat 3

For each number of clients it creates a scratch database ``pgmlflow_bench_retrain_<n>``
next to pgml-flow's (dropped at the end unless ``--keep``), seeds it with that many clients
and ``--issues`` issues per client (the same ``--seed`` and as-of date for every size, so
client 1 has the same data in every database), trains the three built-in models per client
(``pgml-flow train``), runs ``VACUUM (ANALYZE)``, then times ``--repeat`` forced retrains
of all three models for all clients (``RetrainOptions(force=True)``, ``now`` = the seed's
as-of date, so the data is fresh and every run trains a challenger, scores it against the
champion on the held-out rows and records its event). The retrain with the median wall
time is reported; every one is saved. It prints:

* per size: the training rows, the wall seconds of the whole retrain, per model the sum of
  the per-client durations (``TrainingResult.seconds``), seconds per client and the
  statuses (promoted / kept_champion / skipped / failed);
* growth relative to the smallest size: the ratio of wall seconds and of seconds per client
  (1.0 per client = linear in the number of clients);
* the load average (1, 5, 15 min) at the start and end of the run and of each size: the
  machine may be shared, and its figures are only as good as its quiet.

The figures are saved as JSON in ``bench/results/retrain-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pgml_flow.app import PgmlFlow
from pgml_flow.benchmarks import save
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.retraining import RetrainOptions
from pgml_flow.settings import Settings
from pgml_flow.training import TrainingResult

MODELS = ("trajectory", "complexity", "rework")
STATUSES = ("promoted", "kept_champion", "skipped", "failed")
DATABASE = "pgmlflow_bench_retrain"
#: the seed's "today": fixed, so every run of the benchmark generates the same data
AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
RESULTS = Path(__file__).resolve().parent / "results"

# wide enough for the table when the output is a file or a pipe
console = Console(width=None if sys.stdout.isatty() else 170)
err_console = Console(stderr=True)


@dataclasses.dataclass(frozen=True)
class Size:
    """One number of clients: its seed, initial training and timed forced retrain."""

    clients: int
    issues: int
    pull_requests: int
    #: training rows of the three models over all clients (as the retrain counted them)
    rows: int
    rows_by_model: dict[str, int]
    seed_seconds: float
    train_seconds: float
    #: wall seconds of flow.retrain(...) for all models and clients: the median repeat
    wall_seconds: float
    #: wall seconds of every repeat, in order
    walls: list[float]
    #: per model, the sum of the per-client TrainingResult.seconds (of the median repeat)
    model_seconds: dict[str, float]
    #: retrain statuses counted over all repeats
    statuses: dict[str, int]
    train_statuses: dict[str, int]
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float]
    failures: list[str]
    #: per repeat, every retrain run: client, model, status, training rows, seconds
    runs: list[list[dict[str, Any]]]

    @property
    def seconds_per_client(self) -> float:
        return self.wall_seconds / self.clients

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "seconds_per_client": self.seconds_per_client}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="2,4,8",
                        help="numbers of clients, comma-separated (one database each)")
    parser.add_argument("--issues", type=int, default=3000, help="issues per client")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3,
                        help="forced retrains per size; the one with the median wall time "
                             "is reported (every one is saved)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON")
    args = parser.parse_args()
    sizes = _sizes(args.clients)
    if args.repeat < 1:
        sys.exit(f"--repeat must be at least 1 (got {args.repeat})")

    load_start = os.getloadavg()
    console.print(f"load average at start: {_load(load_start)} ({os.cpu_count()} CPUs)")
    base = PgmlFlow()
    admin = with_dbname(base.url, "postgres")
    results: list[Size] = []
    for clients in sizes:
        database = f"{DATABASE}_{clients}"
        try:
            results.append(_measure(base, admin, database, clients, args.issues, args.seed,
                                    args.repeat))
        finally:
            if not args.keep:
                drop_database(admin, database)
    load_end = os.getloadavg()

    _print(results, args.issues, args.repeat)
    console.print(f"load average at start: {_load(load_start)}; at end: {_load(load_end)} "
                  f"({os.cpu_count()} CPUs)")
    failed = sum(r.statuses.get("failed", 0) + r.train_statuses.get("failed", 0)
                 for r in results)
    if failed:
        console.print(f"[red]{failed} failed run(s):[/red]")
        for r in results:
            for failure in r.failures:
                console.print(f"  {r.clients} clients: {failure}")
    path = save({"sizes": results}, "retrain", args.out, {
        "args": {"clients": sizes, "issues_per_client": args.issues, "seed": args.seed,
                 "as_of": AS_OF.isoformat(), "models": MODELS},
        "loadavg": {"start": load_start, "end": load_end},
        "growth": _growth(results),
    })
    console.print(f"saved {path}")


def _measure(base: PgmlFlow, admin: str, database: str, clients: int, issues: int,
             seed: int, repeat: int) -> Size:
    load_start = os.getloadavg()
    _progress(f"{clients} clients: creating {database} (load {_load(load_start)})")
    recreate_database(admin, database)
    url = with_dbname(base.url, database)
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))
    flow.upgrade()

    _progress(f"{clients} clients: seeding {issues:,} issues per client")
    started = time.perf_counter()
    report = flow.seed(clients=clients, issues=issues, seed=seed, as_of=AS_OF)
    seed_seconds = time.perf_counter() - started
    ids = list(range(1, clients + 1))

    _progress(f"{clients} clients: training {', '.join(MODELS)} (the champions)")
    started = time.perf_counter()
    trained = flow.train(list(MODELS), ids)
    train_seconds = time.perf_counter() - started

    # a steady state for the timing: no autovacuum/analyze of the fresh rows meanwhile
    with flow.connect(autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")

    walls: list[float] = []
    repeats: list[list[TrainingResult]] = []
    loads: list[tuple[float, float, float]] = []
    for n in range(1, repeat + 1):
        _progress(f"{clients} clients: forced retrain {n}/{repeat} of {', '.join(MODELS)}")
        started = time.perf_counter()
        retrained = flow.retrain(list(MODELS), ids, now=AS_OF,
                                 options=RetrainOptions(force=True))
        walls.append(time.perf_counter() - started)
        repeats.append(retrained)
        loads.append(os.getloadavg())
        _progress(f"{clients} clients: retrained in {walls[-1]:.1f} s (load {_load(loads[-1])})")
    # the repeat with the median wall time (the lower median for an even count)
    median = sorted(range(repeat), key=lambda i: walls[i])[(repeat - 1) // 2]
    retrained = repeats[median]
    everything = [r for runs in repeats for r in runs]

    return Size(
        clients=clients, issues=report.issues, pull_requests=report.pull_requests,
        rows=sum(r.training_rows for r in retrained),
        rows_by_model={m: sum(r.training_rows for r in retrained if r.model_name == m)
                       for m in MODELS},
        seed_seconds=seed_seconds, train_seconds=train_seconds, wall_seconds=walls[median],
        walls=walls,
        model_seconds={m: sum(r.seconds for r in retrained if r.model_name == m)
                       for m in MODELS},
        statuses=_count(everything), train_statuses=_count(trained),
        loadavg_start=load_start, loadavg_end=loads[-1],
        failures=[f"{step} client {r.client_id} {r.model_name}: {r.detail}"
                  for step, runs in (("train", trained), ("retrain", everything))
                  for r in runs if r.status == "failed"],
        runs=[[{"client_id": r.client_id, "model": r.model_name, "status": r.status,
                "training_rows": r.training_rows, "seconds": r.seconds,
                "key_metric": r.key_metric, "key_metric_value": r.key_metric_value}
               for r in runs] for runs in repeats],
    )


def _count(results: list[TrainingResult]) -> dict[str, int]:
    return dict(Counter(r.status for r in results))


def _growth(results: list[Size]) -> list[dict[str, float]]:
    if not results:
        return []
    smallest = min(results, key=lambda r: r.clients)
    return [{"clients": r.clients,
             "wall_ratio": r.wall_seconds / smallest.wall_seconds,
             "per_client_ratio": r.seconds_per_client / smallest.seconds_per_client}
            for r in results]


def _print(results: list[Size], issues: int, repeat: int) -> None:
    growth = {g["clients"]: g for g in _growth(results)}
    table = Table("clients", "rows", "wall s", "min-max", *(f"{m} s" for m in MODELS),
                  "s per client", "wall ratio", "per-client ratio", "statuses", "load 1m",
                  title=f"Forced retrain of {', '.join(MODELS)} for every client "
                        f"({issues:,} issues per client; median of {repeat} retrains, "
                        f"statuses of all)")
    for r in results:
        g = growth[r.clients]
        statuses = ", ".join(f"{r.statuses[s]} {s}" for s in STATUSES if r.statuses.get(s))
        statuses = statuses.replace("kept_champion", "kept")
        table.add_row(
            str(r.clients), f"{r.rows:,}", f"{r.wall_seconds:.1f}",
            f"{min(r.walls):.1f}-{max(r.walls):.1f}",
            *(f"{r.model_seconds.get(m, 0.0):.1f}" for m in MODELS),
            f"{r.seconds_per_client:.2f}", f"{g['wall_ratio']:.2f}",
            f"{g['per_client_ratio']:.2f}", statuses,
            f"{r.loadavg_start[0]:.2f}-{r.loadavg_end[0]:.2f}")
    console.print(table)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        sys.exit(f"--clients wants positive numbers like 2,4,8; got {text!r}")
    return sizes


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def _progress(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")


if __name__ == "__main__":
    main()
