"""Training speed: ``pgml.train`` against the same library's fit outside the database.

Issue 15, item 10.  The rows are scikit-learn's ``digits`` (1,797 images of 64 pixels) in
a table of their own; the model is XGBoost (160 trees, depth 4), and the search the
documentation's 6x4 XGBoost grid (``max_depth`` 1-6 x ``n_estimators`` 20-160, 5 folds).

* outside: a separate Python process (its imports done before the clock starts) reads the
  rows with psycopg, splits them as ``pgml.train`` does (75 % train, stratified), fits,
  pickles and INSERTs the model: what an application would do.  It fits at every thread
  setting (``n_jobs`` 1 and the library's default, one thread per core), interleaved, and
  the comparison takes the fastest: XGBoost's default threads spin in OpenMP barriers,
  and on a shared machine a descheduled thread makes the other wait (on two cores under
  load 12, its default took 34 s where one thread took 0.7 s), so the default alone
  would judge ``pgml.train`` against a fit nobody should run.  The grid search outside
  is ``GridSearchCV(n_jobs=-1)`` over one-thread estimators for the same reason (its
  processes already take every core), as ``pgml.train``'s workers fit;
* inside: ``pgml.train`` in a session that has trained once (the first training of a
  session, which imports the library, is reported on its own line).

Each figure is the median of ``repeat`` runs, outside and inside interleaved so that a
change of load strikes both; every run is measured idle and with one other busy process
(started here: a Python busy loop).  Ratios are of figures of the same run; the load the
machine had besides is printed with them (``os.getloadavg``).  Beside the wall-clock
figures, the CPU seconds each side spent (outside: its process and its server backend;
inside: the backend with its training child and workers, from ``/proc``, so only for a
server on this machine): on a shared machine they show the work each side does, which
the scheduler's noise hides in wall time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from pgml_flow import database, sqlfiles
from pgml_flow.benchmarks.common import PREFIX, Figure, Progress, quiet
from pgml_flow.benchmarks.cpu import process_cpu_seconds
from pgml_flow.benchmarks.targets import Target

PROJECT = PREFIX + "train"
GRID_PROJECT = PREFIX + "train_grid"
HYPERPARAMS = {"n_estimators": 160, "max_depth": 4}
GRID = {"max_depth": [1, 2, 3, 4, 5, 6], "n_estimators": [20, 40, 80, 160]}
FOLDS = 5
MODEL = "xgboost"

OUTSIDE = "fit outside (read, fit, store)"
#: one figure per thread setting outside; OUTSIDE is the fastest of them
OUTSIDE_THREADS = "fit outside, n_jobs {threads}"
OUTSIDE_CPU = "fit outside, CPU seconds"
INSIDE_CPU = "pgml.train, CPU seconds"
INSIDE = "pgml.train"
INSIDE_FIRST = "pgml.train, first in a session"
GRID_OUTSIDE = "GridSearchCV(n_jobs=-1) outside, one-thread estimators"
GRID_INSIDE = "pgml.train grid search"
GRID_SEQUENTIAL = "pgml.train grid search, max_parallel_fits 1"
IDLE = "idle"
BUSY = "one busy process"


def query(name: str) -> str:
    return sqlfiles.query(name, "bench_train")


def train_speed(url: str, repeat: int = 3, grid: bool = True, sequential: bool = False,
                progress: Progress = quiet, loads: tuple[str, ...] = (IDLE, BUSY)) -> list[Figure]:
    """The figures of every comparison (see the module doc); the table is dropped after."""
    with database.connect(url, autocommit=True) as conn:
        progress("creating the digits table")
        rows = _create_table(conn)
        try:
            with _outside(url) as outside:
                figures = []
                for load in loads:
                    with _busy(load == BUSY):
                        figures += _single(url, outside, rows, repeat, load, progress)
                if grid:
                    figures += _grid(url, outside, rows, sequential, progress)
                return figures
        finally:
            progress("dropping the benchmark table and projects")
            for project in (PROJECT, GRID_PROJECT):
                conn.execute(query("delete_project"), {"project": project})
            conn.execute(query("drop_table"))


def _create_table(conn: Any) -> int:
    import sklearn.datasets

    data = sklearn.datasets.load_digits()
    conn.execute(query("drop_table"))
    conn.execute(query("create_table"))
    with conn.cursor() as cur, cur.copy(query("copy_rows")) as copy:
        for image, target in zip(data.data, data.target, strict=True):
            copy.write_row(([float(v) for v in image], int(target)))
    return len(data.data)


def _train_rows(rows: int) -> int:
    return rows - math.ceil(rows * 0.25)  # as pgml.train and train_test_split count


def _note(load: str, runs: int) -> str:
    return f"{load}, median of {runs}, load avg {os.getloadavg()[0]:.1f}"


def thread_settings() -> tuple[int, ...]:
    """The outside fit's ``n_jobs`` values: one thread, and the library's default (a
    thread per usable core, as XGBoost counts them)."""
    return tuple(sorted({1, len(os.sched_getaffinity(0))}))


def _single(url: str, outside: _Outside, rows: int, repeat: int, load: str,
            progress: Progress) -> list[Figure]:
    progress(f"one training ({load}): outside at n_jobs {thread_settings()} and pgml.train, "
             f"{repeat} times each")
    params = {"project": PROJECT, "hyperparams": json.dumps(HYPERPARAMS)}
    with database.connect(url, autocommit=True) as conn:
        backend = _Cpu.of(conn)
        first = _timed(conn, "train", params)
        inside: list[tuple[float, float | None]] = []
        out: dict[int, list[tuple[float, float | None]]] = {t: [] for t in thread_settings()}
        for _ in range(repeat):
            for threads in out:
                out[threads].append(outside.run(f"single {threads}"))
            cpu = backend.seconds()
            wall = _timed(conn, "train", params)
            inside.append((wall, backend.since(cpu)))
    n = _train_rows(rows)
    medians = {t: statistics.median(w for w, _ in v) for t, v in out.items()}
    best = min(medians, key=lambda t: medians[t])
    others = ", ".join(f"n_jobs {t}: {s:.2f} s" for t, s in medians.items() if t != best)
    figures = [Figure(OUTSIDE_THREADS.format(threads=t), MODEL, n, s, _note(load, repeat))
               for t, s in medians.items()]
    figures += [
        Figure(OUTSIDE, MODEL, n, medians[best],
               f"{_note(load, repeat)}, n_jobs {best}: the fastest ({others})"),
        Figure(INSIDE, MODEL, n, statistics.median(w for w, _ in inside), _note(load, repeat)),
        Figure(INSIDE_FIRST, MODEL, n, first, f"{load}, imports the library"),
    ]
    # the outside's CPU at its cheapest setting (one thread spends least; on a loaded
    # machine two threads win wall-clock time by getting two shares of the scheduler)
    cpu_out = {t: statistics.median(c for _, c in v if c is not None)
               for t, v in out.items() if all(c is not None for _, c in v)}
    cpu_in = [c for _, c in inside if c is not None]
    if cpu_out and cpu_in:
        cheapest = min(cpu_out, key=lambda t: cpu_out[t])
        figures += [
            Figure(OUTSIDE_CPU, MODEL, n, cpu_out[cheapest],
                   f"{load}, n_jobs {cheapest} (the least CPU), process + its backend, "
                   f"median of {repeat}"),
            Figure(INSIDE_CPU, MODEL, n, statistics.median(cpu_in),
                   f"{load}, backend + training child, median of {len(cpu_in)}"),
        ]
    return figures


def _grid(url: str, outside: _Outside, rows: int, sequential: bool,
          progress: Progress) -> list[Figure]:
    params = {"project": GRID_PROJECT, "grid": json.dumps(GRID),
              "args": json.dumps({"cv": FOLDS})}
    n = _train_rows(rows)
    figures = []
    progress("grid search outside: GridSearchCV(n_jobs=-1)")
    figures.append(Figure(GRID_OUTSIDE, MODEL, n, outside.run("grid")[0], _note(IDLE, 1)))
    with database.connect(url, autocommit=True) as conn:
        limits = conn.execute(query("limits")).fetchone()
        fits = f"max_parallel_fits {limits[0] if limits else '?'}"
        progress(f"grid search in pgml.train ({fits})")
        _timed(conn, "train", {"project": GRID_PROJECT,
                               "hyperparams": json.dumps(HYPERPARAMS)})  # a warm session
        figures.append(Figure(GRID_INSIDE, MODEL, n, _timed(conn, "train_grid", params),
                              f"{_note(IDLE, 1)}, {fits}"))
        if sequential:
            progress("grid search in pgml.train, one fit at a time")
            conn.execute("SET pgml.max_parallel_fits = 1")
            figures.append(Figure(GRID_SEQUENTIAL, MODEL, n,
                                  _timed(conn, "train_grid", params), _note(IDLE, 1)))
    return figures


class _Cpu:
    """CPU seconds of a server backend and its waited-for children (the training child and
    its workers), read from ``/proc``: None when the server runs on another machine."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    @classmethod
    def of(cls, conn: Any) -> _Cpu:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        return cls(int(row[0]) if row else None)

    def seconds(self) -> float | None:
        if self.pid is None:
            return None
        try:
            return process_cpu_seconds(self.pid)
        except OSError:
            return None

    def since(self, before: float | None) -> float | None:
        now = self.seconds()
        return None if now is None or before is None else now - before


