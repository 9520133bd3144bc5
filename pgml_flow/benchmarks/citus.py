"""One server against a Citus cluster: retraining every client and BI prediction throughput.

Issue 17's benchmark (``pgml-flow bench citus``).  The same synthetic clients
(:mod:`pgml_flow.seed`: the same ``--seed``, as-of date and client ids, so byte for byte the
same rows) are loaded into two *systems* on this machine:

* **one server**: a scratch database on the server pgml-flow uses (the embedded cluster, or
  ``DATABASE_URL``'s), migrated like any other;
* **Citus**: a coordinator and workers (:class:`pgml_flow.citus_cluster.CitusCluster`, its
  own ``PGML_FLOW_HOME`` so that it never touches another cluster), migrated with the same
  history, which distributes every per-client table by ``client_id``.

On each, in the same order and with the same settings:

1. **retrain**: one forced retrain of the built-in models for every client
   (``PgmlFlow.retrain``, ``RetrainOptions(force=True, parallelism=p)``: the product's path;
   on Citus it trains each client on the worker that holds its rows).  Reported: wall time,
   per client, the statuses, and the **core-seconds** the database's backends used (their
   own and their reaped children's CPU, read from ``/proc`` every 0.2 s on every node):
   on a shared machine the wall time says how busy the machine was, the core-seconds what
   the work cost, which is what a projection to other hardware can use;
2. **BI reads**: for one client at a time, ``sessions`` concurrent sessions logged in as the
   client's BI login (a real tenant role, over the server's socket, as a BI tool would over
   TCP) read each ``analytics`` view whole for their client (``WHERE client_id = <id>``,
   every row predicted), in a loop for ``seconds``.  Reported per view: queries, failures
   (with the first error), rows/s, queries/s, latency p50/p95/max, and the core-seconds
   per node (on Citus: how much was the coordinator's, how much the workers').

Ratios are Citus / one server of figures of the same run.  The load average is read at the
start and the end of each phase (the machine may be shared).  On Citus, the plans of a
one-client BI query are kept too, as the tenant login: with the ``WHERE client_id = <id>``
that docs/scale-out.md asks BI tools to add (a router plan: ``Task Count: 1``), and
without it (the tenant policy alone, which Citus cannot route on).

:func:`run` also works on databases prepared elsewhere (the test suite's Citus cluster):
``first_client`` puts the clients in an id range of their own, and ``cleanup`` deletes
them (rows, models, BI logins) afterwards instead of dropping a database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgml_flow import sqlfiles
from pgml_flow.benchmarks.common import BenchmarkError, Progress, quiet
from pgml_flow.benchmarks.cpu import BackendCpu, Node

SOURCE = "bench_citus"
MODELS = ("trajectory", "complexity", "rework")
#: the seed's "today": fixed, so every run generates the same data
AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
#: each BI view and the prediction column a read computes for every row
VIEWS: dict[str, str] = {
    "issue_story_points": "predicted_story_points",
    "epic_forecasts": "predicted_lead_time_days",
    "pull_request_rework_risk": "rework_probability",
}
SINGLE = "one server"


def query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


@dataclass
class System:
    """One side of the comparison: where to connect, and the nodes to read CPU from."""

    name: str
    url: str
    #: every server holding the database's backends (one; or coordinator and workers);
    #: empty when they are not on this machine (their /proc cannot be read)
    nodes: list[Node] = field(default_factory=list)
    citus: bool = False


@dataclass(frozen=True)
class Retrain:
    """One timed forced retrain of every model for every client on one system."""

    system: str
    clients: int
    models: tuple[str, ...]
    parallelism: int
    wall_seconds: float
    #: sum of the runs' own durations (TrainingResult.seconds)
    run_seconds: float
    statuses: dict[str, int]
    training_rows: int
    #: core-seconds of the database's backends (and children) per node; None: not readable
    cpu_seconds: dict[str, float] | None
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float]
    failures: list[str]

    @property
    def per_client(self) -> float:
        return self.wall_seconds / self.clients

    @property
    def cpu_total(self) -> float | None:
        return None if self.cpu_seconds is None else sum(self.cpu_seconds.values())

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "per_client_seconds": self.per_client,
                "cpu_total_seconds": self.cpu_total}


@dataclass(frozen=True)
class BiRead:
    """One BI view read by ``sessions`` concurrent tenant sessions, a client at a time."""

    system: str
    view: str
    clients: int
    sessions: int
    queries: int
    failed: int
    rows: int
    seconds: float
    latencies_ms: list[float]
    cpu_seconds: dict[str, float] | None
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float]
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def queries_per_second(self) -> float:
        return self.queries / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def cpu_ms_per_query(self) -> dict[str, float] | None:
        if self.cpu_seconds is None or not self.queries:
            return None
        return {node: s * 1000 / self.queries for node, s in self.cpu_seconds.items()}

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("latencies_ms")
        return {**data, "rows_per_second": self.rows_per_second,
                "queries_per_second": self.queries_per_second,
                "p50_ms": self.percentile(0.5), "p95_ms": self.percentile(0.95),
                "max_ms": max(self.latencies_ms, default=None),
                "cpu_ms_per_query": self.cpu_ms_per_query}


@dataclass(frozen=True)
class Plan:
    """An EXPLAIN on Citus and the task counts it shows."""

    title: str
    role: str
    text: str
    error: str | None = None

    @property
    def task_counts(self) -> list[int]:
        return [int(n) for n in re.findall(r"Task Count: (\d+)", self.text)]

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "task_counts": self.task_counts}


@dataclass
class Result:
    """What :func:`run` measured (figures so far when it stopped half-way)."""

    clients: list[int]
    issues: int
    seed: int
    parallelism: int
    sessions: int
    seconds: float
    seeding: dict[str, float] = field(default_factory=dict)
    retrains: list[Retrain] = field(default_factory=list)
    bi: list[BiRead] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    loadavg_start: tuple[float, float, float] = field(default_factory=loadavg)
    loadavg_end: tuple[float, float, float] | None = None

    def ratios(self) -> dict[str, float]:
        """Citus / one server: retrain wall and core-seconds; per BI view rows/s (when
        rows were read), queries/s and p50 latency."""
        out: dict[str, float] = {}
        single = next((r for r in self.retrains if r.system == SINGLE), None)
        other = next((r for r in self.retrains if r.system != SINGLE), None)
        if single and other:
            out["retrain wall"] = other.wall_seconds / single.wall_seconds
            if single.cpu_total and other.cpu_total:
                out["retrain core-seconds"] = other.cpu_total / single.cpu_total
        for view in VIEWS:
            a = next((b for b in self.bi if b.system == SINGLE and b.view == view), None)
            b = next((b for b in self.bi if b.system != SINGLE and b.view == view), None)
            if not (a and b and a.queries and b.queries):
                continue
            if a.rows_per_second and b.rows_per_second:
                out[f"{view} rows/s"] = b.rows_per_second / a.rows_per_second
            out[f"{view} queries/s"] = b.queries_per_second / a.queries_per_second
            pa, pb = a.percentile(0.5), b.percentile(0.5)
            if pa and pb:
                out[f"{view} p50"] = pb / pa
        return out

    def sections(self) -> dict[str, Sequence[Any]]:
        return {"retrain": self.retrains, "bi": self.bi, "plans": self.plans}

    def extra(self) -> dict[str, Any]:
        return {"args": {"clients": self.clients, "issues_per_client": self.issues,
                         "seed": self.seed, "as_of": AS_OF.isoformat(), "models": MODELS,
                         "parallelism": self.parallelism, "sessions": self.sessions,
                         "seconds_per_client_and_view": self.seconds},
                "seeding_seconds": self.seeding,
                "ratios_citus_over_single": self.ratios(),
                "loadavg": {"start": self.loadavg_start, "end": self.loadavg_end}}


# -- the run ---------------------------------------------------------------------------------
def run(systems: Sequence[System], *, clients: int, issues: int, seed: int = 42,
        first_client: int = 1, models: Sequence[str] = MODELS, parallelism: int = 1,
        sessions: int = 4, seconds: float = 3.0, cleanup: bool = False,
        progress: Progress = quiet, result: Result | None = None) -> Result:
    """Seed, retrain and read on each system in turn (see the module doc); with ``cleanup``
    the clients are deleted from each system afterwards (rows, models, BI logins).

    ``result`` collects the figures as they are measured, so that a caller interrupted
    half-way still has them."""
    from pgml_flow.app import PgmlFlow
    from pgml_flow.retraining import RetrainOptions
    from pgml_flow.settings import Settings

    if clients < 1 or issues < 1 or sessions < 1 or seconds <= 0:
        raise BenchmarkError("--clients, --issues and --sessions must be positive and "
                             f"--seconds more than 0 (got {clients}, {issues}, {sessions}, "
                             f"{seconds})")
    ids = list(range(first_client, first_client + clients))
    out = result or Result(ids, issues, seed, parallelism, sessions, seconds)
    password = secrets.token_urlsafe(18)
    for system in systems:
        flow = PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=system.url))
        try:
            progress(f"{system.name}: seeding {clients} clients x {issues:,} issues")
            started = time.perf_counter()
            flow.seed(clients=clients, issues=issues, seed=seed, as_of=AS_OF,
                      first_client_id=first_client, replace=True)
            out.seeding[system.name] = time.perf_counter() - started
            with flow.connect(autocommit=True) as conn:
                conn.execute("ANALYZE")
            progress(f"{system.name}: forced retrain of {', '.join(models)}, "
                     f"{parallelism} at a time (load {loadavg()[0]:.1f})")
            start_load = loadavg()
            with BackendCpu(system.nodes) as cpu:
                started = time.perf_counter()
                results = flow.retrain(list(models), ids, now=AS_OF,
                                       options=RetrainOptions(force=True,
                                                              parallelism=parallelism))
                wall = time.perf_counter() - started
            out.retrains.append(Retrain(
                system.name, clients, tuple(models), parallelism, wall,
                sum(r.seconds for r in results), dict(Counter(r.status for r in results)),
                sum(r.training_rows for r in results), cpu.seconds, start_load, loadavg(),
                [f"client {r.client_id} {r.model_name}: {r.detail}" for r in results
                 if r.status == "failed"]))
            progress(f"{system.name}: retrain took {wall:.1f} s")
            logins = {cid: str(login.role) for cid in ids
                      for login in flow.grant_bi_access([cid], password=password)}
            urls = {cid: login_url(system.url, role, password) for cid, role in logins.items()}
            for view, column in VIEWS.items():
                progress(f"{system.name}: {view}, {sessions} sessions per client, "
                         f"{seconds:g} s each")
                out.bi.append(read_view(system, view, column, urls, sessions, seconds))
            if system.citus:
                out.plans += plans(urls[ids[0]], ids[0])
        finally:
            if cleanup:
                progress(f"{system.name}: deleting the benchmark's clients")
                delete_clients(flow, ids)
    out.loadavg_end = loadavg()
    return out


def login_url(url: str, role: str, password: str) -> str:
    """``url`` with the BI login as its user (and its password)."""
    params: dict[str, Any] = conninfo_to_dict(url)
    params.update(user=role, password=password)
    params.pop("options", None)
    return make_conninfo("", **params)


def read_view(system: System, view: str, column: str, urls: dict[int, str], sessions: int,
              seconds: float) -> BiRead:
    """``sessions`` threads, each its own login session, read ``view`` for ``seconds`` per
    client (one client at a time); the first query of each session (its cold start: the
    models load) is not counted."""
    statement = sql.SQL(query("bi_view")).format(view=sql.Identifier("analytics", view),
                                                prediction=sql.Identifier(column))
    latencies: list[float] = []
    counts = Counter[str]()
    errors: list[str] = []
    lock = threading.Lock()
    elapsed = 0.0

    def session(client_id: int, url: str, until: list[float],
                ready: threading.Barrier) -> None:
        params = {"client_id": client_id}
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement, params).fetchall()  # cold start, not counted
                ready.wait()
                while time.perf_counter() < until[0]:
                    started = time.perf_counter()
                    row = conn.execute(statement, params).fetchone()
                    took = (time.perf_counter() - started) * 1000
                    with lock:
                        latencies.append(took)
                        counts["queries"] += 1
                        counts["rows"] += int(row[0]) if row else 0
        except (psycopg.Error, threading.BrokenBarrierError) as exc:
            with lock:
                counts["failed"] += 1
                if not isinstance(exc, threading.BrokenBarrierError):
                    errors.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            with contextlib.suppress(threading.BrokenBarrierError):
                ready.abort()

    start_load = loadavg()
    with BackendCpu(system.nodes) as cpu:
        for client_id, url in urls.items():
            until = [float("inf")]
            ready = threading.Barrier(sessions + 1)
            threads = [threading.Thread(target=session, args=(client_id, url, until, ready),
                                        daemon=True) for _ in range(sessions)]
            for thread in threads:
                thread.start()
            try:
                ready.wait(timeout=120)
            except threading.BrokenBarrierError:
                until[0] = 0.0
            else:
                until[0] = time.perf_counter() + seconds
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            if until[0]:
                elapsed += time.perf_counter() - started
            if errors:  # a view that fails fails for every client: say so once
                break
    return BiRead(system.name, view, len(urls), sessions, counts["queries"], counts["failed"],
                  counts["rows"], elapsed, latencies, cpu.seconds, start_load, loadavg(),
                  errors[0] if errors else None)


def plans(tenant_url: str, client_id: int) -> list[Plan]:
    """On Citus: the plan of a one-client BI query as the tenant login, with the
    ``client_id`` filter BI tools add (routed: one task) and without it."""
    view, column = "issue_story_points", VIEWS["issue_story_points"]
    parts = {"view": sql.Identifier("analytics", view), "prediction": sql.Identifier(column),
             "client_id": sql.Literal(client_id)}
    wanted = [
        (f"analytics.{view} WHERE client_id = {client_id}", "explain_bi_view"),
        (f"analytics.{view} without the client_id filter", "explain_bi_view_unfiltered"),
    ]
    role = str(conninfo_to_dict(tenant_url).get("user"))
    out = []
    for title, name in wanted:
        try:
            with psycopg.connect(tenant_url, autocommit=True, connect_timeout=10) as conn:
                text = "\n".join(str(r[0]) for r in conn.execute(
                    sql.SQL(query(name)).format(**parts)).fetchall())
            out.append(Plan(title, role, text))
        except psycopg.Error as exc:
            out.append(Plan(title, role, "", str(exc).strip().splitlines()[0]))
    return out


def delete_clients(flow: Any, ids: Sequence[int]) -> None:
    """Delete the clients the benchmark seeded: their models, BI logins and every row of
    theirs (tables referencing others first, ``clients`` last)."""
    from pgml_flow.seed import delete_client_models

    with flow.connect(autocommit=True) as conn:
        for cid in ids:
            delete_client_models(conn, cid)
    for cid in ids:
        flow.revoke_bi_access(cid)
    with flow.connect(autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(query("client_tables")).fetchall()]
        for cid in ids:
            for table in tables:
                conn.execute(sql.SQL(query("delete_client_rows")).format(
                    table=sql.Identifier("public", table)), {"client_id": cid})
        conn.execute("SELECT pgml_flow.refresh_training_summary()")


# -- the systems ----------------------------------------------------------------------------
@contextlib.contextmanager
def single_server(base_url: str, database: str, *, keep: bool = False,
                  local: bool = True, progress: Progress = quiet) -> Iterator[System]:
    """A scratch database ``database`` on the server of ``base_url``, migrated; dropped on
    exit unless ``keep``.  ``local``: the server runs on this machine (CPU is read)."""
    from pgml_flow.app import PgmlFlow
    from pgml_flow.database import drop_database, recreate_database, with_dbname
    from pgml_flow.settings import Settings

    admin = with_dbname(base_url, "postgres")
    url = with_dbname(base_url, database)
    progress(f"{SINGLE}: creating and migrating {database}")
    recreate_database(admin, database)
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))
    try:
        flow.upgrade()
        yield System(SINGLE, url, [Node("server", url)] if local else [])
    finally:
        if not keep:
            progress(f"{SINGLE}: dropping {database} and its BI logins")
            with contextlib.suppress(Exception):  # a half-migrated database has none
                flow.revoke_bi_access()  # roles belong to the server, not the database
            drop_database(admin, database)


def citus_system(cluster: Any, name: str | None = None) -> System:
    """The local Citus cluster ``cluster`` (a started CitusCluster) as a system."""
    url = cluster.url()
    database = conninfo_to_dict(url).get("dbname")
    nodes = [Node("coordinator", url)] + [
        Node(worker.name, worker.url(database)) for worker in cluster.workers()]
    label = name or f"Citus (coordinator + {len(nodes) - 1} workers)"
    return System(label, url, nodes, citus=True)


@contextlib.contextmanager
def local_citus(settings: Any, workers: int, *, keep: bool = False,
                progress: Progress = quiet,
                on_start: Callable[[Any], None] | None = None) -> Iterator[System]:
    """A local Citus cluster under ``settings.home`` with ``workers`` workers, migrated;
    stopped on exit unless ``keep`` (its data stays under the home either way)."""
    from pgml_flow.app import PgmlFlow

    flow = PgmlFlow(dataclasses.replace(settings, database_url=None, port=None))
    progress(f"Citus: starting a coordinator and {workers} workers under {settings.home}")
    flow.start_citus(workers)
    try:
        if on_start is not None:
            on_start(flow.citus)
        url = flow.citus.url()
        progress("Citus: migrating (the schema distributed by client_id)")
        PgmlFlow(dataclasses.replace(settings, database_url=url)).upgrade()
        yield citus_system(flow.citus)
    finally:
        if not keep:
            progress("Citus: stopping the cluster")
            flow.citus.stop()
