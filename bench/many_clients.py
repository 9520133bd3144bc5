"""Many clients: retraining N clients x 3 models, one client at a time against in parallel.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/many_clients.py --clients 10,100 --issues 10000 --parallelism 1,2

For each number of clients it creates a scratch database ``pgmlflow_bench_many_<n>`` on the
shared cluster (dropped at the end unless ``--keep``), seeds it with the synthetic generator
(``pgml_flow.seed``: ``--issues`` per client, the same ``--seed`` and as-of date for every
size, so client 1 has the same data in every database), runs ``VACUUM (ANALYZE)``, trains the
champions (a forced retrain at the highest parallelism: no champion, so each challenger is
deployed), then times one forced retrain of the three built-in models for every client at
each ``--parallelism`` (``RetrainOptions(force=True, parallelism=p)``: every run trains a
challenger, scores it and the champion on the held-out rows, records its event).

It prints, per size and parallelism: the wall seconds, the seconds per client (wall / n),
the per-client ratio against the smallest size at the same parallelism (1.0 = linear
growth), the speed-up against parallelism 1, the statuses and the load average; then a
projection to 1,000 and 10,000 clients from a least-squares line wall = a + b * n through
the measured sizes (per parallelism), which assumes what the measured sizes show: cost
linear in the number of clients. The machine may be shared: the load average at the start
and end of each timed run says how much of its two cores the run had. Figures are saved as
JSON in ``bench/results/many-clients-<timestamp>.json``.

``--reuse`` keeps each scratch database and, when one already holds the seeded clients
with their three models deployed, times it again without seeding and training the
champions (100 clients x 10k issues take minutes to prepare).

Because the machine may be shared, wall time alone says little: each timed run also
reports the **core-seconds** the database spent (its backends with their training children
and search workers, sampled from ``/proc`` every 0.2 s while they run: the embedded
cluster only) and the benchmark's own process; core-seconds / cores is the wall time the
run would take on an idle machine, whatever the load while it was measured.

After the forced runs, ``--scheduled`` times the product's normal path: a retrain without
``force`` (the retraining policy decides per client and model: enough new rows, a
quality drop, stale data). Right after the forced retrain nothing would be due, so the
first ``--due`` share of the clients (default 0.1) is made due as new data would make it:
their deployed models' recorded training rows are lowered by 1,000 (more than every
model's ``min_new_records``) and their recorded model choices forgotten (``rows_key``),
so that each trains its candidates again as on changed rows. The others only decide.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
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
from pgml_flow.benchmarks.cpu import BackendCpu, Node
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.retraining import RetrainOptions
from pgml_flow.settings import Settings

MODELS = ("trajectory", "complexity", "rework")
#: a shared cluster may restart (another build of the native scorer): wait for it, up to
#: about a minute, instead of failing the client (the run's time then includes the wait)
PATIENT: dict[str, Any] = {"attempts": 6, "backoff_seconds": 2.0}
DATABASE = "pgmlflow_bench_many"
#: the seed's "today": fixed, so every run generates the same data
AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
RESULTS = Path(__file__).resolve().parent / "results"
PROJECT_TO = (1_000, 10_000)

console = Console(width=None if sys.stdout.isatty() else 170)
err_console = Console(stderr=True)


@dataclasses.dataclass(frozen=True)
class Run:
    """One timed forced retrain of every model for every client of a size."""

    clients: int
    parallelism: int
    wall_seconds: float
    #: sum of the runs' own durations (TrainingResult.seconds): the work, whatever the overlap
    run_seconds: float
    statuses: dict[str, int]
    training_rows: int
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float]
    failures: list[str]
    #: core-seconds of the database's backends (and their children) during the run; None
    #: when the server's processes cannot be read (not the embedded cluster)
    db_cpu_seconds: float | None = None
    #: core-seconds of this process (connections, decisions, events)
    client_cpu_seconds: float = 0.0
    #: forced (every model retrained) or scheduled (the policy decides)
    kind: str = "forced"

    @property
    def per_client(self) -> float:
        return self.wall_seconds / self.clients

    @property
    def cpu_per_client(self) -> float | None:
        """Core-seconds per client, database and this process."""
        if self.db_cpu_seconds is None:
            return None
        return (self.db_cpu_seconds + self.client_cpu_seconds) / self.clients

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "per_client_seconds": self.per_client,
                "cpu_per_client_seconds": self.cpu_per_client}


@dataclasses.dataclass(frozen=True)
class Prepared:
    clients: int
    issues: int
    seed_seconds: float
    champion_seconds: float
    champion_parallelism: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="10,100", help="numbers of clients, comma-separated")
    parser.add_argument("--issues", type=int, default=10_000, help="issues per client")
    parser.add_argument("--parallelism", default="1,2",
                        help="retraining parallelisms to time, comma-separated")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the scratch databases and reuse one already seeded and "
                             "trained (same --issues and --seed)")
    parser.add_argument("--scheduled", action="store_true",
                        help="also time a scheduled (not forced) retrain of every client")
    parser.add_argument("--only-scheduled", action="store_true",
                        help="time the scheduled run alone (no forced runs)")
    parser.add_argument("--due", type=float, default=0.1,
                        help="share of the clients made due for the scheduled run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON")
    parser.add_argument("--name", default=DATABASE,
                        help=f"scratch databases' name prefix (default {DATABASE})")
    args = parser.parse_args()
    sizes, levels = _numbers(args.clients, "--clients"), _numbers(args.parallelism,
                                                                   "--parallelism")
    load_start = os.getloadavg()
    console.print(f"load average at start: {_load(load_start)} ({os.cpu_count()} CPUs)")
    base = PgmlFlow()
    admin = with_dbname(base.url, "postgres")
    prepared: list[Prepared] = []
    runs: list[Run] = []
    for clients in sizes:
        database = f"{args.name}_{clients}"
        try:
            ready, timed = _measure(base, admin, database, clients, args.issues, args.seed,
                                    levels, reuse=args.reuse,
                                    scheduled=args.scheduled or args.only_scheduled,
                                    due=args.due, forced=not args.only_scheduled)
            prepared.append(ready)
            runs += timed
            _print(prepared, runs, _project(runs), args.issues)  # so far: the run is long
        except Exception as exc:  # a restart of the shared server, say: keep what was measured
            console.print(f"[red]{clients} clients failed: {exc}")
        finally:
            if not (args.keep or args.reuse):
                drop_database(admin, database)
    load_end = os.getloadavg()
    projection = _project(runs)
    _print(prepared, runs, projection, args.issues)
    console.print(f"load average at start: {_load(load_start)}; at end: {_load(load_end)} "
                  f"({os.cpu_count()} CPUs)")
    path = save({"prepared": prepared, "runs": runs}, "many-clients", args.out, {
        "args": {"clients": sizes, "issues_per_client": args.issues, "seed": args.seed,
                 "parallelism": levels, "as_of": AS_OF.isoformat(), "models": MODELS},
        "loadavg": {"start": load_start, "end": load_end},
        "projection": projection,
    })
    console.print(f"saved {path}")


def _measure(base: PgmlFlow, admin: str, database: str, clients: int, issues: int,
             seed: int, levels: list[int], *, reuse: bool = False,
             scheduled: bool = False, due: float = 0.1,
             forced: bool = True) -> tuple[Prepared, list[Run]]:
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(),
                                        database_url=with_dbname(base.url, database)))
    ids = list(range(1, clients + 1))
    most = max(levels)
    seed_seconds = 0.0
    missing = _untrained(flow, admin, database, clients, issues) if reuse else None
    if missing is not None:
        _progress(f"{clients} clients: reusing {database}, seeded")
        flow.upgrade()  # made by an older checkout, say
    else:
        _progress(f"{clients} clients: creating {database} (load {_load(os.getloadavg())})")
        recreate_database(admin, database)
        flow.upgrade()
        _progress(f"{clients} clients: seeding {issues:,} issues per client")
        started = time.perf_counter()
        flow.seed(clients=clients, issues=issues, seed=seed, as_of=AS_OF)
        seed_seconds = time.perf_counter() - started
        with flow.connect(autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        missing = ids
    started = time.perf_counter()
    if missing:
        _progress(f"{clients} clients: training the champions of {len(missing)}, "
                  f"{most} at a time")
        flow.retrain(list(MODELS), missing, now=AS_OF,
                     options=RetrainOptions(force=True, parallelism=most, **PATIENT))
    prepared = Prepared(clients, issues, seed_seconds, time.perf_counter() - started, most)
    plan = ([(level, True) for level in levels] if forced else []) + (
        [(most, False)] if scheduled else [])
    runs = []
    for level, force in plan:
        kind = "forced" if force else "scheduled"
        if not force:
            made_due = _make_due(flow, ids[:math.ceil(len(ids) * due)])
            kind = f"scheduled, {made_due} due"
        _progress(f"{clients} clients: {kind} retrain, {level} at a time")
        load_start = os.getloadavg()
        cpu_start = time.process_time()
        with BackendCpu([Node("server", with_dbname(admin, database))]) as cpu:
            started = time.perf_counter()
            results = flow.retrain(list(MODELS), ids, now=AS_OF,
                                   options=RetrainOptions(force=force, parallelism=level,
                                                          **PATIENT))
            wall = time.perf_counter() - started
        runs.append(Run(
            clients, level, wall, sum(r.seconds for r in results),
            dict(Counter(r.status for r in results)), sum(r.training_rows for r in results),
            load_start, os.getloadavg(),
            [f"client {r.client_id} {r.model_name}: {r.detail}" for r in results
             if r.status == "failed"], cpu.total, time.process_time() - cpu_start, kind))
        _progress(f"{clients} clients, {kind}, {level} at a time: {wall:.1f} s, "
                  f"{cpu.total or 0:.1f} database core-s (load {_load(os.getloadavg())})")
    return prepared, runs


def _make_due(flow: PgmlFlow, ids: list[int]) -> int:
    """Make ``ids`` due for retraining as new rows would (see the module docstring)."""
    with flow.connect() as conn:
        conn.execute("UPDATE ml_model_baselines b SET training_rows = b.training_rows - 1000"
                     " WHERE b.client_id = ANY(%s) AND b.model_id IN (SELECT d.id FROM"
                     " pgml.deployed_models d)", (ids,))
        conn.execute("UPDATE ml_model_candidates SET rows_key = NULL WHERE client_id = ANY(%s)",
                     (ids,))
        conn.commit()
    return len(ids)


def _untrained(flow: PgmlFlow, admin: str, database: str, clients: int,
               issues: int) -> list[int] | None:
    """When ``database`` holds ``clients`` clients seeded with ``issues`` issues each, those
    without a deployed model of each of MODELS (a run stopped by a restart, say); None:
    it must be made again."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (database,)).fetchone():
            return None
    try:
        with flow.connect() as conn:
            row = conn.execute("SELECT (SELECT count(*) FROM clients), (SELECT count(*)"
                               " FROM issues WHERE client_id = %s)", (clients,)).fetchone()
            if row is None or tuple(row) != (clients, issues):
                return None
            return [int(r[0]) for r in conn.execute(
                "SELECT c.client_id FROM clients c WHERE (SELECT count(*) FROM"
                " pgml.deployed_models d WHERE d.name IN (SELECT m || '__client_' ||"
                " c.client_id FROM unnest(%s::text[]) AS m)) < %s ORDER BY 1",
                (list(MODELS), len(MODELS))).fetchall()]
    except Exception:  # not migrated, half seeded: made again
        return None