def _timed(conn: Any, name: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    conn.execute(query(name), params).fetchall()
    return time.perf_counter() - started


@contextlib.contextmanager
def _busy(on: bool) -> Iterator[None]:
    """One other process keeping a core busy (a Python loop) while the block runs."""
    if not on:
        yield
        return
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        loop.kill()
        loop.wait()


class _Outside:
    """The outside fits, in a Python process of their own that reads commands on stdin."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pgml_flow.benchmarks.training", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._read()  # ready: imports done

    def _read(self) -> tuple[float, float | None]:
        """Wall seconds of a command, and CPU seconds (None: not measurable)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            from pgml_flow.benchmarks.common import BenchmarkError

            raise BenchmarkError("the outside fitting process ended; see its error above")
        wall, cpu = line.split()
        return float(wall), None if cpu == "-" else float(cpu)

    def run(self, command: str) -> tuple[float, float | None]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)


@contextlib.contextmanager
def _outside(url: str) -> Iterator[_Outside]:
    outside = _Outside(url)
    try:
        yield outside
    finally:
        with contextlib.suppress(Exception):
            outside.close()
        if outside.process.poll() is None:
            outside.process.kill()
            outside.process.wait()


def targets(figures: list[Figure]) -> list[Target]:
    """The issue's ratios: one training within 1.3x, a grid search within 1.5x."""

    def find(benchmark: str, note_start: str) -> Figure | None:
        return next((f for f in figures if f.benchmark == benchmark
                     and f.note.startswith(note_start)), None)

    out = []
    for load in (IDLE, BUSY):
        inside, outside = find(INSIDE, load), find(OUTSIDE, load)
        if inside and outside:
            ratio = inside.seconds / outside.seconds
            setting = re.search(r"n_jobs \d+(?=: the fastest)", outside.note)
            which = f", outside at {setting.group(0)}" if setting else ""
            out.append(Target(f"pgml.train vs the same fit outside at its fastest ({load})",
                              "<= 1.3x", f"{ratio:.2f}x ({inside.seconds:.2f} s vs "
                              f"{outside.seconds:.2f} s{which})", ratio <= 1.3))
        inside, outside = find(INSIDE_CPU, load), find(OUTSIDE_CPU, load)
        if inside and outside:
            ratio = inside.seconds / outside.seconds
            out.append(Target(f"the same, in CPU seconds ({load})", "<= 1.3x",
                              f"{ratio:.2f}x ({inside.seconds:.2f} s vs "
                              f"{outside.seconds:.2f} s)", ratio <= 1.3))
    inside, outside = find(GRID_INSIDE, IDLE), find(GRID_OUTSIDE, IDLE)
    if inside and outside:
        ratio = inside.seconds / outside.seconds
        out.append(Target("6x4 grid search vs GridSearchCV(n_jobs=-1)", "<= 1.5x",
                          f"{ratio:.2f}x ({inside.seconds:.1f} s vs {outside.seconds:.1f} s)",
                          ratio <= 1.5))
    return out


