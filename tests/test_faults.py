"""Faults against real servers: restarts, a killed scheduler, timeouts, a full disk, bad models.

Everything that stops or restarts PostgreSQL runs on a scratch cluster of this module (the
session's shared cluster serves the rest of the suite and other test runs), created once,
seeded with two small clients and their ``rework`` models (linear: the quickest to train).
What each fault does and what an operator does about it: docs/operations.md, "Failures and
recovery".  Measured times are printed (``pytest -s``); nothing here asserts on speed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import pwd
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgml_flow.app import PgmlFlow
from pgml_flow.errors import DatabaseUnreachable
from pgml_flow.retraining import RetrainOptions
from scheduler.runner import run_once
from tests.scratch import own_cluster_settings

#: long checks: `./dev test -m slow` (kept out of the default run, docs/contributing.md)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
REFRESH_JOB = "refresh:public.mv_ml_training_summary"
#: the retrain's reconnection: 0.5 s, 1 s, 2 s, 4 s, 8 s (a restart under load takes seconds)
RECONNECT = RetrainOptions(force=True, attempts=6, backoff_seconds=0.5)


# -- the scratch cluster -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch() -> Iterator[PgmlFlow]:
    home, settings = own_cluster_settings("pgml-flow-faults-")
    flow = PgmlFlow(dataclasses.replace(settings, home=home / "cluster"))
    started = time.monotonic()
    try:
        flow.start_database()
        steps = [time.monotonic()]
        with psycopg.connect(flow.url, autocommit=True) as conn:
            # a production server's durability: the embedded cluster trades it for speed
            # (synchronous_commit off), and an immediate shutdown then loses the last commits
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
        flow.upgrade()
        steps.append(time.monotonic())
        flow.seed(clients=2, issues=600, seed=7, as_of=AS_OF)
        steps.append(time.monotonic())
        flow.train(["rework"])
        steps.append(time.monotonic())
        flow.grant_bi_access([1, 2])
        print(f"\nscratch cluster in {time.monotonic() - started:.1f} s: initdb and start "
              f"{steps[0] - started:.1f} s, migrate {steps[1] - steps[0]:.1f} s, seed "
              f"{steps[2] - steps[1]:.1f} s, train {steps[3] - steps[2]:.1f} s")
        yield flow
    finally:
        flow.stop_database()
        shutil.rmtree(home, ignore_errors=True)


def pg_ctl(flow: PgmlFlow, *args: str) -> float:
    """pg_ctl on the scratch cluster as the server's OS user; the seconds it took."""
    cluster = flow.cluster
    user = pwd.getpwnam(cluster.state().os_user)
    as_user: dict[str, Any] = ({"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
                               if os.geteuid() == 0 else {})
    started = time.monotonic()
    subprocess.run([str(cluster.installation.tool("pg_ctl")), "-D", str(cluster.data_dir),
                    *args], cwd=cluster.data_dir, capture_output=True, check=True, **as_user)
    return time.monotonic() - started


def restart(flow: PgmlFlow, mode: str) -> float:
    return pg_ctl(flow, "restart", "-w", "-t", "60", "-m", mode, "-l", str(flow.cluster.log_file))


def one(url: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row and len(row) == 1 else row


def deployed(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute(
            "SELECT p.name, d.model_id FROM pgml.projects p JOIN LATERAL (SELECT model_id"
            " FROM pgml.deployments WHERE project_id = p.id ORDER BY created_at DESC, id DESC"
            " LIMIT 1) d ON true").fetchall())


def counts(url: str) -> tuple[int, int, int, int]:
    """Models, file rows, snapshots and retraining events."""
    return one(url, "SELECT (SELECT count(*) FROM pgml.models), (SELECT count(*) FROM pgml.files),"
                    " (SELECT count(*) FROM pgml.snapshots),"
                    " (SELECT count(*) FROM ml_retraining_events)")


def wait_for(url: str, query: str, timeout: float = 60.0) -> None:
    """Until ``query`` (on pg_stat_activity, say) returns true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if one(url, query):
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout} s for: {query}")


TRAINING = ("SELECT count(*) > 0 FROM pg_stat_activity WHERE state = 'active'"
            " AND query LIKE '%pgml.train%' AND pid <> pg_backend_pid()")


def refreshing(waiting: bool) -> str:
    return ("SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE"
            " '%refresh_materialized_view%' AND pid <> pg_backend_pid()"
            + (" AND wait_event_type = 'Lock'" if waiting else ""))


class BiReader(threading.Thread):
    """A BI tool: client 1's login reads its rework view in a loop, reconnecting on error."""

    def __init__(self, url: str, role: str) -> None:
        super().__init__(daemon=True)
        self.url, self.role = url, role
        self.stop = threading.Event()
        self.reads: list[tuple[int, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
                        sql.Identifier(self.role)))
                    while not self.stop.is_set():
                        row = conn.execute("SELECT count(*), count(rework_probability)"
                                           " FROM analytics.pull_request_rework_risk").fetchone()
                        assert row is not None
                        self.reads.append((int(row[0]), int(row[1])))
                        time.sleep(0.02)
            except psycopg.Error as exc:
                self.errors.append(f"{type(exc).__name__}: {str(exc).strip()[:80]}")
                time.sleep(0.1)


def summary(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT * FROM mv_ml_training_summary ORDER BY 1, 2").fetchall()


# -- restarts ------------------------------------------------------------------------------------
def test_restart_during_retrain_refresh_and_bi_reads(scratch: PgmlFlow) -> None:
    """A fast and an immediate restart while a retrain trains, a refresh runs and a BI login
    reads: the champion stays unless the promotion committed, nothing half-written remains,
    the retrain reconnects with backoff and finishes, the open refresh slot runs next time."""
    url = scratch.url
    role = one(url, "SELECT role_name FROM client_bi_roles WHERE client_id = 1")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(role)))
        full = conn.execute("SELECT count(*) FROM analytics.pull_request_rework_risk").fetchone()[0]
    assert full > 0
    jobs = [j for j in scratch.scheduled_jobs() if j.name == REFRESH_JOB]
    for mode in ("fast", "immediate"):
        _restart_during_work(scratch, mode, role, full, jobs)


def _restart_during_work(scratch: PgmlFlow, mode: str, role: str, full: int,
                         jobs: list[Any]) -> None:
    url = scratch.url
    before, counted = deployed(url), counts(url)
    # new data the summary does not show yet: the refresh has work to do
    one(url, "UPDATE pull_requests SET merged_at = merged_at + interval '1 day'"
             " WHERE client_id = 2 AND merged_at = (SELECT max(merged_at) FROM"
             " pull_requests WHERE client_id = 2) RETURNING 1")
    stale = summary(url)
    reader = BiReader(url, role)
    reader.start()
    results: list[Any] = []
    retrain = threading.Thread(target=lambda: results.append(scratch.retrain(
        ["rework"], [1], now=AS_OF, options=RECONNECT)), daemon=True)
    # the refresh job is claimed, then waits for a lock that a reader of the view holds
    blocker = psycopg.connect(url)
    blocker.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_ml_training_summary")
    one(url, "SELECT pgml_flow.request_job(%s, now())", (REFRESH_JOB,))
    refresh_errors: list[BaseException] = []

    def refresh() -> None:
        try:
            run_once(scratch, jobs=jobs, now=dt.datetime.now(dt.UTC))
        except (DatabaseUnreachable, psycopg.OperationalError) as exc:
            refresh_errors.append(exc)

    refresher = threading.Thread(target=refresh, daemon=True)
    refresher.start()
    retrain.start()
    wait_for(url, f"SELECT count(*) > 0 FROM ml_job_runs WHERE job = '{REFRESH_JOB}'"
                  " AND status = 'running'")
    wait_for(url, refreshing(waiting=True))
    wait_for(url, TRAINING)
    seconds = restart(scratch, mode)
    refresher.join(60)
    retrain.join(120)
    time.sleep(0.3)
    reader.stop.set()
    reader.join(30)
    blocker.close()
    assert not retrain.is_alive() and not refresher.is_alive()

    # the retrain lost its connection, reconnected with backoff, and finished
    [[result]] = results
    assert result.status in ("promoted", "kept_champion"), result.detail
    after = deployed(url)
    expect = dict(before)
    if result.status == "promoted":
        expect["rework__client_1"] = result.model_id
    assert after == expect, f"{mode}: only a committed promotion changes a deployment"
    models, _, snapshots, events = counts(url)
    assert events == counted[3] + 1, "one event for the finished retrain, none half-written"
    # the killed attempt left no model, file or snapshot behind (the finished one did)
    orphans = one(url, "SELECT count(*) FROM pgml.models m WHERE NOT EXISTS (SELECT 1 FROM"
                       " pgml.files f WHERE f.model_id = m.id) OR NOT EXISTS (SELECT 1 FROM"
                       " pgml.snapshots s WHERE s.id = m.snapshot_id)")
    assert orphans == 0
    assert snapshots <= counted[2] + 1 and models <= counted[0] + 1

    # the refresh was lost with its connection: the view kept its old contents whole
    assert refresh_errors, "the refresh should have lost its connection"
    assert summary(url) == stale
    runs = scratch.job_runs(REFRESH_JOB)
    unfinished = [r for r in runs if r["status"] != "succeeded"]
    assert len(unfinished) == 1, (runs, refresh_errors)
    slot = unfinished[0]
    assert slot["status"] in ("running", "interrupted")
    [outcome] = run_once(scratch, jobs=jobs)  # the next run resumes the open slot
    assert (outcome.status, outcome.attempts) == ("succeeded", slot["attempts"] + 1)
    assert summary(url) != stale

    # BI reads: each one whole (every item predicted) or an error of the lost connection
    assert reader.reads and all(r == (full, full) for r in reader.reads), set(reader.reads)
    assert reader.errors and all(e.startswith(("OperationalError", "AdminShutdown",
                                               "CrashShutdown", "CannotConnectNow"))
                                 for e in reader.errors), reader.errors
    print(f"\n{mode} restart: {seconds:.1f} s; retrain {result.status} after reconnecting;"
          f" {len(reader.reads)} whole BI reads, {len(reader.errors)} lost connections")


# -- the scheduler service and the exporter through an outage, then a SIGKILL --------------------
def _scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _up(port: int) -> str:
    _, text = _scrape(port)
    return next(line for line in text.splitlines() if line.startswith("pgml_flow_database_up"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_scheduler_and_exporter_survive_an_outage_and_a_sigkill(
        scratch: PgmlFlow, cli_env: dict[str, str], tmp_path: Path) -> None:
    url = scratch.url
    port = _free_port()
    log = tmp_path / "scheduler.log"
    env = {**cli_env, "DATABASE_URL": url, "PGML_FLOW_JSON": "0"}
    argv = [sys.executable, "-m", "cli.app", "scheduler", "run", "--job", REFRESH_JOB,
            "--sweep-seconds", "5", "--metrics-port", str(port)]
    with log.open("w") as out:
        service = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_log(log, "metrics on http")
        wait_for_log(log, "scheduler started")
        assert _up(port) == "pgml_flow_database_up 1.0"

        # a requested slot is claimed and waits for the lock of a refresh that does not
        # commit; then the server goes away
        blocker = psycopg.connect(url)
        blocker.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_ml_training_summary")
        one(url, "SELECT pgml_flow.request_job(%s, now())", (REFRESH_JOB,))
        wait_for(url, refreshing(waiting=True))
        down = time.monotonic()
        pg_ctl(scratch, "stop", "-w", "-t", "60", "-m", "fast")
        blocker.close()
        wait_for_log(log, "retried in 2 s")  # 1 s, then 2 s: the backoff doubles
        status, _ = _scrape(port, "/health")
        ready, body = _scrape(port, "/health/ready")
        assert (_up(port), status, ready) == ("pgml_flow_database_up 0.0", 200, 503), body
        assert json.loads(body)["checks"]["database"]["ok"] is False
        assert service.poll() is None, "the service must survive the outage"
        scratch.start_database()
        outage = time.monotonic() - down
        # the next run (the backoff's) resumes the lost slot
        wait_for(url, f"SELECT count(*) = 0 FROM ml_job_runs WHERE job = '{REFRESH_JOB}'"
                      " AND status <> 'succeeded'")
        assert _up(port) == "pgml_flow_database_up 1.0"
        resumed = max(scratch.job_runs(REFRESH_JOB), key=lambda r: r["slot"])
        assert resumed["attempts"] == 2

        # SIGKILL mid-job: the claim stays "running", its advisory lock goes with the process
        blocker = psycopg.connect(url)
        blocker.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_ml_training_summary")
        one(url, "SELECT pgml_flow.request_job(%s, now())", (REFRESH_JOB,))
        wait_for(url, refreshing(waiting=True))
        service.send_signal(signal.SIGKILL)
        service.wait(30)
        blocker.close()  # the orphaned refresh finishes on its own (it is a statement)
        wait_for(url, "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory'")
        [killed] = [r for r in scratch.job_runs(REFRESH_JOB) if r["status"] == "running"]
        [outcome] = run_once(scratch, jobs=[j for j in scratch.scheduled_jobs()
                                            if j.name == REFRESH_JOB])
        assert (outcome.run_id, outcome.status, outcome.attempts) == (
            killed["id"], "succeeded", 2)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(30)
    text = log.read_text()
    warnings = [line for line in text.splitlines() if "WARNING" in line or "warning" in line]
    assert any("retried in 1 s" in line for line in warnings), text
    assert "Traceback" not in text, text
    print(f"\noutage of {outage:.1f} s: the service retried after 1, 2, 4 ... s and resumed "
          "the lost slot; /metrics said database_up 0 meanwhile; its warnings:\n"
          + "\n".join(line[:160] for line in warnings[:4]))


def wait_for_log(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log after {timeout} s:\n{log.read_text()}")


# -- a statement timeout and a full disk in the training query -----------------------------------
@pytest.fixture
def tiny_tablespace(scratch: PgmlFlow) -> Iterator[str]:
    """A tablespace on a 16 kB tmpfs: what a full disk looks like to PostgreSQL."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = scratch.settings.home.parent / "tiny"
    mount.mkdir()
    user = pwd.getpwnam(scratch.cluster.state().os_user)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o",
                           f"size=16k,mode=0700,uid={user.pw_uid},gid={user.pw_gid}",
                           "tmpfs", str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with psycopg.connect(scratch.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLESPACE faults_tiny LOCATION {}").format(
                sql.Literal(str(mount))))
        try:
            yield "faults_tiny"
        finally:
            with psycopg.connect(scratch.url, autocommit=True) as conn:
                conn.execute("DROP TABLESPACE faults_tiny")
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_statement_timeout_and_full_disk_in_training_fail_cleanly(
        scratch: PgmlFlow, tiny_tablespace: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each is the training's failure, recorded, not a lost connection to retry; the
    champion and its files stay; the next client goes on; the next retrain succeeds."""
    url = scratch.url
    champions = deployed(url)
    files = one(url, "SELECT md5(string_agg(md5(data), ',' ORDER BY model_id, path, part))"
                     " FROM pgml.files WHERE model_id = ANY(%s)", (list(champions.values()),))
    models = counts(url)[:3]

    # a full disk: the training view's sort spills (work_mem 64 kB) to temp files there
    monkeypatch.setenv("PGOPTIONS", f"-c temp_tablespaces={tiny_tablespace} -c work_mem=64kB")
    with caplog.at_level(logging.WARNING, "pgml_flow.retraining"):
        full = scratch.retrain(["rework"], [1, 2], now=AS_OF, options=RECONNECT)
    # a statement timeout: pgml.train waits for a lock on pgml.snapshots and runs out of time
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=2s")
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE pgml.snapshots IN SHARE MODE")
        timed_out = scratch.retrain(["rework"], [1], now=AS_OF, options=RECONNECT)
    monkeypatch.delenv("PGOPTIONS")

    assert [(r.client_id, r.status) for r in full + timed_out] == [
        (1, "failed"), (2, "failed"), (1, "failed")]
    assert all("No space left on device" in str(r.detail) for r in full), full
    assert "canceling statement due to statement timeout" in str(timed_out[0].detail)
    assert not any("retrying" in m for m in caplog.messages), "not a lost connection"
    events = scratch.events(model="rework", status="failed", limit=3)
    assert sorted(e["id"] for e in events) == sorted(int(r.event_id or 0)
                                                     for r in full + timed_out)
    assert all(e["error"] and not e["error"].startswith("spiexceptions") for e in events)
    assert deployed(url) == champions
    assert one(url, "SELECT md5(string_agg(md5(data), ',' ORDER BY model_id, path, part))"
                    " FROM pgml.files WHERE model_id = ANY(%s)",
               (list(champions.values()),)) == files
    assert counts(url)[:3] == models, "no model, file or snapshot of the failed trainings"

    [again] = scratch.retrain(["rework"], [2], now=AS_OF, options=RECONNECT)
    assert again.status in ("promoted", "kept_champion"), again.detail


# -- a corrupted model and one written by another library version -------------------------------
def _fix_crc(blob: bytes) -> bytes:
    body = blob[:-4]
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def test_a_bad_model_fails_alone_with_an_error_naming_it(scratch: PgmlFlow) -> None:
    url = scratch.url
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pgml_native'"
                            ).fetchone()[0]:
            pytest.skip("pgml_native is not installed")
        conn.execute("CREATE TABLE probe AS SELECT x::real AS x, 2 * x::real AS y"
                     " FROM generate_series(1, 60) x")
        for project in ("probe_flipped", "probe_future", "probe_ok"):
            conn.execute("SELECT * FROM pgml.train(%s, 'regression', 'probe', 'y', 'linear')",
                         (project,))
        ids = deployed(url)

        def native(project: str) -> bytes:
            return b"".join(bytes(r[0]) for r in conn.execute(
                "SELECT data FROM pgml.files WHERE model_id = %s AND path = 'native'"
                " ORDER BY part", (ids[project],)).fetchall())

        def replace_native(project: str, blob: bytes) -> None:
            conn.execute("DELETE FROM pgml.files WHERE model_id = %s AND path = 'native'",
                         (ids[project],))
            conn.execute("INSERT INTO pgml.files(model_id, path, part, data)"
                         " VALUES (%s, 'native', 0, %s)", (ids[project], blob))

        # a flipped bit (the checksum catches it) and a blob of a newer scorer format
        flipped = bytearray(native("probe_flipped"))
        flipped[len(flipped) // 2] ^= 0x10
        replace_native("probe_flipped", bytes(flipped))
        future = bytearray(native("probe_future"))
        future[8:12] = struct.pack("<I", 9)
        replace_native("probe_future", _fix_crc(bytes(future)))
        # client 2's rework model: a pickle written by another scikit-learn, served by Python
        model = ids["rework__client_2"]
        meta = json.loads(bytes(conn.execute(
            "SELECT data FROM pgml.files WHERE model_id = %s AND path = 'meta.json'",
            (model,)).fetchone()[0]))
        written = dict(meta["versions"], sklearn="1.0.2")
        conn.execute("UPDATE pgml.files SET data = %s WHERE model_id = %s AND path = 'meta.json'",
                     (json.dumps({**meta, "versions": written}).encode(), model))
        conn.execute("DELETE FROM pgml.files WHERE model_id = %s AND path = 'native'", (model,))

    fresh = psycopg.connect(url, autocommit=True)  # no model cached from before
    with fresh:
        def error(query: str, *args: Any) -> psycopg.Error:
            with pytest.raises(psycopg.Error) as caught:
                fresh.execute(query, args).fetchone()
            return caught.value

        bad = error("SELECT pgml.predict('probe_flipped', ARRAY[3]::real[])")
        assert isinstance(bad, psycopg.errors.DataCorrupted)
        assert f"model {ids['probe_flipped']} is not a valid pgml_native blob" in str(bad)
        bad = error("SELECT pgml.predict('probe_future', ARRAY[3]::real[])")
        assert (f"model {ids['probe_future']} is not a valid pgml_native blob: blob format "
                "version 9 is not supported") in str(bad)
        bad = error("SELECT pgml.predict_proba('rework__client_2', (SELECT features FROM"
                    " pgml_flow.rework_features LIMIT 1))")
        assert isinstance(bad, psycopg.errors.ObjectNotInPrerequisiteState)
        assert (f"model {model} of project 'rework__client_2': this linear model was saved"
                " with scikit-learn 1.0.2") in str(bad)
        assert bad.diag.message_hint and "retrain" in bad.diag.message_hint
        # the others keep serving, in the same session
        assert fresh.execute("SELECT round(pgml.predict('probe_ok', ARRAY[3]::real[]))"
                             ).fetchone() == (6,)

    # the BI surface: client 2's rework read names the model; client 1's reads go on
    roles = dict(one_rows(url, "SELECT client_id, role_name FROM client_bi_roles"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(roles[1])))
        rows, scored = conn.execute("SELECT count(*), count(rework_probability)"
                                    " FROM analytics.pull_request_rework_risk").fetchone()
        assert rows > 0 and scored == rows
        conn.execute("RESET SESSION AUTHORIZATION")
        conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(roles[2])))
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=f"model {model}"):
            conn.execute("SELECT count(*) FROM analytics.pull_request_rework_risk").fetchone()

    # the fix the error names: a retrain replaces the model
    [fixed] = scratch.retrain(["rework"], [2], now=AS_OF, options=RECONNECT)
    assert fixed.status == "promoted", fixed.detail
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(roles[2])))
        rows, scored = conn.execute("SELECT count(*), count(rework_probability)"
                                    " FROM analytics.pull_request_rework_risk").fetchone()
        assert rows > 0 and scored == rows


def one_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()
