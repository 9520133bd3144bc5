"""Tenants on Citus: models trained next to each client's shard, BI reads routed to it,
isolation on every node as the tenant logins, and a rebalance with reads going on.

Uses the session's Citus cluster (tests/citus_fixture.py: a coordinator and two workers,
6 clients seeded). The last test adds a third worker, so this module runs after
tests/test_citus.py, which accepts any number of workers.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from pgml_flow import citus_tenants
from pgml_flow.app import PgmlFlow
from pgml_flow.citus_cluster import CitusCluster
from pgml_flow.retraining import RetrainOptions
from tests.citus_fixture import CITUS_CLIENTS

#: what a tenant reads: its open pull requests and their rework risk (the rework model)
READ = ("SELECT pull_request_id, rework_probability, rework_score, model_id "
        "FROM analytics.pull_request_rework_risk WHERE client_id = %s ORDER BY 1")
#: pull requests per client put back to open (the seed leaves few open at its end date)
REOPENED = 4


def _flow(cluster: CitusCluster, url: str) -> PgmlFlow:
    return PgmlFlow(dataclasses.replace(cluster.settings, database_url=url))


def _login(url: str, client_id: int, node: tuple[str, int] | None = None) -> psycopg.Connection:
    """A connection as the client's BI login (trusted unix sockets on the local cluster)."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    host, port = node or (str(params["host"]), int(str(params["port"])))
    return psycopg.connect(citus_tenants.login_url(url, host, port,
                                                   f"pgmlflow_client_{client_id}"),
                           autocommit=True)


@pytest.fixture(scope="module")
def trained(citus_cluster: CitusCluster, citus_url: str) -> dict[int, int]:
    """The rework model trained for every client through `PgmlFlow.train` (each on its
    worker), BI logins for all; the node group that holds each client's shard."""
    flow = _flow(citus_cluster, citus_url)
    with psycopg.connect(citus_url, autocommit=True) as conn:
        # a few merged pull requests of each client open again, for the BI surface to score
        conn.execute(
            """UPDATE pull_requests p SET state = 'open'
                 FROM (SELECT client_id, pull_request_id,
                              row_number() OVER (PARTITION BY client_id
                                                 ORDER BY pull_request_id DESC) AS n
                         FROM pull_requests WHERE state = 'merged') r
                WHERE p.client_id = r.client_id AND p.pull_request_id = r.pull_request_id
                  AND r.n <= %s""", (REOPENED,))
    results = flow.train(["rework"])
    assert [r.client_id for r in results] == list(range(1, CITUS_CLIENTS + 1))
    assert all(r.status == "promoted" for r in results), [r.detail for r in results]
    flow.grant_bi_access()
    with psycopg.connect(citus_url) as conn:
        groups: dict[int, int] = dict(conn.execute(
            """SELECT c, p.groupid FROM generate_series(1, %s) c
                 JOIN pg_dist_placement p
                   ON p.shardid = get_shard_id_for_distribution_column('public.issues', c)""",
            (CITUS_CLIENTS,)).fetchall())
        # the fit ran on the client's worker: a row's id comes from the sequence range of
        # the node that inserted it (Citus: group id << 48), model and training run alike
        ran = conn.execute(
            """SELECT e.client_id, e.challenger_model_id >> 48, e.id >> 48
                 FROM ml_retraining_events e WHERE e.status = 'promoted'""").fetchall()
    assert {cid: (g, g) for cid, g in groups.items()} == {c: (m, e) for c, m, e in ran}
    assert len(set(groups.values())) >= 2 and 0 not in groups.values()
    # a scheduled-style retrain (the scheduler's path) runs there too
    [retrained] = flow.retrain(["rework"], [4], options=RetrainOptions(force=True))
    assert retrained.ok and retrained.model_id is not None
    assert retrained.model_id >> 48 == groups[4]
    return {int(c): int(g) for c, g in groups.items()}


