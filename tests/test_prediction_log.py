"""The prediction log stays bounded: a re-read logs nothing new, a per-client hourly cap,
retention by age and by rows per client (procedure, scheduler job, pg_cron command, CLI).

Reads are made as each client's BI login (what a BI tool is), on a fresh copy of the
trained template per test; limits are changed by the admin connection.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from cli.app import app
from pgml_flow import pgcron
from pgml_flow.app import PgmlFlow
from scheduler.jobs import PRUNE_SCHEDULE, jobs
from scheduler.runner import run_once
from tests.conftest import AS_OF, as_client

STORY_POINTS = "SELECT count(*) FROM analytics.issue_story_points"
REWORK = "SELECT count(*) FROM analytics.pull_request_rework_risk"


def admin(bi_flow: PgmlFlow) -> psycopg.Connection:
    return psycopg.connect(bi_flow.url, autocommit=True)


def setting(conn: psycopg.Connection, name: str, value: str) -> None:
    conn.execute("INSERT INTO pgml_flow_settings VALUES (%s, %s) ON CONFLICT (name) "
                 "DO UPDATE SET value = excluded.value", (name, value))


def one(conn: psycopg.Connection, query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def logged(conn: psycopg.Connection, client_id: int, model: str | None = None) -> int:
    return int(one(conn, "SELECT count(*) FROM ml_prediction_log WHERE client_id = %s"
                         " AND (%s::text IS NULL OR model_name = %s)", client_id, model, model))


def usage(conn: psycopg.Connection, client_id: int) -> tuple[int, int, int]:
    row = conn.execute("SELECT coalesce(sum(logged_rows), 0), coalesce(sum(capped_rows), 0),"
                       " coalesce(sum(capped_reads), 0) FROM ml_prediction_log_usage"
                       " WHERE client_id = %s", (client_id,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# -- dedup -----------------------------------------------------------------------------------
def test_rereads_log_each_prediction_once(bi_flow: PgmlFlow) -> None:
    with admin(bi_flow) as a:
        setting(a, "prediction_log_rows", "-1")  # log every prediction of a read
        with as_client(bi_flow.url, 1) as bi:
            counts = {bi.execute(STORY_POINTS).fetchone()[0] for _ in range(12)}
            assert len(counts) == 1
            n = counts.pop()
            assert n > 50
            own = bi.execute("SELECT count(*), count(DISTINCT entity_id), min(client_id),"
                             " max(client_id) FROM analytics.prediction_log").fetchone()
        assert own == (n, n, 1, 1)
        assert logged(a, 1) == n and usage(a, 1) == (n, 0, 0)

        # an item whose features changed is a new prediction: logged once more, once
        issue = one(a, "SELECT entity_id FROM ml_prediction_log WHERE client_id = 1"
                       " ORDER BY entity_id LIMIT 1")
        a.execute("UPDATE issues SET description = description || ' and much more to do'"
                  " WHERE client_id = 1 AND issue_id = %s", (issue,))
        with as_client(bi_flow.url, 1) as bi:
            for _ in range(12):
                bi.execute(STORY_POINTS)
        assert logged(a, 1) == n + 1
        assert one(a, "SELECT count(*) FROM ml_prediction_log WHERE client_id = 1"
                      " AND entity_id = %s", issue) == 2

        # the default sample (200 per read): re-reads add only predictions not logged yet
        a.execute("DELETE FROM pgml_flow_settings WHERE name = 'prediction_log_rows'")
        with as_client(bi_flow.url, 2) as bi:
            for _ in range(12):
                rows = bi.execute(REWORK).fetchone()[0]
        distinct = one(a, "SELECT count(DISTINCT (model_id, entity_id, prediction_key))"
                          " FROM ml_prediction_log WHERE client_id = 2")
        assert logged(a, 2) == distinct <= rows
        assert logged(a, 2) >= min(rows, 200)
        assert logged(a, 1) == n + 1  # the other client's log is untouched


def test_a_reread_probes_its_sample_not_the_whole_log(bi_flow: PgmlFlow) -> None:
    """The dedup probe is one index lookup per sampled row, in the generic plan a session
    caches too (its sixth read): as an anti join it hashed every row the client's model had
    logged, on every read (bench/text_features.py: its re-reads went from 38,000 to 93,000
    rows/s when that was fixed)."""
    with admin(bi_flow) as a:
        setting(a, "prediction_log_rows", "-1")
        with as_client(bi_flow.url, 1) as bi:
            n = bi.execute(STORY_POINTS).fetchone()[0]
        assert logged(a, 1, "complexity") == n > 50
        a.execute("ANALYZE ml_prediction_log")  # as autovacuum would: the planner knows n
        setting(a, "prediction_log_rows", "20")
    with as_client(bi_flow.url, 1) as bi, bi.transaction():
        bi.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for _ in range(3):
            bi.execute(STORY_POINTS)
        seq_scans, index_scans = bi.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
            " WHERE relid = 'public.ml_prediction_log'::regclass").fetchone()
    assert seq_scans == 0
    assert index_scans == 3 * 20  # a probe per sampled row, none of which was new
    with admin(bi_flow) as a:
        assert logged(a, 1, "complexity") == n


def test_a_read_never_waits_on_another_reads_log(bi_flow: PgmlFlow) -> None:
    """Two sessions of a client read the same view; the first is still in its transaction
    (BI tools leave transactions open): the second neither waits on its uncommitted log
    rows (the unique key) nor duplicates them."""
    with (admin(bi_flow) as a, as_client(bi_flow.url, 1) as first,
          as_client(bi_flow.url, 1) as second):
        setting(a, "prediction_log_rows", "-1")
        second.execute("SET lock_timeout = '5s'")  # a wait would end here, unlogged
        with first.transaction():
            n = first.execute(STORY_POINTS).fetchone()[0]
            started = time.monotonic()
            assert second.execute(STORY_POINTS).fetchone()[0] == n
            assert time.monotonic() - started < 4
            assert logged(a, 1) == 0
        assert logged(a, 1) == n
        second.execute(STORY_POINTS)
        assert logged(a, 1) == n
    # the skipped log is counted, for operators
    [status] = bi_flow.prediction_log_status([1])
    assert (status["busy_reads_24h"], status["capped_reads_24h"]) == (1, 0)


def test_retrain_check_drift_is_not_inflated_by_rereads(bi_flow: PgmlFlow) -> None:
    with admin(bi_flow) as a:
        setting(a, "prediction_log_rows", "-1")
        with as_client(bi_flow.url, 2) as bi:
            for _ in range(12):
                rows = bi.execute(REWORK).fetchone()[0]
    [decision] = bi_flow.retrain_decisions(["rework"], [2], now=AS_OF)
    assert decision.facts.logged_predictions == rows > 0


# -- the per-client cap ----------------------------------------------------------------------
def test_the_cap_stops_logging_but_reads_succeed(bi_flow: PgmlFlow) -> None:
    with admin(bi_flow) as a:
        setting(a, "prediction_log_rows", "-1")
        setting(a, "prediction_log_rows_per_hour", "2")
        a.execute("UPDATE clients SET prediction_log_rows_per_hour = -1 WHERE client_id = 2")
        with as_client(bi_flow.url, 1) as bi:
            points = bi.execute(STORY_POINTS).fetchone()[0]
            reads = [bi.execute("SELECT count(*), count(rework_probability)"
                                " FROM analytics.pull_request_rework_risk").fetchone()
                     for _ in range(2)]  # past the cap: served, not logged
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute("SELECT * FROM ml_prediction_log_usage")
        risks = reads[0][0]
        assert points > 2 and risks > 0 and reads == [(risks, risks)] * 2
        assert logged(a, 1) == 2
        assert usage(a, 1) == (2, points - 2 + 2 * risks, 3)

        # the per-client override: client 2 has no cap
        with as_client(bi_flow.url, 2) as bi:
            served = bi.execute(STORY_POINTS).fetchone()[0] + bi.execute(REWORK).fetchone()[0]
        assert logged(a, 2) == served > 2 and usage(a, 2) == (served, 0, 0)

    [status] = bi_flow.prediction_log_status([1])
    assert status["logged_this_hour"] == 2 and status["rows_per_hour"] == 2
    assert status["capped_rows_24h"] == points - 2 + 2 * risks
    assert status["capped_reads_24h"] == 3


# -- retention -------------------------------------------------------------------------------
def fill(conn: psycopg.Connection, client_id: int, days: int) -> None:
    """One logged row per day for ``days`` days, oldest first (ids grow with time)."""
    conn.execute("INSERT INTO ml_prediction_log (client_id, model_name, model_id, entity_id,"
                 " prediction, created_at)"
                 " SELECT %s, 'complexity', 1, d, d, now() - d * interval '1 day' - interval '1 h'"
                 "   FROM generate_series(%s - 1, 0, -1) AS d", (client_id, days))


def ages(conn: psycopg.Connection, client_id: int) -> list[int]:
    return [int(r[0]) for r in conn.execute(
        "SELECT entity_id FROM ml_prediction_log WHERE client_id = %s ORDER BY id",
        (client_id,)).fetchall()]


def test_prune_by_age_and_size_per_client(bi_flow: PgmlFlow) -> None:
    with admin(bi_flow) as a:
        for client in (1, 2):
            fill(a, client, 60)
        # client 1: 10 days and 20 rows; client 2: the defaults (30 days, 100,000 rows)
        a.execute("UPDATE clients SET prediction_log_retention_days = 10,"
                  " prediction_log_max_rows = 20 WHERE client_id = 1")
        # usage counters of past hours, from two sessions, and one older than 30 days
        a.execute("INSERT INTO ml_prediction_log_usage VALUES"
                  " (2, date_trunc('hour', now(), 'UTC') - interval '2 h', 101, 5, 1, 1),"
                  " (2, date_trunc('hour', now(), 'UTC') - interval '2 h', 102, 7, 0, 0),"
                  " (2, date_trunc('hour', now(), 'UTC') - interval '40 days', 103, 9, 0, 0)")

        plan = {r["client_id"]: r for r in bi_flow.prune_prediction_log(dry_run=True)}
        assert (plan[1]["expired_rows"], plan[1]["over_size_rows"]) == (50, 0)
        assert (plan[2]["expired_rows"], plan[2]["over_size_rows"]) == (30, 0)
        assert plan[1]["deleted"] is None and logged(a, 1) == logged(a, 2) == 60

        # size: client 1 keeps its newest 5 rows; only client 1 is pruned
        a.execute("UPDATE clients SET prediction_log_max_rows = 5 WHERE client_id = 1")
        [plan_1] = bi_flow.prune_prediction_log([1], dry_run=True)
        assert (plan_1["expired_rows"], plan_1["over_size_rows"]) == (50, 5)
        [done] = bi_flow.prune_prediction_log([1], batch_size=7)
        assert done["deleted"] == 55
        assert ages(a, 1) == [4, 3, 2, 1, 0]
        assert logged(a, 2) == 60 and usage(a, 2) == (21, 1, 1)

        # age: every client by its own limit; client 2 keeps 30 days
        done_all = {r["client_id"]: r["deleted"]
                    for r in bi_flow.prune_prediction_log(batch_size=7)}
        assert done_all == {1: 0, 2: 30}
        assert ages(a, 2) == list(range(29, -1, -1))
        # past hours folded into one row per hour; the one older than the retention gone
        assert a.execute("SELECT backend_pid, logged_rows, capped_rows FROM"
                         " ml_prediction_log_usage WHERE client_id = 2").fetchall() == [(0, 12, 1)]

        # -1: no limit
        setting(a, "prediction_log_retention_days", "-1")
        assert bi_flow.prune_prediction_log([2])[0]["deleted"] == 0
        setting(a, "prediction_log_max_rows", "10")
        assert bi_flow.prune_prediction_log([2])[0]["deleted"] == 20


def test_a_bi_login_cannot_see_or_prune_another_clients_log_or_change_limits(
        bi_flow: PgmlFlow) -> None:
    with admin(bi_flow) as a:
        for client in (1, 2):
            fill(a, client, 60)
        with as_client(bi_flow.url, 2) as bi:
            bi.execute(REWORK)
        before = {c: logged(a, c) for c in (1, 2)}
        with as_client(bi_flow.url, 1) as bi:
            bi.execute("SET pgml_flow.client_id = 2")  # ignored for BI logins
            assert {r[0] for r in bi.execute("SELECT DISTINCT client_id FROM ml_prediction_log"
                                             " UNION SELECT client_id FROM"
                                             " analytics.prediction_log")} == {1}
            for statement in (
                "CALL pgml_flow.prune_prediction_log()",
                "CALL pgml_flow.prune_prediction_log(client_id => 2)",
                "SELECT * FROM pgml_flow.prediction_log_status()",
                "SELECT * FROM pgml_flow.prediction_log_policy(2)",
                "SELECT pgml_flow.log_predictions(2, 'rework', 1, -1, ARRAY[1]::bigint[],"
                " ARRAY[1]::real[], NULL, ARRAY['{1}'], 1, NULL, NULL, NULL, NULL)",
                "DELETE FROM ml_prediction_log",
                "INSERT INTO ml_prediction_log (client_id, model_name) VALUES (2, 'x')",
                "UPDATE clients SET prediction_log_max_rows = 0, prediction_log_rows_per_hour = 0",
                "INSERT INTO pgml_flow_settings VALUES ('prediction_log_max_rows', '0')",
                "UPDATE pgml_flow_settings SET value = '0'",
                "SELECT * FROM pgml_flow_settings",
                "INSERT INTO ml_prediction_log_usage VALUES (2, now(), 1, 0, 0, 0)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    bi.execute(statement)
        assert {c: logged(a, c) for c in (1, 2)} == before
        assert one(a, "SELECT count(*) FROM clients WHERE prediction_log_max_rows IS NOT NULL"
                      " OR prediction_log_rows_per_hour IS NOT NULL") == 0
    report = bi_flow.audit_isolation()
    assert report.ok, report.failures
    assert "public.ml_prediction_log_usage" in {c.object for c in report.checks}


# -- the scheduler job, pg_cron's command, the CLI -----------------------------------------------
def test_scheduler_job_prunes(bi_flow: PgmlFlow) -> None:
    [job] = [j for j in jobs({}, environ={}) if j.kind == "prune"]
    assert (job.name, job.schedule) == ("prune:public.ml_prediction_log", PRUNE_SCHEDULE)
    assert pgcron.command(job) == "CALL pgml_flow.prune_prediction_log()"
    with admin(bi_flow) as a:
        fill(a, 1, 40)
        fill(a, 2, 40)
        a.execute("UPDATE clients SET prediction_log_max_rows = 3 WHERE client_id = 2")
    now = dt.datetime.now(dt.UTC)
    [outcome] = run_once(bi_flow, now=now, jobs=[job])
    assert (outcome.job, outcome.status) == (job.name, "succeeded")
    assert outcome.detail == "deleted 47 rows of public.ml_prediction_log (2 clients)"
    [again] = run_once(bi_flow, now=now, jobs=[job])
    assert (again.status, again.detail) == ("skipped", "already ran")
    # what pg_cron runs, on a connection of its own (autocommit, like pg_cron's)
    with admin(bi_flow) as a:
        fill(a, 1, 40)
        assert a.execute(pgcron.command(job)).fetchone() == (10,)
        assert (logged(a, 1), logged(a, 2)) == (60, 3)


def test_cli_log_prune_and_status(bi_flow: PgmlFlow) -> None:
    with admin(bi_flow) as a:
        fill(a, 1, 45)
        fill(a, 2, 45)
    runner = CliRunner()
    env = {"DATABASE_URL": bi_flow.url, "COLUMNS": "200"}
    result = runner.invoke(app, ["log", "prune", "--dry-run", "--json"], env=env)
    assert result.exit_code == 0, result.output
    plan = {r["client_id"]: (r["expired_rows"], r["deleted"]) for r in json.loads(result.output)}
    assert plan == {1: (15, None), 2: (15, None)}
    result = runner.invoke(app, ["log", "prune", "--client", "1", "--batch-size", "4"], env=env)
    assert result.exit_code == 0, result.output
    assert "Prediction log prune" in result.output and "1 Acme" in result.output
    with admin(bi_flow) as a:
        assert (logged(a, 1), logged(a, 2)) == (30, 45)
    result = runner.invoke(app, ["log", "status"], env=env)
    assert result.exit_code == 0, result.output
    assert "Prediction log" in result.output and "2 Globex" in result.output
    result = runner.invoke(app, ["log", "prune", "--client", "99"], env=env)
    assert result.exit_code != 0 and "client(s) 99 do not exist" in str(result.exception)
