"""A search's fits run in parallel processes, bounded by superuser-only settings (issue 15,
item 10): the same results as one after another, at most ``pgml.max_parallel_fits``
processes, a cancel still stops it at once, and a non-superuser cannot raise the bound.

Timings are measured by ``pgml-flow bench train`` (docs/benchmarks.md), never asserted here.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pgml_flow.engine import parallel
from pgml_flow.engine.errors import TrainingFailed
from tests.test_interrupt import STOP_BOUND, Statement, _alive, _children, _local, _wait_for_child

SETTINGS = ("pgml.max_parallel_fits", "pgml.train_threads")
GRID = ("SELECT * FROM pgml.train('Grid', 'classification', 'speed_rows', 'y', 'random_forest',"
        " search => 'grid', search_args => '{\"cv\": 3}',"
        " search_params => '{\"max_depth\": [2, 4], \"n_estimators\": [3, 6]}')")
#: a search whose fits take many seconds each: it is always canceled
LONG_GRID = ("SELECT * FROM pgml.train('Long grid', 'classification', 'speed_rows', 'y',"
             " 'random_forest', search => 'grid',"
             " search_params => '{\"n_estimators\": [3000, 3001, 3002, 3003]}')")


def test_worker_processes_run_every_task_and_report_the_first_error() -> None:
    limits = parallel.Limits(fits=8, threads=0)
    cores = parallel.usable_cores()
    assert limits.workers(3) == min(3, cores) and parallel.Limits(fits=1).workers(9) == 1
    assert limits.fit_threads() == cores and parallel.Limits(threads=64).fit_threads() == cores
    assert limits.fit_threads(values=86_000) == 1  # a small fit: one thread (see SMALL_FIT_VALUES)

    before = set(_children(os.getpid()))
    pids = parallel.run_tasks(lambda i: (i, os.getpid()), 12, 2)
    assert [i for i, _ in pids] == list(range(12))  # every task, in order
    workers = {pid for _, pid in pids}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2

    def failing(i: int) -> int:
        if i == 5:
            raise TrainingFailed("search: knn with {'n_neighbors': 0} failed to train: 0")
        return i

    with pytest.raises(TrainingFailed, match=r"n_neighbors': 0"):
        parallel.run_tasks(failing, 12, 2)
    assert set(_children(os.getpid())) <= before, "a worker outlived its search"


@pytest.fixture
def rows(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE speed_rows AS SELECT a, b, c, d,"
                     " (a + b * c > 0.7)::int + (d > 0.8)::int AS y"
                     " FROM (SELECT random() a, random() b, random() c, random() d"
                     "       FROM generate_series(1, 600)) r")
        yield conn


@pytest.fixture
def trainer(db_url: str, rows: psycopg.Connection) -> Iterator[str]:
    """A login of the ML role (a pgml_flow_ml member), not a superuser."""
    role = f"speed_{uuid.uuid4().hex[:8]}"
    rows.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE pgml_flow_ml").format(
        sql.Identifier(role)))
    rows.execute(sql.SQL("GRANT SELECT ON speed_rows TO {}").format(sql.Identifier(role)))
    yield role
    rows.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    rows.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _search(conn: psycopg.Connection) -> tuple[dict, dict]:
    row = conn.execute("SELECT hyperparams, metrics FROM pgml.models ORDER BY id DESC"
                       " LIMIT 1").fetchone()
    assert row is not None
    hyperparams, metrics = row
    return hyperparams, metrics


def test_parallel_search_matches_sequential_and_only_a_superuser_sets_its_bounds(
    db_url: str, rows: psycopg.Connection, trainer: str
) -> None:
    assert dict(rows.execute("SELECT name, context FROM pg_settings WHERE name = ANY(%s)",
                             (list(SETTINGS),)).fetchall()) == dict.fromkeys(SETTINGS,
                                                                             "superuser")
    rows.execute("SET pgml.max_parallel_fits = 1")  # the superuser: one fit at a time
    rows.execute(GRID)
    sequential = _search(rows)

    with psycopg.connect(db_url, user=trainer, autocommit=True) as conn:
        for name in SETTINGS:
            for attempt in ("SET {} = 64", "SET LOCAL {} = 64",
                            "SELECT set_config('{}', '64', false)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match=name):
                    conn.execute(attempt.format(name))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("ALTER ROLE {} SET {} = 64").format(
                    sql.Identifier(trainer), sql.Identifier(*name.split("."))))
        assert conn.execute("SHOW pgml.max_parallel_fits").fetchone() == ("2",)
    rows.execute("RESET pgml.max_parallel_fits")  # the default, 2: fits in parallel
    rows.execute(GRID)
    parallel_run = _search(rows)

    assert parallel_run[0] == sequential[0]  # the same chosen hyperparams
    searched, expected = parallel_run[1]["search_results"], sequential[1]["search_results"]
    for key in ("params", "mean_test_score", "std_test_score", "rank_test_score",
                "best_index", "best_params"):
        assert searched[key] == expected[key], key
    assert parallel_run[1]["f1"] == sequential[1]["f1"]


def _grandchildren(backend: int) -> set[int]:
    return {pid for child in _children(backend) for pid in _children(child)}


def test_cancel_stops_a_parallel_search_and_its_fits_stay_bounded(
    db_url: str, rows: psycopg.Connection
) -> None:
    _local(rows)
    limit = min(2, parallel.usable_cores())
    training = Statement(db_url, LONG_GRID, "SET pgml.max_parallel_fits = 2",
                         "SET pgml.train_threads = 1")
    training.start()
    training.connected.wait(30)
    coordinator = _wait_for_child(training.pid)
    deadline = time.monotonic() + 30
    seen: set[int] = set()
    while time.monotonic() < deadline and len(seen) < limit:
        seen |= _grandchildren(training.pid)
        time.sleep(0.02)
    assert 1 <= len(seen) <= limit, seen
    time.sleep(0.5)
    assert len(_grandchildren(training.pid)) <= limit
    canceled = time.monotonic()
    rows.execute("SELECT pg_cancel_backend(%s)", (training.pid,))
    training.finish(60)
    stopped = training.ended - canceled
    print(f"\ncancel: a parallel search failed {stopped:.2f} s after pg_cancel_backend")
    assert isinstance(training.error, psycopg.errors.QueryCanceled), training.error
    assert stopped < STOP_BOUND
    time.sleep(0.2)  # PR_SET_PDEATHSIG: the workers die with the training child
    assert not _alive(coordinator) and not any(_alive(pid) for pid in seen)
    assert rows.execute("SELECT count(*) FROM pgml.models").fetchone() == (0,)


def test_bench_train_compares_each_training_with_the_same_fit_outside(db_url: str) -> None:
    from pgml_flow.benchmarks import training

    figures = training.train_speed(db_url, repeat=1, grid=False, loads=(training.IDLE,))
    threads = [training.OUTSIDE_THREADS.format(threads=n) for n in training.thread_settings()]
    assert [(f.benchmark, f.note.split(",")[0]) for f in figures] == [
        *((name, training.IDLE) for name in threads), (training.OUTSIDE, training.IDLE),
        (training.INSIDE, training.IDLE), (training.INSIDE_FIRST, training.IDLE),
        (training.OUTSIDE_CPU, training.IDLE), (training.INSIDE_CPU, training.IDLE)]
    assert all(f.rows == 1_347 and f.seconds > 0 for f in figures)
    assert {t.name for t in training.targets(figures)} == {
        "pgml.train vs the same fit outside at its fastest (idle)",
        "the same, in CPU seconds (idle)"}
    assert all(t.met is not None for t in training.targets(figures))
    with psycopg.connect(db_url) as conn:  # the table and projects are dropped
        assert conn.execute("SELECT to_regclass('pgml_flow_bench_digits'), count(*)"
                            " FROM pgml.projects").fetchone() == (None, 0)
