"""pgml-flow on Citus: the local cluster, the build, and the schema distributed by client_id.

Against a real coordinator and two workers (tests/citus_fixture.py), migrated with the one
migration history and seeded with six clients; nothing of Citus is mocked. The build of
Citus itself is proven by its detection and its command lines (a real build takes minutes:
`python -m pgml_flow.citus_build --destdir DIR` runs it into a staging directory).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgml_flow import citus_build, shared
from pgml_flow.app import PgmlFlow
from pgml_flow.citus_cluster import CitusCluster, is_citus
from pgml_flow.errors import MigrationError
from pgml_flow.postgres import find_installation
from tests.citus_fixture import CITUS_CLIENTS

#: the small tables every node reads, as reference tables (a copy on each node)
REFERENCE = {"clients", "client_bi_roles", "issuetypes", "pgml_flow_settings",
             "pgml_flow_secrets", "ml_model_registry", "ml_rollout_global", "ml_job_runs"}
#: what the issue names, at the least, among the distributed tables
DISTRIBUTED_AT_LEAST = {"issues", "pull_requests", "repositories", "ml_prediction_log",
                        "ml_retraining_events", "ml_model_baselines", "ml_drift_checks",
                        "ml_abtests", "ml_abtest_predictions", "ml_model_candidates"}


def test_build_detection_and_steps(tmp_path: Path) -> None:
    """What a fresh machine would install and run; here Citus is installed, so nothing."""
    inst = find_installation()
    assert citus_build.installed(inst)
    assert citus_build.missing_packages(inst) == []
    # a root with only some of the build's header files: the rest are named, in order
    (tmp_path / "usr/include/openssl").mkdir(parents=True)
    (tmp_path / "usr/include/openssl/ssl.h").touch()
    (tmp_path / "usr/include/x86_64-linux-gnu/curl").mkdir(parents=True)
    (tmp_path / "usr/include/x86_64-linux-gnu/curl/curl.h").touch()
    missing = citus_build.missing_packages(inst, root=tmp_path)
    assert "libssl-dev" not in missing and "libcurl4-openssl-dev" not in missing
    assert missing[:2] == ["libzstd-dev", "liblz4-dev"]
    assert missing[-1] == f"postgresql-server-dev-{inst.major}"

    source = citus_build.source_dir()
    steps = citus_build.plan(inst, tmp_path / "build", source, destdir=tmp_path / "stage")
    commands = [" ".join(s.argv) for s in steps]
    top = tmp_path / "build" / "citus-13.2.2"
    assert commands[0].startswith("tar xzf ") and commands[0].endswith(f"-C {tmp_path}/build")
    assert steps[1].argv[:2] == ("patch", "-p1") and steps[1].cwd == top
    assert steps[1].stdin == source / "pg15.20-have_createdb_privilege.patch"
    assert commands[2:] == [f"./configure PG_CONFIG={inst.tool('pg_config')}", "make -j2",
                            f"make install DESTDIR={tmp_path}/stage"]
    # the build directory is never in the git-tracked tree
    assert not str(top).startswith(str(shared.PROJECT_ROOT) + "/pgml_flow")
    assert citus_build.ensure(inst, home=tmp_path, auto_install=False) is False
    assert citus_build.source_dir({citus_build.SOURCE_ENV: str(tmp_path)}) == tmp_path


def test_cluster_schema_distributed_and_routed(citus_cluster: CitusCluster,
                                               citus_url: str) -> None:
    """The cluster runs 2 active workers; per-client tables are distributed by client_id
    and co-located, shared ones are reference tables; keys lead with client_id; the partial
    indexes are on the shards; functions reached the workers; the training summary
    refreshes concurrently on the coordinator; a one-client query is a one-shard plan."""
    status = citus_cluster.status()
    # 2 workers from the fixture (a rebalancing test may have added one since)
    workers = citus_cluster.worker_count()
    assert workers >= 2 and status.active_workers == workers
    assert all(n.running for n in status.nodes)
    # start is idempotent: a running cluster stays as it is
    again = citus_cluster.start()
    assert again.active_workers == workers and [n.port for n in again.nodes] == \
        [n.port for n in status.nodes]

    with psycopg.connect(citus_url, autocommit=True) as conn:
        assert is_citus(conn)
        rows = conn.execute(
            """SELECT c.relname, p.partmethod, p.repmodel, p.colocationid,
                      column_to_column_name(p.logicalrelid, p.partkey)
                 FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
                WHERE c.relnamespace = 'public'::regnamespace""").fetchall()
        kinds = {name: (method, rep, coloc, key) for name, method, rep, coloc, key in rows}
        reference = {n for n, (m, r, _, _) in kinds.items() if m == "n" and r == "t"}
        distributed = {n for n, (m, _, _, _) in kinds.items() if m == "h"}
        assert reference == REFERENCE
        assert distributed >= DISTRIBUTED_AT_LEAST
        assert {kinds[n][2] for n in distributed} == {kinds["issues"][2]}, "co-located"
        assert {kinds[n][3] for n in distributed} == {"client_id"}
        # every public table with client_id is a Citus table (none left on the coordinator)
        local = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                  AND a.attname = 'client_id'
                  AND c.oid NOT IN (SELECT logicalrelid FROM pg_dist_partition)""").fetchall()
        assert local == []
        # keys of distributed tables include client_id (Citus enforces them per shard)
        keys = conn.execute(
            """SELECT con.conrelid::regclass::text, con.conname
                 FROM pg_constraint con
                 JOIN pg_dist_partition p ON p.logicalrelid = con.conrelid
                WHERE p.partmethod = 'h' AND con.contype IN ('p', 'u', 'f')
                  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                   WHERE a.attrelid = con.conrelid
                                     AND a.attnum = ANY (con.conkey)
                                     AND a.attname = 'client_id')""").fetchall()
        assert keys == []
        # the seeded clients are spread over both workers
        nodes = conn.execute(
            """SELECT count(DISTINCT s.nodeport) FROM citus_shards s
                WHERE s.table_name = 'issues'::regclass AND s.shard_size > 8192""").fetchone()
        assert nodes is not None and nodes[0] >= 2
        assert conn.execute("SELECT count(DISTINCT client_id) FROM issues").fetchone() == \
            (CITUS_CLIENTS,)
        # functions of the idempotent SQL are distributed objects (created on every node)
        assert conn.execute(
            """SELECT count(*) FROM pg_dist_object
                WHERE classid = 'pg_proc'::regclass
                  AND objid = 'pgml_flow.current_client_id()'::regprocedure"""
        ).fetchone() == (1,)

        # the materialized view is built from the shards, concurrently refreshable
        conn.execute("SELECT pgml_flow.refresh_training_summary()")
        conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_ml_training_summary")
        assert conn.execute("SELECT count(DISTINCT client_id) FROM mv_ml_training_summary"
                            ).fetchone() == (CITUS_CLIENTS,)
        # the analytics views plan and run on the coordinator (the superuser is no client:
        # no rows; tenants read them in the isolation tests)
        for view in ("training_summary", "issue_story_points", "epic_forecasts",
                     "pull_request_rework_risk", "prediction_log", "retraining_events",
                     "model_quality"):
            conn.execute(f"SELECT count(*) FROM analytics.{view}").fetchone()

        # one client's BI-style query (issues with their type) is routed to one shard
        plan = "\n".join(r[0] for r in conn.execute(
            """EXPLAIN SELECT i.issue_key, t.original_name, i.story_points
                 FROM issues i JOIN issuetypes t USING (client_id, issuetype_id)
                WHERE i.client_id = 3 AND i.active""").fetchall())
        assert "Task Count: 1" in plan, plan

    # analytics.model_quality as a client's BI login: the client is resolved on the
    # coordinator, its last run read from its shard (a worker), other clients' not seen
    flow = PgmlFlow(dataclasses.replace(citus_cluster.settings, database_url=citus_url))
    login = flow.grant_bi_access([2])[0]
    with psycopg.connect(citus_url, autocommit=True) as conn:
        conn.execute("""INSERT INTO ml_model_registry (model_name, task, training_view,
                          target, feature_view, features, key_metric, performance_threshold,
                          spec)
                        VALUES ('probe', 'regression', 'v', 't', 'fv', ARRAY['a'],
                                'mean_absolute_error', 1, '{}')""")
        conn.execute("""INSERT INTO ml_retraining_events (client_id, model_name, project,
                          reason, status, started_at)
                        SELECT c, 'probe', 'probe__client_' || c, 'manual',
                               CASE c WHEN 2 THEN 'skipped' ELSE 'failed' END, now()
                          FROM generate_series(1, 3) c""")
        try:
            conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
                sql.Identifier(login.role)))
            seen = conn.execute("SELECT client_id, last_run_status FROM analytics.model_quality"
                                " WHERE model_name = 'probe'").fetchall()
            # a BI view with the client's issue types, next to the tenant policies (no
            # model deployed: no rows, and no error)
            conn.execute("SELECT count(*) FROM analytics.issue_story_points").fetchone()
            conn.execute("RESET SESSION AUTHORIZATION")
            assert seen == [(2, "skipped")]
        finally:
            conn.execute("RESET SESSION AUTHORIZATION")
            conn.execute("DELETE FROM ml_retraining_events WHERE model_name = 'probe'")
            conn.execute("DELETE FROM ml_model_registry WHERE model_name = 'probe'")

    # the seed's partial indexes are on the shards, on the workers; so are plpython3u and
    # pgml-flow's schemas (propagated by Citus), where a client's queries run
    worker = citus_cluster.workers()[0]
    with psycopg.connect(worker.url(), autocommit=True) as conn:
        shard_indexes = {r[0].rsplit("_", 1)[0] for r in conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indpred IS NOT NULL"
        ).fetchall()}
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname IN ('citus', 'plpython3u')"
        ).fetchone() == (2,)
        assert {r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname IN"
            " ('pgml', 'pgml_flow', 'analytics')").fetchall()} == {
            "pgml", "pgml_flow", "analytics"}
    assert {"issues_trajectory_idx", "issues_complexity_idx", "issues_open_idx",
            "pull_requests_rework_idx", "ml_prediction_log_recent_idx"} <= shard_indexes


