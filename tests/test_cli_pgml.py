"""``pgml-flow pgml ...`` as a subprocess, checked through the client library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from pgml_models import PgmlClient

PGML_FLOW = str(Path(sys.executable).parent / "pgml-flow")


def cli(db_url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGML_FLOW, *args], capture_output=True, text=True, check=False,
                          env={**env, "DATABASE_URL": db_url, "COLUMNS": "200"}, timeout=300)


def test_train_predict_deploy_list_delete(db_url: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT * FROM pgml.load_dataset('iris')")
    trained = cli(db_url, cli_env, "pgml", "train", "Iris", "--task", "classification",
                  "--relation", "pgml.iris", "--y-column", "target", "--json")
    assert trained.returncode == 0, trained.stderr
    first = json.loads(trained.stdout)
    assert first["deployed"] is True and first["metrics"]["accuracy"] > 0.8
    second = cli(db_url, cli_env, "pgml", "train", "Iris", "--algorithm", "xgboost",
                 "--hyperparams", '{"n_estimators": 10}', "--no-deploy", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["deployed"] is False

    predicted = cli(db_url, cli_env, "pgml", "predict", "Iris", "6.3", "3.3", "6.0", "2.5")
    assert predicted.returncode == 0 and float(predicted.stdout) == 2.0
    proba = cli(db_url, cli_env, "pgml", "predict", "Iris", "--proba", "6.3", "3.3", "6.0", "2.5")
    assert len(json.loads(proba.stdout)) == 3

    deployed = cli(db_url, cli_env, "pgml", "deploy", "Iris", "--strategy", "most_recent")
    assert deployed.returncode == 0, deployed.stderr
    with psycopg.connect(db_url) as conn:
        client = PgmlClient(conn)
        current = client.deployed_model("Iris")
        assert current is not None and current.algorithm == "xgboost"
        assert [p.name for p in client.projects()] == ["Iris"]

    listed = json.loads(cli(db_url, cli_env, "pgml", "models", "--json").stdout)
    assert [m["algorithm"] for m in listed] == ["linear", "xgboost"]
    assert json.loads(cli(db_url, cli_env, "pgml", "projects", "--json").stdout)[0]["models"] == 2

    refused = cli(db_url, cli_env, "pgml", "delete", str(second_id := listed[1]["id"]))
    assert refused.returncode == 6 and "is deployed" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert cli(db_url, cli_env, "pgml", "delete", str(listed[0]["id"])).returncode == 0
    assert cli(db_url, cli_env, "pgml", "delete", "Iris").returncode == 0
    with psycopg.connect(db_url) as conn:
        assert PgmlClient(conn).models() == []
    assert second_id


def test_errors_exit_6_with_the_servers_message(db_url: str, cli_env: dict[str, str]) -> None:
    result = cli(db_url, cli_env, "pgml", "predict", "Nope", "1")
    assert result.returncode == 6
    assert "project 'Nope' does not exist" in result.stderr
    bad_json = cli(db_url, cli_env, "pgml", "train", "X", "--hyperparams", "{nope")
    assert bad_json.returncode == 2 and "JSON" in bad_json.stderr
