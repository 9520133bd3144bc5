"""Clients retrained in parallel backends, bounded by a setting (issue 16, item 5).

The same clients and data are retrained one after another and two at a time, under two
specs that differ only by name (so by project): the outcomes are equal, every client had a
connection (a backend) of its own worker, no more than ``parallelism`` were open at once, and
the client whose training fails does not stop the others. Wall times are measured by
bench/many_clients.py (docs/benchmarks.md), never asserted here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from pgml_flow import retraining
from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError
from pgml_flow.retraining import RetrainOptions
from pgml_models.specs import load_file
from tests.conftest import AS_OF

SPEC = """
[models.{name}]
task = "regression"
training_view = "public.uneven_training"
target = "story_points"
features = ["title_length", "description_words"]
algorithm = "linear"
min_training_rows = 10
[models.{name}.retraining]
schedule = "0 5 * * *"
min_new_records = 10
performance_threshold = 0.1
data_freshness_days = 7
"""


def test_parallel_retrain_equals_sequential_and_is_bounded(tflow: PgmlFlow,
                                                           tmp_path: Path) -> None:
    with tflow.connect() as conn:
        # a third client: half of client 1's rows (no seeding: quicker); client 2's
        # target divides by zero: its training fails, the others go on
        conn.execute("INSERT INTO clients (client_id, name, slug) VALUES (3, 'Third', 'third')")
        conn.execute("""CREATE VIEW public.uneven_training AS
                        SELECT CASE WHEN client_id = 1 AND hashtext(entity_id::text) % 2 = 0
                                    THEN 3 ELSE client_id END AS client_id,
                               title_length, description_words,
                               story_points / (CASE WHEN client_id = 2 THEN 0 ELSE 1 END)
                                   AS story_points
                          FROM pgml_flow.complexity_training""")
        conn.commit()
    path = tmp_path / "twins.toml"
    path.write_text(SPEC.format(name="one_by_one") + SPEC.format(name="two_at_once"))
    specs = load_file(path)

    open_now, most, pids = 0, 0, set()
    lock = threading.Lock()

    class Counted(psycopg.Connection):
        def close(self) -> None:
            nonlocal open_now
            if not self.closed:
                with lock:
                    open_now -= 1
            super().close()

    def connect() -> psycopg.Connection:
        nonlocal open_now, most
        conn = Counted.connect(tflow.url)
        with lock:
            open_now += 1
            most = max(most, open_now)
            pids.add(conn.info.backend_pid)
        return conn

    def run(name: str, parallelism: int) -> list[tuple[int, str, float | None]]:
        nonlocal most
        most = 0
        pids.clear()
        results = retraining.retrain(
            connect, [specs[name]], [1, 2, 3], AS_OF,
            RetrainOptions(force=True, parallelism=parallelism))
        return [(r.client_id, r.status, r.key_metric_value) for r in results]

    sequential = run("one_by_one", 1)
    assert (most, len(pids)) == (1, 1)
    parallel = run("two_at_once", 2)
    assert most == 2 and len(pids) == 2, "two workers, each with its own backend"
    assert [s for _, s, _ in sequential] == ["promoted", "failed", "promoted"]
    assert parallel == sequential  # same statuses, same held-out metric, client order
    assert open_now == 0, "every worker closed its connection"
    with tflow.connect() as conn:
        events = conn.execute("SELECT model_name, client_id, status FROM ml_retraining_events"
                              " WHERE model_name IN ('one_by_one', 'two_at_once')"
                              " ORDER BY 1, 2").fetchall()
    assert events == [(m, c, s) for m in ("one_by_one", "two_at_once")
                      for c, s in ((1, "promoted"), (2, "failed"), (3, "promoted"))]
    for bad in (0, 65, True):
        with pytest.raises(ConfigurationError, match="PGML_FLOW_RETRAIN_PARALLELISM"):
            RetrainOptions(parallelism=bad)