def test_migrations_on_citus(citus_cluster: CitusCluster, citus_url: str,
                             cli_env: dict[str, str]) -> None:
    """One migration history: down one revision and back to head on Citus; below 0014 is
    refused and changes nothing; the commands print the coordinator's URL and status."""
    flow = PgmlFlow(dataclasses.replace(citus_cluster.settings, database_url=citus_url))
    from pgml_flow import migrate

    head = migrate.head_revision()
    below = migrate.revisions()[1]
    assert flow.downgrade("-1") == below
    assert flow.upgrade() == head
    with pytest.raises(MigrationError, match="not supported"):
        flow.downgrade("0013_model_selection")
    assert migrate.current_revision(citus_url) == head
    with psycopg.connect(citus_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_dist_partition p JOIN pg_class c"
                            " ON c.oid = p.logicalrelid WHERE c.relname = 'issues'"
                            " AND p.partmethod = 'h'").fetchone() == (1,)

    env = {**cli_env, "PGML_FLOW_HOME": str(citus_cluster.settings.home)}
    env.pop("DATABASE_URL", None)
    url = subprocess.run([".venv/bin/pgml-flow", "db", "cluster", "url"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert url == citus_cluster.url()
    shown = json.loads(subprocess.run(
        [".venv/bin/pgml-flow", "db", "cluster", "status", "--json"], env=env,
        capture_output=True, text=True, check=True).stdout)
    assert shown["active_workers"] == citus_cluster.worker_count() and shown["citus_version"]
    # with DATABASE_URL naming a Citus coordinator, the commands use it as it is
    ext = json.loads(subprocess.run(
        [".venv/bin/pgml-flow", "db", "cluster", "status", "--json"],
        env={**env, "DATABASE_URL": citus_url}, capture_output=True, text=True,
        check=True).stdout)
    assert ext["local"] is False and ext["active_workers"] == citus_cluster.worker_count()
    assert [n["role"] for n in ext["nodes"]][:3] == ["coordinator", "worker", "worker"]