def _project(runs: list[Run]) -> list[dict[str, Any]]:
    """Per parallelism, wall = a + b * clients by least squares over the sizes measured
    (one size: the line through the origin), evaluated at PROJECT_TO."""
    out = []
    runs = [r for r in runs if r.kind == "forced"]
    for level in sorted({r.parallelism for r in runs}):
        points = [(r.clients, r.wall_seconds) for r in runs if r.parallelism == level]
        if len(points) >= 2:
            mean_x = sum(x for x, _ in points) / len(points)
            mean_y = sum(y for _, y in points) / len(points)
            slope = (sum((x - mean_x) * (y - mean_y) for x, y in points)
                     / sum((x - mean_x) ** 2 for x, _ in points))
            fixed = mean_y - slope * mean_x
        else:
            (x, y), = points
            slope, fixed = y / x, 0.0
        largest = max(points)
        cpu = [r.cpu_per_client for r in runs
               if r.parallelism == level and r.clients == largest[0]]
        idle = (cpu[0] / min(level, os.cpu_count() or 1)) if cpu and cpu[0] else None
        out.append({"parallelism": level, "fixed_seconds": fixed, "seconds_per_client": slope,
                    # what the core-seconds would take with `level` cores of their own
                    "idle_seconds_per_client": idle,
                    "projected_idle_wall_seconds": ({n: idle * n for n in PROJECT_TO}
                                                    if idle else None),
                    "projected_wall_seconds": {n: fixed + slope * n for n in PROJECT_TO},
                    # the other reading: the largest size's cost per client, overhead included
                    "largest_per_client": largest[1] / largest[0],
                    "projected_at_largest_rate": {n: largest[1] / largest[0] * n
                                                  for n in PROJECT_TO}})
    return out


