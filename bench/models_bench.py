"""Client-scoped models: training time, BI prediction throughput, logging overhead.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/models_bench.py --clients 3 --issues 4000 --repeat 5

It creates a scratch database ``pgmlflow_bench_models`` next to pgml-flow's (dropped at
the end unless ``--keep``), seeds it, gives each client a BI login, trains the three
built-in models per client and prints:

* training time per client and model (``pgml-flow train``, including the training view,
  the baseline statistics and the event bookkeeping);
* rows/s of each BI prediction view read as the client's BI login, with prediction
  logging on and off, and the overhead ratio (on / off) of logging.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import psycopg
from psycopg import sql

from pgml_flow.app import PgmlFlow
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.settings import Settings
from pgml_models.specs import metric_label

VIEWS = ("issue_story_points", "epic_forecasts", "pull_request_rework_risk")
DATABASE = "pgmlflow_bench_models"
# The newest N done issues (epics included) and merged pull requests of each client become
# open again, after training, so each view predicts a realistic backlog.
REOPEN = """
WITH i AS (
    UPDATE issues SET status_category = 'in_progress', status = 'In Progress'
     WHERE (client_id, issue_id) IN (
           SELECT client_id, issue_id FROM (
               SELECT client_id, issue_id, row_number() OVER (
                      PARTITION BY client_id ORDER BY created DESC) AS k
                 FROM issues WHERE status_category = 'done') r WHERE k <= %(n)s)
), p AS (
    UPDATE pull_requests SET state = 'open'
     WHERE (client_id, pull_request_id) IN (
           SELECT client_id, pull_request_id FROM (
               SELECT client_id, pull_request_id, row_number() OVER (
                      PARTITION BY client_id ORDER BY created_at DESC) AS k
                 FROM pull_requests WHERE state = 'merged') r WHERE k <= %(n)s)
)
SELECT 1
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--issues", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--open", type=int, default=1000, dest="reopen",
                        help="reopen up to N issues and N pull requests per client, so the "
                             "views have a backlog to predict (0: as seeded)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base = PgmlFlow()
    admin = with_dbname(base.url, "postgres")
    recreate_database(admin, DATABASE)
    url = with_dbname(base.url, DATABASE)
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))
    try:
        flow.upgrade()
        report = flow.seed(clients=args.clients, issues=args.issues, seed=42)
        print(f"seeded {report.clients} clients, {report.issues:,} issues, "
              f"{report.pull_requests:,} pull requests")
        clients = list(range(1, args.clients + 1))
        flow.grant_bi_access(clients)
        results = flow.train(["trajectory", "complexity", "rework"], clients)
        if args.reopen:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(REOPEN, {"n": args.reopen})
        print("\ntraining time per client and model (s)")
        print(f"{'client':>6} {'model':<11} {'rows':>7} {'seconds':>8} {'metric':>12}")
        for r in results:
            metric = ("" if r.key_metric_value is None
                      else f"{metric_label(r.key_metric)} {r.key_metric_value:.3f}")
            print(f"{r.client_id:>6} {r.model_name:<11} {r.training_rows:>7,} {r.seconds:>8.2f} "
                  f"{metric:>12}")
        by_model: dict[str, list[float]] = {}
        for r in results:
            by_model.setdefault(r.model_name, []).append(r.seconds)
        for model, seconds in by_model.items():
            print(f"{'mean':>6} {model:<11} {'':>7} {statistics.mean(seconds):>8.2f}")

        print(f"\nBI prediction views, as each client's BI login (median of {args.repeat} reads)")
        print(f"{'client':>6} {'view':<26} {'rows':>6} {'ms (log off)':>13} "
              f"{'rows/s':>9} {'ms (log on)':>12} {'rows/s':>9} {'overhead':>9}")
        ratios = []
        for client in clients:
            for view in VIEWS:
                off = _time_view(flow, url, client, view, args.repeat, logging=False)
                on = _time_view(flow, url, client, view, args.repeat, logging=True)
                rows = off[1]
                ratio = on[0] / off[0] if off[0] else float("nan")
                if rows:
                    ratios.append(ratio)
                print(f"{client:>6} {view:<26} {rows:>6} {off[0] * 1000:>13.1f} "
                      f"{_rate(rows, off[0]):>9} {on[0] * 1000:>12.1f} {_rate(rows, on[0]):>9} "
                      f"{ratio:>9.3f}")
        if ratios:
            print(f"\nlogging overhead (time with logging / without): median "
                  f"{statistics.median(ratios):.3f}, max {max(ratios):.3f}")
    finally:
        if not args.keep:
            flow.revoke_bi_access()
            drop_database(admin, DATABASE)


def _time_view(flow: PgmlFlow, url: str, client: int, view: str, repeat: int,
               *, logging: bool) -> tuple[float, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE clients SET prediction_logging = %s WHERE client_id = %s",
                     (logging, client))
    query = sql.SQL("SELECT * FROM {}").format(sql.Identifier("analytics", view))
    with flow.bi_session(client) as bi:
        rows = len(bi.execute(query).fetchall())  # warm: models loaded into the session
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            bi.execute(query).fetchall()
            times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds and rows else "-"


if __name__ == "__main__":
    main()
