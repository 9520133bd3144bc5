"""The rest of the SQL surface on Citus: the monitoring and prediction-log functions, the
model quality view, BI reads without a client filter, and retrain decisions on a worker.

Uses the session's Citus cluster (tests/citus_fixture.py). This module runs between
tests/test_citus.py and tests/test_citus_tenants.py and leaves the data as it found it for
the latter: it trains the rework model for one client only, on the same pull requests that
module reopens (put back afterwards), so that module's training of that client ties with
this one's model and is promoted as for the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from pgml_flow import citus_tenants, training
from pgml_flow.app import PgmlFlow
from pgml_flow.citus_cluster import CitusCluster
from tests.citus_fixture import CITUS_AS_OF, CITUS_CLIENTS

#: the client trained here (test_citus_tenants retrains client 4 on its own)
CLIENT = 6
#: the monitoring functions, each called with its defaults
MONITORING = ("model_performance", "prediction_volume", "anomaly_summary",
              "retraining_history", "metric_history", "drift", "health")
#: the pull requests test_citus_tenants reopens (its newest 4 merged ones), for one client
REOPEN = """UPDATE pull_requests p SET state = 'open'
              FROM (SELECT client_id, pull_request_id,
                           row_number() OVER (PARTITION BY client_id
                                              ORDER BY pull_request_id DESC) AS n
                      FROM pull_requests WHERE state = 'merged' AND client_id = %(c)s) r
             WHERE p.client_id = %(c)s AND p.client_id = r.client_id
               AND p.pull_request_id = r.pull_request_id AND r.n <= 4
         RETURNING p.pull_request_id"""


def _login(url: str, client_id: int) -> psycopg.Connection:
    """A connection as the client's BI login on the coordinator (trusted unix sockets)."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    return psycopg.connect(citus_tenants.login_url(url, str(params["host"]),
                                                   int(str(params["port"])),
                                                   f"pgmlflow_client_{client_id}"),
                           autocommit=True)


@pytest.fixture(scope="module")
def flow(citus_cluster: CitusCluster, citus_url: str) -> Iterator[PgmlFlow]:
    """The rework model trained for CLIENT on its worker, BI logins for all clients."""
    flow = PgmlFlow(dataclasses.replace(citus_cluster.settings, database_url=citus_url))
    with psycopg.connect(citus_url, autocommit=True) as conn:
        reopened = [r[0] for r in conn.execute(REOPEN, {"c": CLIENT}).fetchall()]
    try:
        [trained] = flow.train(["rework"], [CLIENT])
        assert trained.status == "promoted", trained.detail
        flow.grant_bi_access()
        yield flow
    finally:
        with psycopg.connect(citus_url, autocommit=True) as conn:
            conn.execute("""UPDATE pull_requests SET state = 'merged'
                             WHERE client_id = %s AND pull_request_id = ANY(%s)""",
                         (CLIENT, reopened))


def test_monitoring_log_and_quality_as_tenant_and_admin(flow: PgmlFlow, citus_url: str) -> None:
    """The monitoring functions, the prediction log's status, bounds and prune, and
    analytics.model_quality plan and run on Citus: a tenant login sees its own client's
    rows only (whatever it sets), an admin sees every client or the one it sets, and the
    model quality's training and last-run columns are filled as on one server."""
    with _login(citus_url, CLIENT) as tenant:
        read = tenant.execute("SELECT count(*) FROM analytics.pull_request_rework_risk "
                              "WHERE client_id = %s", (CLIENT,)).fetchone()
        assert read and read[0] >= 1  # logged on the client's worker
    with psycopg.connect(citus_url, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM pgml_flow.check_drift(%s)",
                             (CLIENT,)).fetchone() != (0,)
        logged = admin.execute("SELECT count(*) FROM ml_prediction_log WHERE client_id = %s",
                               (CLIENT,)).fetchone()
        status = admin.execute("SELECT client_id, logged_rows, expired_rows, over_size_rows "
                               "FROM pgml_flow.prediction_log_status(%s)", (CLIENT,)).fetchall()
        assert logged and status == [(CLIENT, logged[0], 0, 0)]
        assert [r[0] for r in admin.execute(
            "SELECT client_id FROM pgml_flow.prediction_log_status()")] == list(
                range(1, CITUS_CLIENTS + 1))
        bounds = admin.execute("SELECT expire_before IS NOT NULL, prune_through_id "
                               "FROM pgml_flow.prediction_log_bounds(%s)", (CLIENT,)).fetchall()
        assert bounds == [(True, None)]
        admin.execute("CALL pgml_flow.prune_prediction_log(%s)", (CLIENT,))
        everyone = {f: admin.execute(f"SELECT DISTINCT client_id FROM monitoring.{f}()"
                                     ).fetchall() for f in ("model_performance", "health")}
        assert all(len(rows) == CITUS_CLIENTS for rows in everyone.values()), everyone
        with admin.transaction():  # an admin looking as one client
            admin.execute("SELECT set_config('pgml_flow.client_id', %s, true)", (str(CLIENT),))
            as_admin = {f: admin.execute(f"SELECT * FROM monitoring.{f}()").fetchall()
                        for f in MONITORING}
            admin_quality = admin.execute(
                "SELECT training_rows, trained_at IS NOT NULL, last_run_status, model_id "
                "FROM analytics.model_quality WHERE model_name = 'rework'").fetchall()
    with _login(citus_url, CLIENT) as tenant:
        tenant.execute("SET pgml_flow.client_id = 1")  # ignored for a BI login
        as_tenant = {f: tenant.execute(f"SELECT * FROM monitoring.{f}()").fetchall()
                     for f in MONITORING}
        quality = tenant.execute(
            "SELECT training_rows, trained_at IS NOT NULL, last_run_status, model_id "
            "FROM analytics.model_quality WHERE model_name = 'rework'").fetchall()
    for f in MONITORING:
        assert as_tenant[f], f  # every function has rows of CLIENT ...
        assert {r[0] for r in as_tenant[f]} == {CLIENT}, f  # ... and no other client's
        assert {r[0] for r in as_admin[f]} == {CLIENT}, f
        assert len(as_admin[f]) == len(as_tenant[f]), f
    [perf] = [r for r in as_tenant["model_performance"] if r[2] == "rework"]
    assert perf[4] == logged[0] and perf[6] is not None  # predictions, p50 latency
    [(training_rows, trained, last_status, model_id)] = quality
    assert quality == admin_quality
    assert model_id is not None and model_id >> 48 != 0  # trained on a worker
    with psycopg.connect(citus_url) as admin:
        # what model_quality shows on one server: the deployed model's baseline, the last run
        expected = admin.execute(
            """SELECT (SELECT b.training_rows FROM ml_model_baselines b
                        WHERE b.client_id = %(c)s AND b.model_id = %(m)s),
                      (SELECT e.status FROM ml_retraining_events e
                        WHERE e.client_id = %(c)s AND e.model_name = 'rework'
                        ORDER BY e.started_at DESC, e.id DESC LIMIT 1)""",
            {"c": CLIENT, "m": model_id}).fetchone()
    assert expected is not None and expected[0] is not None
    assert (training_rows, trained, last_status) == (expected[0], True, expected[1])


