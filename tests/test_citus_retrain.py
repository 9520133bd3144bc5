"""Retraining on Citus that does not fail (issue 17): every built-in model, concurrent runs
on one worker, the node groups at the same time, and no model left behind by a replace.

Borrows the session's Citus cluster (tests/citus_fixture.py) like test_bench_citus: its
clients go in an id range of their own (911-914, enough issues for the trajectory model)
and are deleted at the end with their models, so the cluster is left as the other Citus
tests expect it. Four clients over two or three workers: at least two share a worker, so
parallelism 2 trains two of them there at once.
"""

from __future__ import annotations

import dataclasses

import psycopg

from pgml_flow import citus_tenants
from pgml_flow.app import PgmlFlow
from pgml_flow.benchmarks.citus import delete_clients
from pgml_flow.citus_cluster import CitusCluster
from pgml_flow.retraining import RetrainOptions
from tests.citus_fixture import CITUS_AS_OF

FIRST, CLIENTS, ISSUES = 911, 4, 700
MODELS = ["trajectory", "rework", "complexity"]
#: rows of the pgml tables whose parent is gone (on one node's placements)
ORPHANS = """SELECT (SELECT count(*) FROM pgml.models m
                      WHERE NOT EXISTS (SELECT FROM pgml.projects p WHERE p.id = m.project_id))
                  + (SELECT count(*) FROM pgml.deployments d
                      WHERE NOT EXISTS (SELECT FROM pgml.projects p WHERE p.id = d.project_id))
                  + (SELECT count(*) FROM pgml.files f
                      WHERE NOT EXISTS (SELECT FROM pgml.models m WHERE m.id = f.model_id))"""


def _orphans_per_node(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        nodes = citus_tenants.nodes(conn)
    counts = {}
    for label, host, port in nodes:
        with psycopg.connect(citus_tenants.node_url(url, host, port)) as node:
            row = node.execute(ORPHANS).fetchone()
            counts[label] = int(row[0]) if row else -1
    return counts


def test_retrain_all_models_in_parallel_and_replace_leaves_no_orphans(
        citus_cluster: CitusCluster, citus_url: str) -> None:
    flow = PgmlFlow(dataclasses.replace(citus_cluster.settings, database_url=citus_url))
    ids = list(range(FIRST, FIRST + CLIENTS))
    flow.seed(clients=CLIENTS, issues=ISSUES, seed=5, as_of=CITUS_AS_OF,
              first_client_id=FIRST, replace=True)
    try:
        # 1+2. new projects, every built-in model (trajectory: a multi-shard read, then the
        # reference-table writes), two trainings at once per worker (they deadlocked on the
        # pgml.projects shard lock), the workers at the same time
        results = flow.retrain(MODELS, ids, options=RetrainOptions(force=True, parallelism=2))
        assert [(r.client_id, r.model_name) for r in results] == [
            (c, m) for c in ids for m in MODELS]
        assert all(r.status == "promoted" for r in results), [
            (r.client_id, r.model_name, r.detail) for r in results if r.status != "promoted"]
        with psycopg.connect(citus_url) as conn:
            runs = conn.execute(
                """SELECT challenger_model_id >> 48, started_at, finished_at
                     FROM ml_retraining_events
                    WHERE client_id = ANY(%s) AND status = 'promoted'""", (ids,)).fetchall()
            deployed = conn.execute(
                """SELECT count(*) FROM pgml.deployments d JOIN pgml.projects p
                       ON p.id = d.project_id WHERE p.name = ANY(%s)""",
                ([f"{m}__client_{c}" for c in ids for m in MODELS],)).fetchone()
            # the foreign keys of the pgml tables survived their conversion to reference
            # tables (055_citus_pgml.sql), ON DELETE CASCADE
            keys = set(conn.execute(
                """SELECT conrelid::regclass::text, confrelid::regclass::text, confdeltype
                     FROM pg_constraint WHERE contype = 'f'
                      AND conrelid IN ('pgml.models'::regclass, 'pgml.deployments'::regclass,
                                       'pgml.files'::regclass)""").fetchall())
        assert deployed == (len(results),)
        assert {("pgml.models", "pgml.projects", "c"), ("pgml.deployments", "pgml.projects", "c"),
                ("pgml.deployments", "pgml.models", "c"), ("pgml.files", "pgml.models", "c")
                } <= keys
        # each run went to the worker holding its client (group in the id's high bits);
        # runs of two workers overlapped in time: the node groups ran concurrently
        groups = {g for g, _, _ in runs}
        assert len(groups) >= 2 and 0 not in groups
        assert any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in runs for b in runs)

        # 3. replacing the clients deletes their projects with everything under them, on
        # every node's placements (the replace ran its deletes with the cascade off)
        flow.seed(clients=CLIENTS, issues=50, seed=6, as_of=CITUS_AS_OF,
                  first_client_id=FIRST, replace=True)
        with psycopg.connect(citus_url) as conn:
            left = conn.execute("SELECT count(*) FROM pgml.projects WHERE name = ANY(%s)",
                                ([f"{m}__client_{c}" for c in ids for m in MODELS],)).fetchone()
        assert left == (0,)
        assert set(_orphans_per_node(citus_url).values()) == {0}
    finally:
        delete_clients(flow, ids)
    assert set(_orphans_per_node(citus_url).values()) == {0}
