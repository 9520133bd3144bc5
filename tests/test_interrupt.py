"""A running pgml.train stops on a cancel, a statement timeout and a fast shutdown.

The fit runs in a child of the backend (``pgml_flow/server/child.py``); these tests find
that child in ``/proc`` (the server runs on this machine), interrupt the training the way
an operator would, and measure how long the server takes to stop it.  The measured times
are printed (``pytest -s``); the assertions are generous functional bounds.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ModelError
from pgml_flow.settings import Settings

#: a fit that takes minutes on the table below (it is always interrupted after a second)
LONG_TRAIN = ("SELECT * FROM pgml.train('Long', 'regression', 'interrupt_rows', 'y',"
              " algorithm => 'random_forest', hyperparams => '{\"n_estimators\": 5000}')")
SMALL_TRAIN = ("SELECT * FROM pgml.train('Long', 'regression', 'interrupt_rows', 'y',"
               " algorithm => 'linear')")
#: imports scikit-learn's forests in a session (a one-tree model of its own project)
WARM_TRAIN = ("SELECT * FROM pgml.train('Warm', 'regression', 'interrupt_rows', 'y',"
              " algorithm => 'random_forest', hyperparams => '{\"n_estimators\": 1}')")
#: the bound the tests assert: a stop measured in seconds, not in minutes
STOP_BOUND = 10.0


def _create_rows(conn: psycopg.Connection, rows: int = 20_000) -> None:
    conn.execute(
        "CREATE TABLE interrupt_rows AS SELECT a, b, c, d, e, f,"
        " 3 * a - 2 * b + c * d + random() AS y"
        " FROM (SELECT random() a, random() b, random() c, random() d, random() e, random() f"
        f"       FROM generate_series(1, {rows})) r"
    )


def _local(conn: psycopg.Connection) -> int:
    pid = conn.info.backend_pid
    if not Path(f"/proc/{pid}").exists():
        pytest.skip("the server runs on another machine: its processes cannot be watched")
    return pid


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(pid) and \
                not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for_child(pid: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = _children(pid)
        if children:
            return children[0]
        time.sleep(0.05)
    raise AssertionError(f"no training child of backend {pid} appeared in {timeout} s")


class Statement(threading.Thread):
    """One statement on its own connection, run in the background."""

    def __init__(self, url: str, query: str, *setup: str) -> None:
        super().__init__(daemon=True)
        self.url, self.query, self.setup = url, query, setup
        self.connected = threading.Event()
        self.pid = 0
        self.error: BaseException | None = None
        self.started = self.ended = 0.0

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                self.pid = conn.info.backend_pid
                for statement in self.setup:
                    conn.execute(statement)
                self.connected.set()
                self.started = time.monotonic()
                try:
                    conn.execute(self.query)
                finally:
                    self.ended = time.monotonic()
        except BaseException as exc:
            self.error = exc
        finally:
            self.connected.set()

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"the statement still runs {timeout} s later"


@pytest.fixture
def sql(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _create_rows(conn)
        yield conn


def _state(conn: psycopg.Connection) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pgml.models), (SELECT count(*) FROM pgml.files),"
        " (SELECT count(*) FROM pgml.snapshots),"
        " (SELECT max(model_id) FROM pgml.deployments d JOIN pgml.projects p"
        "  ON p.id = d.project_id WHERE p.name = 'Long')"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_cancel_stops_a_running_fit(sql: psycopg.Connection, db_url: str) -> None:
    sql.execute(SMALL_TRAIN)  # a deployed model that must stay deployed
    before = _state(sql)
    training = Statement(db_url, LONG_TRAIN)
    training.start()
    training.connected.wait(30)
    _local(sql)
    backend = training.pid
    fitting = _wait_for_child(backend)
    time.sleep(1.0)  # well into the fit
    assert _alive(fitting), "the fit ended before it could be canceled"
    canceled = time.monotonic()
    assert sql.execute("SELECT pg_cancel_backend(%s)", (backend,)).fetchone() == (True,)
    training.finish(60)
    stopped = training.ended - canceled
    print(f"\ncancel: pgml.train failed {stopped:.2f} s after pg_cancel_backend")
    assert isinstance(training.error, psycopg.errors.QueryCanceled), training.error
    assert "canceling statement due to user request" in str(training.error)
    assert stopped < STOP_BOUND
    assert not _alive(fitting) and _children(backend) == []
    assert _state(sql) == before, "nothing of the canceled training may remain"


def test_the_session_trains_again_after_a_cancel(sql: psycopg.Connection) -> None:
    backend = _local(sql)

    def cancel_when_fitting() -> None:
        _wait_for_child(backend)
        with psycopg.connect(sql.info.dsn, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", (backend,))

    canceler = threading.Thread(target=cancel_when_fitting, daemon=True)
    canceler.start()
    with pytest.raises(psycopg.errors.QueryCanceled):
        sql.execute(LONG_TRAIN)
    canceler.join(30)
    assert sql.execute(SMALL_TRAIN).fetchone() == ("Long", "regression", "linear", True)


def test_statement_timeout_stops_a_running_fit(sql: psycopg.Connection, db_url: str) -> None:
    sql.execute(SMALL_TRAIN)
    # The first pgml.train of a session imports the library in the backend (once, so that
    # the session's next trainings need not: engine/parallel.py), before the training child
    # starts and without checking for interrupts; this test is about the fit, so that
    # session has trained a random forest once.
    training = Statement(db_url, LONG_TRAIN, WARM_TRAIN, "SET statement_timeout = '1s'")
    training.start()
    training.connected.wait(30)
    before = _state(sql)
    fitting = None
    while fitting is None and training.is_alive():
        fitting = next(iter(_children(training.pid)), None)
        time.sleep(0.02)
    training.finish(60)
    assert fitting is not None, "the timeout struck before the fit started"
    elapsed = training.ended - training.started
    print(f"\nstatement_timeout 1 s: pgml.train failed after {elapsed:.2f} s "
          f"({elapsed - 1:.2f} s after the timeout)")
    assert isinstance(training.error, psycopg.errors.QueryCanceled), training.error
    assert "statement timeout" in str(training.error)
    assert elapsed < 1 + STOP_BOUND
    assert not _alive(fitting) and _children(training.pid) == []
    assert _state(sql) == before


def test_predictions_leave_no_threads_and_training_forks_again(sql: psycopg.Connection) -> None:
    """libgomp hangs a forked child if the parent ran a multi-threaded OpenMP region."""
    backend = _local(sql)
    sql.execute("SET statement_timeout = '120s'")  # a hang fails the test instead
    features = "ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]::real[]"
    batch = "(SELECT array_agg(v) FROM (SELECT random()::real v FROM generate_series(1, 6000)) s)"
    for round_ in range(2):
        for algorithm in ("xgboost", "lightgbm", "hist_gradient_boosting"):
            project = f"T_{algorithm}"
            sql.execute(f"SELECT * FROM pgml.train('{project}', 'regression', 'interrupt_rows',"
                        f" 'y', algorithm => '{algorithm}')")
            for _ in range(3):
                sql.execute(f"SELECT pgml.predict_batch('{project}', {batch})").fetchone()
                sql.execute(f"SELECT pgml.predict('{project}', {features})").fetchone()
                sql.execute(f"SELECT pgml.predict(m.id, {features}) FROM pgml.models m"
                            " JOIN pgml.projects p ON p.id = m.project_id"
                            f" WHERE p.name = '{project}'").fetchall()
            threads = len(os.listdir(f"/proc/{backend}/task"))
            assert threads == 1, f"round {round_}, {algorithm}: the backend runs {threads} threads"


def test_fork_overhead_of_a_small_train(sql: psycopg.Connection) -> None:
    """What running the fit in a child costs on a small train (printed with -s)."""
    sql.execute("CREATE TABLE small_rows AS SELECT * FROM interrupt_rows LIMIT 300")
    sql.execute("SELECT pgml._bootstrap()")
    sql.execute("""
