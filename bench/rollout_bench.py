"""What the kill switch costs a BI read: ``analytics.issue_story_points`` read by a BI login.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/rollout_bench.py --reads 200

It creates a scratch database ``pgmlflow_bench_rollout`` next to pgml-flow's (dropped at the
end unless ``--keep``; ``--database NAME`` reuses a seeded and trained one), seeds two
clients (1,500 issues each, the suite's seed) and trains complexity and rework, then times,
over one open BI connection of client 1, in interleaved rounds so that a shared machine's
noise falls on every variant alike:

* ``read``: ``SELECT * FROM analytics.issue_story_points`` with no switch set (the path
  every read takes: one lookup of the switch tables, one of the A/B tests);
* ``read, switches set``: the same with a global row, a model row with a rollout of 100%
  and a client row, all enabled (every branch of ``pgml_flow.rollout_state`` finds a row);
* ``read, disabled``: the model switched off for the client (nothing is scored);
* ``lookup``: ``pgml_flow.rollout_state`` alone, as the operator, one statement (with
  its round trip);
* ``lookup in server``: 1,000 lookups in one statement, divided by 1,000: the switch's
  own cost inside a read.

It prints the median and p95 milliseconds of each and the ratios to ``read``; the lookup's
ratio is the share of a read the kill switch adds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import psycopg

from pgml_flow.app import PgmlFlow
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.settings import Settings

QUERY = "SELECT * FROM analytics.issue_story_points"
LOOKUP = "SELECT * FROM pgml_flow.rollout_state(1, 'complexity')"
#: 1,000 lookups in one statement: the server-side cost of one, without the round trip
LOOKUPS = ("SELECT count(s.state) FROM generate_series(1, 1000) g "
           "CROSS JOIN LATERAL pgml_flow.rollout_state(1, 'complexity') s")


def _flow(url: str) -> PgmlFlow:
    import dataclasses

    return PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))


def _timed(conn: psycopg.Connection, query: str) -> float:
    started = time.perf_counter()
    conn.execute(query).fetchall()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200, help="reads per variant")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--database", help="a seeded and trained database to reuse")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base = PgmlFlow()
    if not base.settings.external:
        base.start_database()
    admin = with_dbname(base.url, "postgres")
    name = args.database or "pgmlflow_bench_rollout"
    flow = _flow(with_dbname(admin, name))
    if not args.database:
        recreate_database(admin, name)
        flow.upgrade()
        flow.seed(clients=2, issues=1500, seed=7, as_of=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
        flow.train(["complexity", "rework"])
    flow.grant_bi_access([1])
    try:
        times: dict[str, list[float]] = {k: [] for k in (
            "read", "read, switches set", "read, disabled", "lookup", "lookup in server")}
        per_round = max(1, args.reads // args.rounds)
        with flow.bi_session(1) as bi, flow.connect(autocommit=True) as operator:
            bi.execute(QUERY).fetchall()  # load the model into the BI backend

            def switches(on: bool) -> None:
                for state in ("enabled", "clear"):
                    if (state == "enabled") == on:
                        flow.set_rollout(state)
                        flow.set_rollout(state, model="complexity",
                                         percent=100 if on else None)
                        flow.set_rollout(state, model="complexity", client_id=1)

            for _ in range(args.rounds):
                for variant in times:
                    if variant == "read, switches set":
                        switches(True)
                    if variant == "read, disabled":
                        flow.set_rollout("disabled", model="complexity", client_id=1)
                    conn: psycopg.Connection = operator if "lookup" in variant else bi
                    query = {"lookup": LOOKUP, "lookup in server": LOOKUPS}.get(variant, QUERY)
                    for _ in range(per_round):
                        elapsed = _timed(conn, query)
                        times[variant].append(elapsed / 1000 if variant == "lookup in server"
                                              else elapsed)
                    if variant == "read, switches set":
                        switches(False)
                    if variant == "read, disabled":
                        flow.set_rollout("clear", model="complexity", client_id=1)
        base_median = statistics.median(times["read"])
        print(f"{'variant':<22}{'median ms':>10}{'p95 ms':>10}{'ratio':>8}")
        for variant, values in times.items():
            values.sort()
            median = statistics.median(values)
            p95 = values[int(0.95 * (len(values) - 1))]
            print(f"{variant:<22}{median:>10.3f}{p95:>10.3f}{median / base_median:>8.3f}")
    finally:
        if not args.database and not args.keep:
            drop_database(admin, name)


if __name__ == "__main__":
    main()