def test_unfiltered_bi_reads_and_retrain_data_age(flow: PgmlFlow, citus_url: str) -> None:
    """A tenant's BI query without `WHERE client_id = N` works on Citus for
    analytics.issue_story_points (its issue type a lookup, not an outer join) and, in a
    read-only transaction, for a view whose predictions would be logged; the rows are the
    filtered query's. A retrain decided on the client's worker knows the data's age (from
    the coordinator's training summary) and decides as the coordinator does."""
    with psycopg.connect(citus_url) as conn:  # served (no model: NULL predictions)
        training.register(conn, flow.model_specs()["complexity"])
    with _login(citus_url, 4) as tenant:  # the seed leaves client 4 open issues
        unfiltered = tenant.execute("SELECT * FROM analytics.issue_story_points "
                                    "ORDER BY issue_id").fetchall()
        filtered = tenant.execute("SELECT * FROM analytics.issue_story_points "
                                  "WHERE client_id = 4 ORDER BY issue_id").fetchall()
        assert unfiltered == filtered and unfiltered
        assert all(r[0] == 4 and r[3] is not None for r in unfiltered)  # client, issue type
        assert tenant.execute("SELECT count(*) FROM analytics.issue_story_points "
                              "WHERE client_id = 5").fetchone() == (0,)
    with _login(citus_url, CLIENT) as tenant:
        filtered = tenant.execute("SELECT pull_request_id, rework_probability "
                                  "FROM analytics.pull_request_rework_risk "
                                  "WHERE client_id = %s ORDER BY 1", (CLIENT,)).fetchall()
        with tenant.transaction():
            tenant.execute("SET TRANSACTION READ ONLY")
            assert tenant.execute("SELECT pull_request_id, rework_probability "
                                  "FROM analytics.pull_request_rework_risk ORDER BY 1"
                                  ).fetchall() == filtered
    assert filtered
    # past the rework spec's data_freshness_days (21) after the seed's last day
    now = CITUS_AS_OF + dt.timedelta(days=100)
    [decision] = flow.retrain_decisions(["rework"], [CLIENT], now=now)  # on the coordinator
    assert not decision.retrain and "data is stale: newest row" in decision.reason
    [result] = flow.retrain(["rework"], [CLIENT], now=now)  # on the client's worker
    assert (result.status, result.detail) == ("skipped", decision.reason)
    with psycopg.connect(citus_url) as conn:
        ran = conn.execute(
            """SELECT e.id >> 48, p.groupid FROM ml_retraining_events e
                 JOIN pg_dist_placement p
                   ON p.shardid = get_shard_id_for_distribution_column('public.issues',
                                                                       e.client_id)
                WHERE e.client_id = %s AND e.status = 'skipped'
                ORDER BY e.started_at DESC LIMIT 1""", (CLIENT,)).fetchone()
    assert ran is not None and ran[0] == ran[1] != 0  # decided on the worker
