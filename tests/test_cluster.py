"""The embedded cluster: start/stop/status and the errors users meet."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.cluster import Cluster, ClusterState
from pgml_flow.errors import ClusterError, DatabaseUnreachable, PostgresNotFound
from pgml_flow.settings import LIBPQ_TARGET_VARS, Settings

PGML_FLOW = [str(Path(sys.executable).parent / "pgml-flow")]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PGML_FLOW, *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_embedded_server_runs_plpython_with_the_server_venv(base_flow: PgmlFlow) -> None:
    info = base_flow.database_info()
    assert info.embedded and info.status and info.status.running
    assert info.server_venv, "pgml.venv must be set on the embedded cluster"
    with base_flow.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
        conn.execute(
            """CREATE OR REPLACE FUNCTION pg_temp.venv_probe() RETURNS text
LANGUAGE plpython3u AS $$
import site, sys
venv = plpy.execute("SELECT current_setting('pgml.venv') AS v")[0]["v"]
site.addsitedir(f"{venv}/lib/python3.11/site-packages")
import sklearn, xgboost, lightgbm, orjson, pgml_flow.engine  # orjson: engine.native
return f"{sys.version_info[0]}.{sys.version_info[1]} sklearn {sklearn.__version__}"
$$"""
        )
        probe = conn.execute("SELECT pg_temp.venv_probe()").fetchone()
    assert probe and probe[0].startswith("3.11 sklearn ")


def test_server_runs_as_unprivileged_user(base_flow: PgmlFlow) -> None:
    state = base_flow.cluster.state()
    if os.geteuid() == 0:
        assert state.os_user != "root"
    data_owner = base_flow.cluster.data_dir.stat().st_uid
    assert data_owner != 0 or os.geteuid() != 0


def test_cli_status_and_url(base_flow: PgmlFlow, cli_env: dict[str, str]) -> None:
    url = run_cli("db", "url", env=cli_env)
    assert url.returncode == 0, url.stderr
    with psycopg.connect(url.stdout.strip()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    status = run_cli("db", "status", "--json", env=cli_env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["running"] is True and data["embedded"] is True
    assert data["pid"] == base_flow.cluster.status().pid


def test_start_is_idempotent(base_flow: PgmlFlow) -> None:
    pid = base_flow.cluster.status().pid
    again = base_flow.start_database()
    assert again.running and again.pid == pid


@pytest.fixture
def scratch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # under /tmp so that the unprivileged server user can traverse the parents
    home = Path(tmp_path_factory.mktemp("home", numbered=True))
    home.chmod(0o755)
    for parent in home.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o055)
    return home


def test_port_in_use_is_a_clear_error(scratch_home: Path, base_flow: PgmlFlow) -> None:
    settings = dataclasses.replace(base_flow.settings, home=scratch_home / "c")
    cluster = Cluster(settings)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        cluster_settings = dataclasses.replace(settings, port=port)
        with pytest.raises(ClusterError, match=rf"port {port} .* in use .*PGML_FLOW_PORT"):
            Cluster(cluster_settings).start()
    assert not cluster.status().running
    shutil.rmtree(settings.home, ignore_errors=True)


def test_data_dir_owned_by_someone_else(scratch_home: Path, base_flow: PgmlFlow) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    home = scratch_home / "foreign"
    (home / "data").mkdir(parents=True)
    (home / "data" / "PG_VERSION").write_text("15\n")
    state = ClusterState(port=54999, os_user=base_flow.cluster.state().os_user,
                         superuser="pgmlflow", major=15)
    (home / "cluster.json").write_text(json.dumps(dataclasses.asdict(state)))
    os.chown(home / "data", 65534, 65534)  # nobody
    settings = dataclasses.replace(base_flow.settings, home=home)
    with pytest.raises(ClusterError, match=r"belongs to nobody.*chown -R"):
        Cluster(settings).start()


def test_missing_postgres_binaries(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path, pg_bin=tmp_path / "none")
    with pytest.raises(PostgresNotFound, match="PGML_FLOW_PG_BIN"):
        Cluster(settings).start()


def test_unreachable_database_url() -> None:
    settings = dataclasses.replace(
        Settings.from_env(), database_url="postgresql://nobody@127.0.0.1:1/nothing"
    )
    expected = r"cannot connect to nobody@127\.0\.0\.1:1/nothing"
    with pytest.raises(DatabaseUnreachable, match=expected):
        PgmlFlow(settings).connect()


@pytest.mark.parametrize(
    ("env_update", "args", "code", "message"),
    [
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing"}, ["summary"], 4,
         "cannot connect"),
        ({"PGML_FLOW_PG_BIN": "/nonexistent", "PGML_FLOW_HOME": "/tmp/pgml-flow-nothing"},
         ["db", "start"], 3, "no PostgreSQL server binaries"),
        ({"PGML_FLOW_PORT": "http"}, ["db", "status"], 2, "PGML_FLOW_PORT='http'"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(
    cli_env: dict[str, str], env_update: dict[str, str], args: list[str], code: int, message: str
) -> None:
    result = run_cli(*args, env={**cli_env, **env_update})
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    debug = run_cli("--debug", *args, env={**cli_env, **env_update})
    assert "Traceback" in debug.stderr


def test_outdated_schema_tells_to_upgrade(empty_db_url: str, cli_env: dict[str, str]) -> None:
    result = run_cli("summary", env={**cli_env, "DATABASE_URL": empty_db_url})
    assert result.returncode == 5
    assert "pgml-flow db upgrade" in result.stderr


_HOLD_PORT = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
time.sleep(600)
"""


def test_busy_recorded_port_moves_unless_the_user_chose_it(
    scratch_home: Path, base_flow: PgmlFlow, cli_env: dict[str, str]
) -> None:
    if base_flow.settings.external:
        pytest.skip("the embedded cluster is not in use")
    settings = dataclasses.replace(base_flow.settings, home=scratch_home / "moving", port=None)
    cluster = Cluster(settings)
    env = {key: value for key, value in cli_env.items()
           if key not in ("DATABASE_URL", "PGML_FLOW_PORT", *LIBPQ_TARGET_VARS)}
    env["PGML_FLOW_HOME"] = str(settings.home)
    try:
        cluster.start()
        recorded = cluster.state().port
        cluster.stop()
        # another process takes the port recorded at initdb while the server is down
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_PORT, str(recorded)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "listening\n"
            started = run_cli("db", "start", env=env)
            assert started.returncode == 0, started.stderr
            moved = json.loads(cluster.state_file.read_text())["port"]
            assert moved != recorded
            assert f"port {moved}" in started.stdout
            assert f"port {recorded} on 127.0.0.1 is in use" in started.stderr
            with psycopg.connect(cluster.url()) as conn:
                assert conn.execute("SHOW port").fetchone() == (str(moved),)
            assert run_cli("db", "stop", env=env).returncode == 0
            # a port the user chose is kept: the clear error, and nothing starts
            chosen = run_cli("db", "start", env={**env, "PGML_FLOW_PORT": str(recorded)})
            assert chosen.returncode == 3, chosen.stderr
            assert f"port {recorded} on 127.0.0.1 (PGML_FLOW_PORT) is in use" in chosen.stderr
            assert "Traceback" not in chosen.stderr
            assert not cluster.status().running
        finally:
            holder.kill()
            holder.wait()
    finally:
        cluster.stop()
        shutil.rmtree(settings.home, ignore_errors=True)
