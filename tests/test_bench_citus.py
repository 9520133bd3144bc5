"""Smoke test of `pgml-flow bench citus` (one server against Citus): it runs at a tiny size
and prints its tables.  No timing is asserted (docs/benchmarks.md); the figures are read.

It borrows the session's Citus cluster (tests/citus_fixture.py) instead of starting one:
its one client goes in an id range of its own (901) and is deleted afterwards with its
models and BI login, so that the cluster is left as the other Citus tests expect it.
"""

from __future__ import annotations

import json

import psycopg
from typer.testing import CliRunner

from cli import bench_citus, bench_commands
from pgml_flow.benchmarks import citus as bench
from pgml_flow.benchmarks.common import BenchmarkError
from pgml_flow.citus_cluster import CitusCluster

CLIENT = 901


def test_bench_citus_runs_prints_and_cleans_up(db_url: str, citus_cluster: CitusCluster,
                                               citus_url: str, tmp_path, capsys) -> None:
    single = bench.System(bench.SINGLE, db_url, [bench.Node("server", db_url)])
    cluster = bench.citus_system(citus_cluster)
    assert [n.label for n in cluster.nodes][:3] == ["coordinator", "worker1", "worker2"]
    result = bench.run([single, cluster], clients=1, issues=100, first_client=CLIENT,
                       models=("rework",), sessions=1, seconds=0.2, cleanup=True)

    # the same retrain on both systems, its CPU read on every node
    assert [r.system for r in result.retrains] == [single.name, cluster.name]
    for r in result.retrains:
        assert sum(r.statuses.values()) == 1 and r.wall_seconds > 0, r
        assert r.cpu_seconds is not None and r.cpu_total is not None
    assert set(result.retrains[1].cpu_seconds or {}) == {n.label for n in cluster.nodes}
    # every BI view read as the tenant login on each system, routed on Citus, none failing
    assert [(b.system, b.view) for b in result.bi] == [
        (s.name, v) for s in (single, cluster) for v in bench.VIEWS]
    for b in result.bi:
        assert b.error is None and b.failed == 0 and b.queries > 0, b
        assert b.cpu_seconds is not None and b.percentile(0.5) is not None, b
    assert {"retrain wall", "issue_story_points p50"} <= set(result.ratios())
    # as the tenant login, a BI view read with its client_id is a router plan: one task
    [routed, unfiltered] = result.plans
    assert routed.error is None and routed.task_counts == [1], routed.text
    assert routed.role == unfiltered.role == f"pgmlflow_client_{CLIENT}"

    bench_citus.report(result, tmp_path, False)
    printed = capsys.readouterr().out
    for title in ("Forced retrain of every client", "BI reads as each client's login",
                  "Ratios", "Task Count: 1", "load average at start"):
        assert title in printed, printed
    [path] = tmp_path.glob("citus-*.json")
    saved = json.loads(path.read_text())
    assert saved["retrain"][0]["system"] == bench.SINGLE and len(saved["bi"]) == 6
    assert saved["ratios_citus_over_single"]["retrain wall"] > 0
    assert saved["plans"][0]["task_counts"] == [1]

    # the benchmark's client is gone from the shared cluster: rows, models, login
    with psycopg.connect(citus_url) as conn:
        assert conn.execute(
            "SELECT (SELECT count(*) FROM clients WHERE client_id = %(c)s)"
            " + (SELECT count(*) FROM issues WHERE client_id = %(c)s)"
            " + (SELECT count(*) FROM ml_retraining_events WHERE client_id = %(c)s)"
            " + (SELECT count(*) FROM pgml.projects WHERE name LIKE '%%client_' || %(c)s)"
            " + (SELECT count(*) FROM pg_roles WHERE rolname = 'pgmlflow_client_' || %(c)s)",
            {"c": CLIENT}).fetchone() == (0,)

    # bad options are refused before anything starts
    refused = CliRunner().invoke(bench_commands.app, ["citus", "--models", "nope"])
    assert isinstance(refused.exception, BenchmarkError), refused.output