def test_trained_routed_and_isolated_on_every_node(citus_cluster: CitusCluster,
                                                   citus_url: str,
                                                   trained: dict[int, int]) -> None:
    """Each tenant's one-client BI query is a one-task plan on the worker of its shard,
    where pgml.predict runs (its prediction log rows come from that node's sequence); the
    predictions are the same read on any node; tenant logins see nothing of other clients
    on the coordinator and on each worker, and the audit (`pgml-flow verify isolation`'s
    Citus form) passes."""
    with psycopg.connect(citus_url) as conn:
        nodes = {g: (str(h), int(p)) for g, h, p in conn.execute(
            "SELECT groupid, nodename, nodeport FROM pg_dist_node WHERE isactive")}
    for client_id, group in trained.items():
        with _login(citus_url, client_id) as tenant:
            plan = "\n".join(r[0] for r in tenant.execute("EXPLAIN " + READ, (client_id,)))
            assert "Task Count: 1" in plan and f"port={nodes[group][1]} " in plan, plan
            rows = tenant.execute(READ, (client_id,)).fetchall()
        assert len(rows) >= REOPENED and all(r[1] is not None for r in rows)
        assert {r[3] >> 48 for r in rows} == {group}  # the model trained on that worker
        # the same predictions straight from every node (a BI tool may connect to any);
        # two clients, one per first worker, to keep the suite's time
        for node in (nodes.values() if client_id in (1, 4) else ()):
            with _login(citus_url, client_id, node) as tenant:
                assert tenant.execute(READ, (client_id,)).fetchall() == rows
                assert tenant.execute(
                    "SELECT DISTINCT client_id FROM pull_requests").fetchall() == [(client_id,)]
                other = client_id % CITUS_CLIENTS + 1
                assert tenant.execute(READ, (other,)).fetchall() == []
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    tenant.execute("SELECT count(*) FROM pgml.models")
    with psycopg.connect(citus_url) as conn:
        logged = conn.execute("SELECT DISTINCT client_id, id >> 48 FROM ml_prediction_log"
                              ).fetchall()
        assert dict(logged) == trained  # pgml.predict ran where the client's rows are
        report = citus_tenants.audit_nodes(conn, citus_url, client_ids=[2])
    assert report.ok, report.failures[:5]
    labels = {c.object.split(":")[0] for c in report.checks}
    assert labels == {"coordinator", *(f"worker {g}" for g in nodes if g)}
    assert any(c.object.endswith("analytics.pull_request_rework_risk") and c.rows
               for c in report.checks)


def test_rebalance_moves_tenants_without_failed_predictions(
        citus_cluster: CitusCluster, citus_url: str, trained: dict[int, int]) -> None:
    """A third worker joins and the rebalancer moves shards to it while tenant logins keep
    reading their predictions: none fails, and every tenant's predictions (the moved ones
    included) are the same after the move as before, served from the new place."""
    before: dict[int, list[tuple[object, ...]]] = {}
    for client_id in trained:
        with _login(citus_url, client_id) as tenant:
            before[client_id] = tenant.execute(READ, (client_id,)).fetchall()
    stop = threading.Event()
    reads: dict[int, int] = {}
    failures: list[str] = []

    def read_loop(client_id: int) -> None:
        with _login(citus_url, client_id) as tenant:
            while not stop.is_set():
                try:
                    assert tenant.execute(READ, (client_id,)).fetchall() == before[client_id]
                    reads[client_id] = reads.get(client_id, 0) + 1
                except (psycopg.Error, AssertionError) as exc:
                    failures.append(f"client {client_id}: {str(exc).splitlines()[0]}")

    readers = [threading.Thread(target=read_loop, args=(c,)) for c in trained]
    for reader in readers:
        reader.start()
    try:
        citus_cluster.add_worker(server_venv=Path(sys.prefix))
        with psycopg.connect(citus_url) as conn:
            placement = citus_tenants.rebalance(conn)
            after_nodes = citus_tenants.client_nodes(conn, list(trained))
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == []
    assert len(placement) == 3 and min(placement.values()) >= 1  # the new worker has shards
    assert all(reads.get(c, 0) >= 1 for c in trained)
    with psycopg.connect(citus_url) as conn:
        groups: dict[int, int] = dict(conn.execute(
            """SELECT c, p.groupid FROM generate_series(1, %s) c
                 JOIN pg_dist_placement p
                   ON p.shardid = get_shard_id_for_distribution_column('public.issues', c)""",
            (len(trained),)).fetchall())
    moved = [c for c in trained if groups[c] != trained[c]]
    assert moved, (trained, groups, after_nodes)
    for client_id in trained:
        with _login(citus_url, client_id) as tenant:
            assert tenant.execute(READ, (client_id,)).fetchall() == before[client_id]
