"""Read replicas: a hot standby made by ``pgml-flow db replica start`` serves predictions.

Everything here runs against two real servers: the suite's embedded primary and a standby
cloned from it with ``pg_basebackup -R`` that replays its WAL.  Models reach the standby by
ordinary replication; nothing is copied by pgml-flow.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pgml_flow.app import PgmlFlow
from pgml_flow.database import with_dbname


@pytest.fixture(scope="module")
def replica(base_flow: PgmlFlow) -> Iterator[PgmlFlow]:
    if base_flow.settings.external:
        pytest.skip("the local standby is made from the embedded cluster")
    base_flow.start_replica()
    try:
        yield base_flow
    finally:
        base_flow.stop_replica(remove=True)


def test_standby_serves_predictions_bi_views_and_redeploys(
        replica: PgmlFlow, tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    tflow.grant_bi_access([1])
    dbname = psycopg.conninfo.conninfo_to_dict(tflow.url)["dbname"]
    standby_url = with_dbname(replica.replica.url(), str(dbname))
    try:
        with psycopg.connect(tflow.url, autocommit=True) as primary:
            primary.execute("CREATE TABLE probe AS SELECT x::real AS x, 2 * x::real AS y"
                            " FROM generate_series(1, 60) x")
            primary.execute("SELECT * FROM pgml.train('probe', 'regression', 'probe', 'y',"
                            " 'linear')")
            logged_before = primary.execute(
                "SELECT count(*) FROM ml_prediction_log").fetchone()
            role = primary.execute("SELECT role_name FROM client_bi_roles"
                                   " WHERE client_id = 1").fetchone()[0]
        replica.replica.wait_for_replay()

        with psycopg.connect(standby_url, autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert standby.execute("SELECT round(pgml.predict('probe', ARRAY[10]::real[]))"
                                   ).fetchone() == (20,)
            # the client's BI login reads its views on the standby: predictions, no error
            # although the read cannot log (the primary's next read of the items logs them)
            standby.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
                sql.Identifier(role)))
            rows, predicted, clients = standby.execute(
                "SELECT count(*), count(predicted_story_points), count(DISTINCT client_id)"
                " FROM analytics.issue_story_points").fetchone()
            assert rows > 0 and predicted == rows and clients == 1
            standby.execute("RESET SESSION AUTHORIZATION")

            # a redeploy on the primary reaches this open standby connection after replay
            with psycopg.connect(tflow.url, autocommit=True) as primary:
                primary.execute("UPDATE probe SET y = 3 * x")
                primary.execute("SELECT * FROM pgml.train('probe', algorithm => 'linear')")
                primary.execute("SELECT * FROM pgml.deploy('probe', 'most_recent')")
                assert primary.execute("SELECT count(*) FROM ml_prediction_log"
                                       ).fetchone() == logged_before
            replica.replica.wait_for_replay()
            assert standby.execute("SELECT round(pgml.predict('probe', ARRAY[10]::real[]))"
                                   ).fetchone() == (30,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                standby.execute("SELECT * FROM pgml.train('probe', algorithm => 'linear')")

        # read-only commands read from DATABASE_READ_URL: the standby
        shown = json.loads(subprocess.run(
            [".venv/bin/pgml-flow", "status", "--client", "1", "--json"],
            env={**cli_env, "DATABASE_URL": tflow.url, "DATABASE_READ_URL": standby_url},
            capture_output=True, text=True, check=True).stdout)
        assert {r["model"] for r in shown} == {"trajectory", "complexity", "rework"}
        status = subprocess.run([".venv/bin/pgml-flow", "db", "replica", "status", "--json"],
                                env=cli_env, capture_output=True, text=True, check=True)
        shown = json.loads(status.stdout)
        assert shown["running"] and shown["in_recovery"] and shown["replay_lag_bytes"] >= 0
        url = subprocess.run([".venv/bin/pgml-flow", "db", "replica", "url"], env=cli_env,
                             capture_output=True, text=True, check=True).stdout.strip()
        assert url == replica.replica.url()
    finally:
        tflow.revoke_bi_access()
