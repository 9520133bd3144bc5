"""Concurrency: pgbench clients running a BI prediction query at the same time.

The query averages the model's predictions over 1,000 consecutive rows from a random
start, as a dashboard tile would::

    SELECT avg(pgml.predict('pgml_flow_bench_xgboost', features))
      FROM pgml_flow_bench_rows WHERE id BETWEEN :lo AND :lo + 999

Each level runs ``pgbench -n -f script -c C -j min(C, 4) -T seconds -l``; throughput is
pgbench's tps (without connection time) and latencies come from the per-transaction
logs.  Each client's first transaction loads the model into its backend (the cold
start, measured on its own) and is left out of the percentiles.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql

from pgml_flow.benchmarks.common import (
    BenchmarkError,
    Progress,
    Workload,
    query,
    quiet,
)
from pgml_flow.postgres import find_installation
from pgml_flow.settings import Settings

CLIENTS = (1, 8, 32, 64)
#: rows each BI query scores
WINDOW = 1_000
_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


@dataclass(frozen=True)
class Latency:
    """One pgbench level: ``clients`` sessions running the BI query for ``seconds``."""

    clients: int
    threads: int
    seconds: float
    transactions: int
    failed: int
    tps: float
    rows_per_query: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rows_per_second(self) -> float:
        return self.tps * self.rows_per_query

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


def pgbench_path() -> Path:
    tool = find_installation(Settings.from_env().pg_bin).tool("pgbench")
    if not tool.exists():
        raise BenchmarkError(f"pgbench is missing ({tool}); install the postgresql package")
    return tool


def pgbench(work: Workload, clients: tuple[int, ...] = CLIENTS, seconds: int = 10,
                model_name: str = "xgboost", progress: Progress = quiet) -> list[Latency]:
    """One pgbench run per number of clients; the BI query on ``model_name``."""
    model = work.model(model_name)
    window = min(WINDOW, work.rows // 2)
    with work.connect() as conn:
        text = sql.SQL(query("bi_query")).format(
            project=sql.Literal(model.project), last=sql.Literal(window - 1)
        ).as_string(conn)
    script = f"\\set lo random(1, {work.rows - window + 1})\n{text};\n"
    pgbench = pgbench_path()
    levels: list[Latency] = []
    with tempfile.TemporaryDirectory(prefix="pgml-flow-pgbench-") as tmp:
        directory = Path(tmp)
        (directory / "bi.sql").write_text(script)
        for count in clients:
            progress(f"pgbench: {count} client(s) for {seconds} s")
            levels.append(_level(pgbench, work.url, directory, count, seconds, window))
    return levels


def _level(pgbench: Path, url: str, directory: Path, clients: int, seconds: int,
           window: int) -> Latency:
    threads = min(clients, 4)
    prefix = directory / f"c{clients}"
    command = [str(pgbench), "-n", "-f", str(directory / "bi.sql"), "-c", str(clients),
               "-j", str(threads), "-T", str(seconds), "-l", "--log-prefix", str(prefix), url]
    try:
        done = subprocess.run(command, cwd=directory, capture_output=True, text=True,
                              timeout=seconds + 120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"pgbench with {clients} clients did not finish in time") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BenchmarkError(f"pgbench with {clients} clients failed: {' / '.join(tail)}")
    latencies, total, failed = _read_logs(directory.glob(f"{prefix.name}.*"))
    if not latencies:
        raise BenchmarkError(f"pgbench with {clients} clients logged no transaction")
    match = _TPS.search(done.stdout)
    tps = float(match.group(1)) if match else total / seconds
    p50, p95, p99 = np.percentile(np.asarray(latencies) / 1000, [50, 95, 99]).tolist()
    return Latency(clients, threads, float(seconds), total, failed, tps, window,
                   p50, p95, p99, max(latencies) / 1000)


def _read_logs(paths: Iterable[Path]) -> tuple[list[float], int, int]:
    """Latencies (µs) from pgbench per-transaction logs (each client's first left out),
    the number of transactions and of failed ones."""
    latencies: list[float] = []
    total = failed = 0
    for path in paths:
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            total += 1
            if not fields[2].isdigit():  # "failed" / "skipped"
                failed += 1
            elif fields[1] != "0":  # transaction 0: the client's first, a cold start
                latencies.append(float(fields[2]))
    return latencies, total, failed