def _print(prepared: list[Prepared], runs: list[Run], projection: list[dict[str, Any]],
           issues: int) -> None:
    table = Table("clients", "seed s", "champions s", title="Preparation (not timed below)")
    for ready in prepared:
        table.add_row(str(ready.clients), f"{ready.seed_seconds:.1f}",
                      f"{ready.champion_seconds:.1f} ({ready.champion_parallelism} at a time)")
    console.print(table)
    smallest = {r.parallelism: r for r in sorted(runs, key=lambda r: -r.clients)
                if r.kind == "forced"}
    sequential = {r.clients: r for r in runs if r.parallelism == 1 and r.kind == "forced"}
    table = Table("clients", "run", "parallel", "wall s", "s per client", "per-client ratio",
                  "speed-up", "sum of runs s", "core-s per client (db + bench)", "statuses",
                  "load 1m",
                  title=f"Retrain of {', '.join(MODELS)} for every client (forced: each "
                        f"model retrained; scheduled: as the policy decides; "
                        f"{issues:,} issues per client)")
    for r in runs:
        base = smallest.get(r.parallelism)
        one = sequential.get(r.clients)
        forced = r.kind == "forced"
        cpu = r.cpu_per_client
        table.add_row(
            str(r.clients), r.kind, str(r.parallelism), f"{r.wall_seconds:.1f}",
            f"{r.per_client:.2f}",
            f"{r.per_client / base.per_client:.2f}" if forced and base else "-",
            f"{one.wall_seconds / r.wall_seconds:.2f}" if one and forced else "-",
            f"{r.run_seconds:.1f}",
            "-" if cpu is None else f"{cpu:.2f} ({(r.db_cpu_seconds or 0) / r.clients:.2f}"
                                    f" + {r.client_cpu_seconds / r.clients:.2f})",
            ", ".join(f"{n} {s}" for s, n in sorted(r.statuses.items())),
            f"{r.loadavg_start[0]:.1f}-{r.loadavg_end[0]:.1f}")
    console.print(table)
    table = Table("parallel", "fixed s", "s per client",
                  *(f"{n:,} clients" for n in PROJECT_TO), "largest size s per client",
                  *(f"{n:,} at that rate" for n in PROJECT_TO),
                  "idle cores s per client", *(f"{n:,} on idle cores" for n in PROJECT_TO),
                  title="Projection: least squares over the measured sizes (noisy with two "
                        "sizes on a loaded machine), and the largest size's rate")
    for p in projection:
        table.add_row(str(p["parallelism"]), f"{p['fixed_seconds']:.1f}",
                      f"{p['seconds_per_client']:.2f}",
                      *(_duration(p["projected_wall_seconds"][n]) for n in PROJECT_TO),
                      f"{p['largest_per_client']:.2f}",
                      *(_duration(p["projected_at_largest_rate"][n]) for n in PROJECT_TO),
                      *((f"{p['idle_seconds_per_client']:.2f}",
                         *(_duration(p["projected_idle_wall_seconds"][n]) for n in PROJECT_TO))
                        if p["idle_seconds_per_client"] else ("-",) * (1 + len(PROJECT_TO))))
    console.print(table)
    for r in runs:
        for failure in r.failures:
            console.print(f"[red]{r.clients} clients, {r.parallelism} at a time: {failure}")


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s ({seconds / 3600:.1f} h)" if seconds >= 3600 else f"{seconds:,.0f} s"


def _numbers(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        sys.exit(f"{option} wants positive numbers like 1,2; got {text!r}")
    return values


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def _progress(message: str) -> None:
    err_console.print(f"[dim]{time.strftime('%H:%M:%S')} {message}[/dim]")


if __name__ == "__main__":
    main()