# -- the outside process -----------------------------------------------------------------------
def _serve(url: str) -> None:
    """Read commands (``single THREADS``, ``grid``) on stdin, print each one's seconds on
    stdout."""
    import numpy as np
    import psycopg
    import xgboost
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

    def read(conn: psycopg.Connection) -> tuple[Any, Any]:
        rows = conn.execute(query("read_rows")).fetchall()
        x = np.array([r[0] for r in rows], dtype=np.float64)
        y = np.array([r[1] for r in rows])
        x_train, _, y_train, _ = train_test_split(x, y, test_size=0.25, stratify=y,
                                                  random_state=0)
        return x_train, y_train

    def store(conn: psycopg.Connection, model: Any) -> None:
        conn.execute(query("store_model"), {"data": pickle.dumps(model, protocol=5)})

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query("create_store"))
        backend = _Cpu.of(conn)
        xgboost.XGBClassifier(n_estimators=2, verbosity=0).fit(*read(conn))  # warm
        print(0.0, 0.0, flush=True)
        for command in sys.stdin:
            name, *args = command.split()
            cpu, server = time.process_time(), backend.seconds()
            started = time.perf_counter()
            x, y = read(conn)
            model: Any = xgboost.XGBClassifier(**HYPERPARAMS, verbosity=0, random_state=0,
                                               n_jobs=int(args[0]) if args else None)
            if name == "grid":
                model = GridSearchCV(
                    xgboost.XGBClassifier(verbosity=0, random_state=0, n_jobs=1), GRID,
                    scoring="f1_macro", n_jobs=-1,
                    cv=StratifiedKFold(FOLDS, shuffle=True, random_state=0))
            model.fit(x, y)
            store(conn, getattr(model, "best_estimator_", model))
            wall = time.perf_counter() - started
            # a grid's loky workers are other processes: its CPU is not measured
            server_cpu = backend.since(server)
            used = "-" if name == "grid" or server_cpu is None else \
                f"{time.process_time() - cpu + server_cpu:.4f}"
            print(wall, used, flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1])
