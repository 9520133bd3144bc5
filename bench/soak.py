"""Load and soak: BI dashboards of many clients through PgBouncer while models retrain.

Run from the repository root (the embedded cluster must be running, and PgBouncer installed:
``apt-get install pgbouncer``; ``./dev`` does not need it, only this benchmark does)::

    .venv/bin/python bench/soak.py --minutes 10 --sessions 100 --clients 10

It creates a scratch database ``pgmlflow_bench_soak`` on the shared cluster (dropped at the
end unless ``--keep``), seeds ``--clients`` synthetic clients, trains their three built-in
models (the champions), and gives each client a BI login of its own (``pgml-flow bi
grant``: roles ``pgmlflow_soak_<id>``, dropped at the end). Then, for ``--minutes``:

* PgBouncer (Debian's, started by this script as its own process, as the cluster's server
  user since it refuses to run as root, on a free loopback port with a temporary config) in
  **transaction** pooling, at most ``--server-connections`` backends for the database,
  ``--pool-size`` per login (docs/operations.md, "Connection pooling", says why);
* ``--sessions`` pgbench sessions spread over the clients' BI logins (one pgbench process
  per login), each through PgBouncer, loading a *dashboard* in a loop: a page of
  ``analytics.issue_story_points``, of ``analytics.epic_forecasts`` and of
  ``analytics.pull_request_rework_risk``, each query predicting with the client's deployed
  model as the login's RLS allows;
* meanwhile what the scheduler does: a forced retrain of one model for every client in turn
  (``flow.retrain``, ``--retrain-parallelism`` at a time, promotions included, so that the
  BI reads see redeploys), then the refresh jobs (``flow.refresh``), round after round;
* every ``--sample-seconds``, the memory of every backend of the database (``VmRSS`` and
  ``RssAnon`` of /proc/<pid>/status: RssAnon is the private memory, where the model caches
  live; VmRSS also counts the shared buffers the backend touched).

It prints errors (failed dashboards, aborted sessions), dashboards per second, p50/p95/p99
latency (each session's first dashboard, a cold start, left out), per minute the
throughput, p95 and the largest backend's RssAnon (bounded: the last minute's within 1.25x
the second's), the retrain rounds and their statuses, and the load average the run had.
Figures are saved in ``bench/results/soak-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

from pgml_flow.app import PgmlFlow
from pgml_flow.benchmarks.common import machine
from pgml_flow.benchmarks.concurrency import pgbench_path
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.retraining import RetrainOptions
from pgml_flow.settings import Settings
from pgml_flow.training import TrainingResult

MODELS = ("trajectory", "complexity", "rework")
DATABASE = "pgmlflow_bench_soak"
ROLE = "pgmlflow_soak_{}"
AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
RESULTS = Path(__file__).resolve().parent / "results"
#: one dashboard: a page of each BI view (a pgbench script)
DASHBOARD = Path(__file__).resolve().parent / "soak_dashboard.sql"
PGBOUNCER_INI = """[databases]
{alias} = host={socket_dir} port={port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {directory}/userlist.txt
pool_mode = transaction
max_client_conn = {max_clients}
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = {server_connections}
server_reset_query =
server_idle_timeout = 60
query_wait_timeout = 60
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""

console = Console(width=None if sys.stdout.isatty() else 170)
err_console = Console(stderr=True)


@dataclasses.dataclass
class Sample:
    seconds: float
    backends: int
    rss_total_mb: float
    rss_max_mb: float
    anon_max_mb: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--sessions", type=int, default=100, help="concurrent BI sessions")
    parser.add_argument("--clients", type=int, default=10, help="clients (one BI login each)")
    parser.add_argument("--issues", type=int, default=2000, help="issues per client")
    parser.add_argument("--server-connections", type=int, default=0,
                        help="PgBouncer's max_db_connections: backends serving the sessions "
                             "(0: --clients x --pool-size; fewer starves whole logins, see "
                             "docs/operations.md)")
    parser.add_argument("--pool-size", type=int, default=1,
                        help="PgBouncer's default_pool_size: backends per BI login")
    parser.add_argument("--retrain-parallelism", type=int, default=1)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(pgbouncer).exists():
        sys.exit("pgbouncer is not installed: apt-get install pgbouncer (docs/operations.md)")
    args.server_connections = args.server_connections or args.clients * args.pool_size
    if args.sessions < args.clients:
        sys.exit("--sessions must be at least --clients (one session per BI login or more)")

    base = PgmlFlow()
    admin = with_dbname(base.url, "postgres")
    load_start = os.getloadavg()
    console.print(f"load average at start: {_load(load_start)} ({os.cpu_count()} CPUs)")
    ids = list(range(1, args.clients + 1))
    url = with_dbname(base.url, DATABASE)
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))
    password = secrets.token_urlsafe(16)
    try:
        _prepare(admin, flow, ids, args, password)
        report = _soak(base, flow, ids, args, password, pgbouncer)
    finally:
        try:
            from pgml_flow import isolation

            with psycopg.connect(url, autocommit=True) as conn:
                isolation.revoke_bi_access(conn)  # the roles are the cluster's, not the db's
        except psycopg.Error as exc:
            _progress(f"could not drop the soak's BI logins: {exc}")
        if not args.keep:
            drop_database(admin, DATABASE)
    load_end = os.getloadavg()
    report["loadavg"] = {"start": load_start, "end": load_end}
    report["args"] = vars(args) | {"out": str(args.out)}
    report["machine"] = machine()
    _print(report)
    console.print(f"load average at start: {_load(load_start)}; at end: {_load(load_end)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"soak-{time.strftime('%Y%m%dT%H%M%S')}.json"
    import json

    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    console.print(f"saved {path}")


def _prepare(admin: str, flow: PgmlFlow, ids: list[int], args: argparse.Namespace,
             password: str) -> None:
    _progress(f"creating {DATABASE}, seeding {len(ids)} clients x {args.issues:,} issues")
    recreate_database(admin, DATABASE)
    flow.upgrade()
    flow.seed(clients=len(ids), issues=args.issues, seed=args.seed, as_of=AS_OF)
    _progress("training the champions")
    flow.retrain(list(MODELS), ids, now=AS_OF,
                 options=RetrainOptions(force=True, parallelism=2))
    for cid in ids:
        flow.grant_bi_access([cid], role=ROLE.format(cid), password=password)


def _soak(base: PgmlFlow, flow: PgmlFlow, ids: list[int], args: argparse.Namespace,
          password: str, pgbouncer: str) -> dict[str, Any]:
    seconds = int(args.minutes * 60)
    cluster = base.cluster
    user = cluster.server_user()
    port = int(re.search(r"port=(\d+)", flow.url).group(1))  # type: ignore[union-attr]
    listen = _free_port()
    with tempfile.TemporaryDirectory(prefix="pgml-flow-soak-") as tmp:
        directory = Path(tmp)
        (directory / "userlist.txt").write_text("".join(
            f'"{ROLE.format(cid)}" "{password}"\n' for cid in ids))
        (directory / "pgbouncer.ini").write_text(PGBOUNCER_INI.format(
            alias="soak", socket_dir=cluster.socket_dir, port=port, database=DATABASE,
            listen_port=listen, directory=directory, max_clients=args.sessions + 20,
            pool_size=args.pool_size, server_connections=args.server_connections))
        shutil.chown(directory, user)
        for path in directory.iterdir():
            shutil.chown(path, user)
        bouncer = subprocess.Popen([pgbouncer, str(directory / "pgbouncer.ini")], user=user,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for_port(listen, bouncer)
            return _run(flow, ids, args, password, directory, listen, seconds)
        finally:
            bouncer.terminate()
            bouncer.wait(timeout=30)
            log = (directory / "pgbouncer.log")
            tail = log.read_text().splitlines()[-5:] if log.exists() else []
            _progress("pgbouncer log tail: " + " / ".join(tail))


def _run(flow: PgmlFlow, ids: list[int], args: argparse.Namespace, password: str,
         directory: Path, listen: int, seconds: int) -> dict[str, Any]:
    pgbench = str(pgbench_path())
    counts = [args.sessions // len(ids) + (1 if k < args.sessions % len(ids) else 0)
              for k in range(len(ids))]
    stop = threading.Event()
    samples: list[Sample] = []
    rounds: list[dict[str, Any]] = []
    started = time.time()
    sampler = threading.Thread(target=_sample, args=(flow, stop, samples, started,
                                                     args.sample_seconds), daemon=True)
    trainer = threading.Thread(target=_retrain_loop, args=(flow, ids, stop, rounds,
                                                          args.retrain_parallelism, started),
                               daemon=True)
    _progress(f"soak: {args.sessions} sessions over {len(ids)} BI logins for {seconds} s, "
              "through PgBouncer; retraining meanwhile")
    procs = []
    for cid, count in zip(ids, counts, strict=True):
        conninfo = (f"host=127.0.0.1 port={listen} dbname=soak user={ROLE.format(cid)} "
                    f"password={password}")
        procs.append(subprocess.Popen(
            [pgbench, "-n", "-f", str(DASHBOARD), "-c", str(count),
             "-j", "1", "-T", str(seconds), "-l", "--log-prefix",
             str(directory / f"client{cid}"), conninfo],
            cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    sampler.start()
    trainer.start()
    outputs = [p.communicate(timeout=seconds + 600) for p in procs]
    stop.set()
    trainer.join()
    sampler.join()
    elapsed = time.time() - started
    aborted = sum(len(re.findall(r"client \d+ script \d+ aborted", err)) for _, err in outputs)
    errors = [line for _, err in outputs for line in err.splitlines()
              if "ERROR" in line or "FATAL" in line or "aborted" in line][:10]
    transactions = _read_logs(directory)
    return _figures(transactions, samples, rounds, aborted, errors, elapsed, started,
                    [p.returncode for p in procs])


def _read_logs(directory: Path) -> list[tuple[float, float, bool]]:
    """(end time, latency ms, failed) of every dashboard but each session's first."""
    out = []
    for path in directory.glob("client*.*"):
        for line in path.read_text().splitlines():
            f = line.split()
            if len(f) < 6:
                continue
            failed = not f[2].isdigit()
            if f[1] == "0" and not failed:
                continue  # the session's first dashboard: a cold start
            end = float(f[4]) + float(f[5]) / 1e6
            out.append((end, float(f[2]) / 1000 if not failed else float("nan"), failed))
    return out


def _figures(transactions: list[tuple[float, float, bool]], samples: list[Sample],
             rounds: list[dict[str, Any]], aborted: int, errors: list[str], elapsed: float,
             started: float, codes: list[int | None]) -> dict[str, Any]:
    ok = np.array([t[1] for t in transactions if not t[2]])
    failed = sum(t[2] for t in transactions)
    p50, p95, p99 = (np.percentile(ok, [50, 95, 99]).tolist() if len(ok) else [None] * 3)
    minutes = []
    for m in range(int(elapsed // 60) + 1):
        inside = [t for t in transactions if m * 60 <= t[0] - started < (m + 1) * 60]
        lat = np.array([t[1] for t in inside if not t[2]])
        mem = [s for s in samples if m * 60 <= s.seconds < (m + 1) * 60]
        if not inside and not mem:
            continue
        width = min(60.0, elapsed - m * 60)
        minutes.append({
            "minute": m + 1, "dashboards_per_s": len(inside) / width if width > 0 else 0,
            "p95_ms": float(np.percentile(lat, 95)) if len(lat) else None,
            "failed": sum(t[2] for t in inside),
            "backends": max((s.backends for s in mem), default=None),
            "anon_max_mb": max((s.anon_max_mb for s in mem), default=None),
            "rss_max_mb": max((s.rss_max_mb for s in mem), default=None),
            "rss_total_mb": max((s.rss_total_mb for s in mem), default=None),
            "retrains_ended": sum(1 for r in rounds if m * 60 <= r["ended"] < (m + 1) * 60),
        })
    anon = [m["anon_max_mb"] for m in minutes if m["anon_max_mb"] is not None]
    bounded = (anon[-1] <= 1.25 * anon[1]) if len(anon) >= 3 else None
    statuses = Counter(s for r in rounds for s in r["statuses"])
    return {
        "elapsed_seconds": elapsed, "dashboards": len(transactions), "failed": failed,
        "aborted_sessions": aborted, "pgbench_exit_codes": codes, "errors": errors,
        "dashboards_per_second": len(transactions) / elapsed,
        "queries_per_second": 3 * len(transactions) / elapsed,
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
        "max_ms": float(ok.max()) if len(ok) else None,
        "minutes": minutes, "memory_bounded": bounded,
        "retrain_rounds": rounds, "retrain_statuses": dict(statuses),
        "samples": [dataclasses.asdict(s) for s in samples],
    }


def _retrain_loop(flow: PgmlFlow, ids: list[int], stop: threading.Event,
                  rounds: list[dict[str, Any]], parallelism: int, started: float) -> None:
    """What the scheduler does, round after round: retrain a model for every client, then
    refresh the materialized views."""
    n = 0
    while not stop.is_set():
        model = MODELS[n % len(MODELS)]
        begun = time.time()
        statuses: list[str] = []  # every run as it ends: a round may be cut off at the end
        try:
            flow.retrain([model], ids, now=AS_OF, options=RetrainOptions(
                force=True, parallelism=parallelism, margin=-1.0, reason="soak"),
                should_stop=stop.is_set, progress=partial(_record, statuses))
            flow.refresh()
            error = None
        except Exception as exc:  # an interrupted round at the end, or a failure: recorded
            error = str(exc).splitlines()[0] if str(exc) else repr(exc)
        rounds.append({"model": model, "started": begun - started, "ended": time.time() - started,
                       "statuses": statuses, "error": error})
        n += 1


def _record(statuses: list[str], result: TrainingResult) -> None:
    statuses.append(result.status)


def _sample(flow: PgmlFlow, stop: threading.Event, samples: list[Sample], started: float,
            every: float) -> None:
    """RSS of every client backend of the database, from /proc (we run on the server)."""
    with psycopg.connect(flow.url, autocommit=True) as conn:
        while not stop.wait(every):
            pids = [int(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                " AND usename LIKE 'pgmlflow_soak_%'")]
            stats = [s for s in (_status(pid) for pid in pids) if s]
            if not stats:
                continue
            samples.append(Sample(
                time.time() - started, len(stats),
                sum(s["VmRSS"] for s in stats) / 1024, max(s["VmRSS"] for s in stats) / 1024,
                max(s.get("RssAnon", 0) for s in stats) / 1024))


def _status(pid: int) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # the backend ended meanwhile
    return {k: int(v.split()[0]) for k, v in
            (line.split(":", 1) for line in text.splitlines() if ":" in line)
            if k in ("VmRSS", "RssAnon")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            sys.exit(f"pgbouncer exited: {err.strip()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit("pgbouncer did not listen within 10 s")


def _print(report: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    table = Table("dashboards", "failed", "aborted sessions", "dashboards/s", "queries/s",
                  "p50 ms", "p95 ms", "p99 ms", "max ms", title=(
                      f"Soak: {report.get('elapsed_seconds', 0):.0f} s of BI dashboards "
                      "through PgBouncer while retraining"))
    table.add_row(f"{report['dashboards']:,}", str(report["failed"]),
                  str(report["aborted_sessions"]), f"{report['dashboards_per_second']:.1f}",
                  f"{report['queries_per_second']:.1f}", ms(report["p50_ms"]),
                  ms(report["p95_ms"]), ms(report["p99_ms"]), ms(report["max_ms"]))
    console.print(table)
    table = Table("minute", "dashboards/s", "p95 ms", "failed", "backends",
                  "max RssAnon MiB", "max VmRSS MiB", "sum VmRSS MiB", "retrains ended",
                  title="Per minute (memory: the largest backend of the soak's logins)")
    for m in report["minutes"]:
        table.add_row(str(m["minute"]), f"{m['dashboards_per_s']:.1f}", ms(m["p95_ms"]),
                      str(m["failed"]), str(m["backends"] or "-"), ms(m["anon_max_mb"]),
                      ms(m["rss_max_mb"]), ms(m["rss_total_mb"]), str(m["retrains_ended"]))
    console.print(table)
    console.print(f"memory bounded (last minute's max RssAnon <= 1.25 x the second's): "
                  f"{report['memory_bounded']}; retrain rounds: {len(report['retrain_rounds'])}"
                  f", statuses {report['retrain_statuses']}")
    for line in report["errors"]:
        console.print(f"[red]{line}")


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def _progress(message: str) -> None:
    err_console.print(f"[dim]{time.strftime('%H:%M:%S')} {message}[/dim]")


if __name__ == "__main__":
    main()