CREATE FUNCTION pg_temp.fit_seconds(forked boolean, n integer) RETURNS float8
LANGUAGE plpython3u AS $$
import functools, time
from pgml_flow import engine
from pgml_flow.server import api, child
relation = api._relation(plpy, GD, "small_rows")
dataset = engine.prepare_dataset("regression", relation.columns, api._read(plpy, relation), ["y"])
fit = functools.partial(api._fit, "regression", "linear", dataset, {}, None, {}, {}, native=True)
fit()
best = float("inf")
for _ in range(n):
    start = time.perf_counter()
    child.run(plpy, fit, what="linear") if forked else fit()
    best = min(best, time.perf_counter() - start)
return best
$$""")
    sql.execute("SELECT pg_temp.fit_seconds(true, 1)")
    in_process = sql.execute("SELECT pg_temp.fit_seconds(false, 15)").fetchone()[0]
    forked = sql.execute("SELECT pg_temp.fit_seconds(true, 15)").fetchone()[0]
    start = time.perf_counter()
    for _ in range(5):
        sql.execute(SMALL_TRAIN)
    whole = (time.perf_counter() - start) / 5
    print(f"\nlinear regression on 300 rows: fit {in_process * 1000:.1f} ms in process, "
          f"{forked * 1000:.1f} ms in a child (+{(forked - in_process) * 1000:.1f} ms); "
          f"a whole pgml.train {whole * 1000:.0f} ms")
    assert forked - in_process < 0.5


# -- the child's errors, without a server ------------------------------------------------------
class _NoServer:
    """The two plpy calls child.run makes, for a run outside PostgreSQL."""

    @staticmethod
    def prepare(query: str) -> str:
        return query

    @staticmethod
    def execute(plan: str) -> list[Any]:
        return []


def test_child_errors_come_back_as_the_same_class_and_message() -> None:
    from pgml_flow.engine.errors import InvalidHyperparams, TrainingFailed
    from pgml_flow.server import child

    def invalid() -> None:
        raise InvalidHyperparams("unknown hyperparam 'x' for algorithm 'linear'")

    def library_bug() -> None:
        raise ValueError("bad input")

    def killed() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    assert child.run(_NoServer, lambda: {"a": [1, 2]}, what="t") == {"a": [1, 2]}
    with pytest.raises(InvalidHyperparams, match=r"^unknown hyperparam 'x' for algorithm") as err:
        child.run(_NoServer, invalid, what="linear")
    assert isinstance(err.value.__cause__, child.ChildTraceback)
    assert "in invalid" in str(err.value.__cause__)
    with pytest.raises(ValueError, match=r"^bad input$"):
        child.run(_NoServer, library_bug, what="linear")
    with pytest.raises(TrainingFailed, match="linear: the training process was killed by "
                                             "signal SIGKILL"):
        child.run(_NoServer, killed, what="linear")
    assert issubclass(TrainingFailed, ModelError)
    big = b"x" * (5 << 20)
    assert child.run(_NoServer, lambda: big, what="t") == big

    def early_then(end: Any) -> Any:
        def work() -> Any:
            assert child.send_early(big) and child.send_early({"n": 2})
            return end()
        return work

    got: list[Any] = []  # early values arrive in order, before the result, however large
    assert child.run(_NoServer, early_then(lambda: "done"), what="t", early=got.append) == "done"
    assert got == [big, {"n": 2}]
    got.clear()
    with pytest.raises(ValueError, match=r"^bad input$"):  # an error after them still raises
        child.run(_NoServer, early_then(library_bug), what="t", early=got.append)
    assert got == [big, {"n": 2}]
    assert not child.send_early(1)  # outside run: nobody to hand it to
    assert child.run(_NoServer, lambda: 3, what="t", wait=False) == 3  # reaped later:
    assert child._Early.unreaped
    child.reap()
    assert not child._Early.unreaped

    class NoFork(_NoServer):  # fork refused: the work runs in the caller, early values too
        warnings: list[str] = []

        @classmethod
        def warning(cls, text: str) -> None:
            cls.warnings.append(text)

    def refuse() -> int:
        raise OSError(12, "Cannot allocate memory")

    got.clear()
    fork, os.fork = os.fork, refuse
    try:
        assert child.run(NoFork, early_then(lambda: "here"), what="t", early=got.append) == "here"
    finally:
        os.fork = fork
    assert got == [big, {"n": 2}] and "cannot start a training process" in NoFork.warnings[0]


# -- a fast shutdown, on a throwaway cluster -----------------------------------------------------
@pytest.fixture
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgmlFlow]:
    """A cluster of its own: the session's shared cluster must not be stopped."""
    settings = Settings.from_env()
    if settings.external:
        pytest.skip("needs the embedded cluster's binaries, not an external server")
    # under /tmp so that the unprivileged server user can traverse the parents
    home = Path(tmp_path_factory.mktemp("shutdown", numbered=True))
    for directory in (home, *home.parents):
        if directory == Path("/tmp"):
            break
        directory.chmod(directory.stat().st_mode | 0o055)
    flow = PgmlFlow(dataclasses.replace(settings, home=home / "cluster", port=None))
    flow.start_database()
    try:
        flow.upgrade()
        yield flow
    finally:
        flow.stop_database()
        shutil.rmtree(home, ignore_errors=True)


def test_fast_shutdown_stops_a_running_fit(throwaway: PgmlFlow) -> None:
    with psycopg.connect(throwaway.url, autocommit=True) as conn:
        _create_rows(conn)
        _local(conn)
    training = Statement(throwaway.url, LONG_TRAIN)
    training.start()
    training.connected.wait(30)
    fitting = _wait_for_child(training.pid)
    time.sleep(1.0)
    assert _alive(fitting)
    start = time.monotonic()
    status = throwaway.stop_database()  # pg_ctl stop -m fast, as `pgml-flow db stop`
    stopped = time.monotonic() - start
    training.finish(30)
    print(f"\nfast shutdown during a fit: the server was down {stopped:.2f} s after "
          f"`pgml-flow db stop`; the statement failed {training.ended - start:.2f} s after it")
    assert not status.running
    assert stopped < STOP_BOUND
    assert isinstance(training.error, psycopg.OperationalError), training.error
    assert not _alive(fitting) and not _alive(training.pid)
