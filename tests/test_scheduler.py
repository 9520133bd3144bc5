"""The scheduler: slots from a controllable clock, exactly once across processes, crash
recovery, and the same jobs in pg_cron on the real server."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.retraining import RetrainOptions
from pgml_models.specs import builtin_specs
from scheduler.jobs import Job, jobs, latest_slot, trigger
from scheduler.runner import run_once
from tests.test_retraining import deployed, pretend_new_rows, scalar

CLI = [sys.executable, "-m", "cli.app"]
ROOT = Path(__file__).resolve().parent.parent
TRAJECTORY_MODELS = ("SELECT count(*) FROM pgml.models m JOIN pgml.projects p "
                     "ON p.id = m.project_id WHERE p.name LIKE 'trajectory%%'")
SUNDAY = dt.datetime(2026, 6, 7, 2, 30, tzinfo=dt.UTC)  # trajectory's slot was 02:00


def cli(flow: PgmlFlow, *args: str, cli_env: dict[str, str]) -> subprocess.Popen[str]:
    env = {**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "200"}
    return subprocess.Popen([*CLI, *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def runs(flow: PgmlFlow) -> dict[str, tuple[str, str, int]]:
    return {r["job"]: (f"{r['slot']:%a %H:%M}", r["status"], r["attempts"])
            for r in flow.job_runs()}


# -- slots (no database) -------------------------------------------------------------------------
def test_slots_follow_cron_with_sunday_as_zero() -> None:
    found = {j.name: j for j in jobs(builtin_specs(), environ={})}
    assert {n: j.schedule for n, j in found.items()} == {
        "retrain:trajectory": "0 2 * * 0", "retrain:complexity": "0 3 * * 3",
        "retrain:rework": "0 4 * * 6", "refresh:public.mv_ml_training_summary": "0 * * * *",
        "prune:public.ml_prediction_log": "15 * * * *", "drift:check": "30 * * * *"}
    now = dt.datetime(2026, 6, 10, 12, 30, tzinfo=dt.UTC)  # a Wednesday
    latest = {n: f"{latest_slot(j, now, dt.UTC):%a %d %H:%M}" for n, j in found.items()}
    assert latest == {"retrain:trajectory": "Sun 07 02:00", "retrain:complexity": "Wed 10 03:00",
                      "retrain:rework": "Sat 06 04:00",
                      "refresh:public.mv_ml_training_summary": "Wed 10 12:00",
                      "prune:public.ml_prediction_log": "Wed 10 12:15",
                      "drift:check": "Wed 10 12:30"}
    paris = Job("x", "retrain", "x", "0 2 * * 1-5")
    from zoneinfo import ZoneInfo
    slot = latest_slot(paris, now, ZoneInfo("Europe/Paris"))
    assert slot is not None and f"{slot:%a %H:%M}" == "Wed 00:00"  # 02:00 CEST in UTC
    assert trigger("*/15 * * * 7", dt.UTC) is not None


# -- run_once with a controllable clock ----------------------------------------------------------
def test_run_once_runs_each_due_slot_once(tflow: PgmlFlow) -> None:
    chosen = [j for j in tflow.scheduled_jobs() if j.target in ("complexity", "trajectory")
              or j.kind == "refresh"]
    first = run_once(tflow, now=SUNDAY, jobs=chosen)
    assert [(o.job, f"{o.slot:%a %H:%M}", o.status) for o in first] == [
        ("retrain:trajectory", "Sun 02:00", "succeeded"),
        ("retrain:complexity", "Wed 03:00", "succeeded"),
        ("refresh:public.mv_ml_training_summary", "Sun 02:00", "succeeded")]
    again = run_once(tflow, now=SUNDAY + dt.timedelta(minutes=20), jobs=chosen)
    assert {o.status for o in again} == {"skipped"}
    assert {o.detail for o in again} == {"already ran"}
    later = run_once(tflow, now=SUNDAY + dt.timedelta(hours=1), jobs=chosen)
    assert [(o.job, f"{o.slot:%H:%M}", o.status) for o in later if o.status != "skipped"] == [
        ("refresh:public.mv_ml_training_summary", "03:00", "succeeded")]
    # every retrain check left one event per client, linked to its job run
    linked = scalar(tflow, "SELECT count(*) FROM ml_retraining_events WHERE job_run_id IS NOT NULL")
    assert linked == 4
    # down for two weeks: only the most recent trajectory slot runs (missed ones coalesced)
    late = run_once(tflow, now=SUNDAY + dt.timedelta(days=14, hours=1), jobs=chosen[:1])
    assert [(f"{o.slot:%d %H:%M}", o.status) for o in late] == [("21 02:00", "succeeded")]


def test_two_schedulers_started_together_run_each_job_once(
        tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    pretend_new_rows(tflow, "rework", 100)  # the rework check retrains both clients
    now = "2026-06-06T04:10:00+00:00"
    procs = [cli(tflow, "scheduler", "run", "--once", "--now", now, "--json",
                 "--job", "retrain:rework", "--job", "refresh:public.mv_ml_training_summary",
                 "--replica-id", f"replica-{i}", cli_env=cli_env) for i in (1, 2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append({o["job"]: o["status"] for o in json.loads(out)})
    for job in outputs[0]:
        statuses = sorted(o[job] for o in outputs)
        assert statuses == ["skipped", "succeeded"], (job, outputs)
    assert {job: status for job, (_, status, _) in runs(tflow).items()} == {
        job: "succeeded" for job in outputs[0]}
    assert {attempts for _, _, attempts in runs(tflow).values()} == {1}
    events = scalar(tflow, "SELECT count(*) FROM ml_retraining_events "
                           "WHERE model_name = 'rework' AND job_run_id IS NOT NULL")
    assert events == 2  # one per client, not one per replica


def test_sigkill_mid_retrain_keeps_champion_and_next_run_finishes(
        tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    pretend_new_rows(tflow, "trajectory", 100)
    champions = {c: deployed(tflow, f"trajectory__client_{c}") for c in (1, 2)}
    models_before = scalar(tflow, TRAJECTORY_MODELS)
    events_before = scalar(tflow, "SELECT count(*) FROM ml_retraining_events")
    proc = cli(tflow, "scheduler", "run", "--once", "--now", SUNDAY.isoformat(),
               "--job", "retrain:trajectory", cli_env=cli_env)
    dbname = psycopg.conninfo.conninfo_to_dict(tflow.url)["dbname"]
    deadline = time.monotonic() + 60
    with psycopg.connect(tflow.url, autocommit=True) as watch:
        while time.monotonic() < deadline:  # wait until pgml.train runs for client 1
            busy = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                "AND query LIKE '%%pgml.train%%' AND pid <> pg_backend_pid()", (dbname,)
            ).fetchone()
            if busy and busy[0]:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            pytest.fail("the retrain never started")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the orphaned backend finishes pgml.train, cannot commit, and rolls back
    time.sleep(0.5)
    assert {c: deployed(tflow, f"trajectory__client_{c}") for c in (1, 2)} == champions
    assert scalar(tflow, "SELECT count(*) FROM ml_retraining_events") == events_before
    assert scalar(tflow, "SELECT count(*) FROM ml_retraining_events WHERE status = 'running'") == 0
    assert runs(tflow)["retrain:trajectory"] == ("Sun 02:00", "running", 1)
    # the next run (any replica) sees the claim without its lock, and finishes the job
    trajectory = [j for j in tflow.scheduled_jobs() if j.name == "retrain:trajectory"]
    [retrain] = run_once(tflow, now=SUNDAY + dt.timedelta(minutes=5), jobs=trajectory)
    assert (retrain.status, retrain.attempts) == ("succeeded", 2)
    events = tflow.events(model="trajectory", limit=10)
    done = [e for e in events if e["job_run_id"] == retrain.run_id]
    assert sorted(e["client_id"] for e in done) == [1, 2]
    assert {e["status"] for e in done} <= {"promoted", "kept_champion"}
    assert scalar(tflow, TRAJECTORY_MODELS) == models_before + len(done)


def test_sigterm_finishes_the_client_in_hand(tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    pretend_new_rows(tflow, "trajectory", 100)
    proc = cli(tflow, "scheduler", "run", "--once", "--now", SUNDAY.isoformat(),
               "--job", "retrain:trajectory", cli_env=cli_env)
    dbname = psycopg.conninfo.conninfo_to_dict(tflow.url)["dbname"]
    with psycopg.connect(tflow.url, autocommit=True) as watch:
        for _ in range(1200):
            busy = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                "AND query LIKE '%%pgml.train%%' AND pid <> pg_backend_pid()", (dbname,)
            ).fetchone()
            if busy and busy[0]:
                break
            time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 8, err
    assert "Stopped by SIGTERM" in err
    _, status, _ = runs(tflow)["retrain:trajectory"]
    assert status == "interrupted"
    finished = [e for e in tflow.events(model="trajectory") if e["job_run_id"] is not None]
    assert [e["client_id"] for e in finished] == [1]  # client 1 was finished, not abandoned
    trajectory = [j for j in tflow.scheduled_jobs() if j.name == "retrain:trajectory"]
    [outcome] = run_once(tflow, now=SUNDAY, jobs=trajectory)
    assert outcome.status == "succeeded"
    finished = [e for e in tflow.events(model="trajectory") if e["job_run_id"] is not None]
    assert sorted(e["client_id"] for e in finished) == [1, 2]


def test_cli_errors_are_one_line_with_exit_codes(tflow: PgmlFlow,
                                                 cli_env: dict[str, str]) -> None:
    proc = cli(tflow, "retrain", "--check", "--client", "99", cli_env=cli_env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "client(s) 99 do not exist" in err
    assert "Traceback" not in err
    proc = cli(tflow, "scheduler", "run", "--once", "--timezone", "Mars/Olympus",
               cli_env=cli_env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "unknown time zone" in err


# -- in the database: pgml_flow.run_job and pg_cron ---------------------------------------------
def every_minute_rework(tmp_path: Path) -> Path:
    """The built-in rework spec, due every minute (a file like an operator's --specs).

    The seeded data ends at AS_OF, months before the wall clock the server-side runs use:
    the freshness limit is raised so that the data does not count as stale.
    """
    spec = tmp_path / "rework.toml"
    body = (ROOT / "pgml_models/specs/builtin.toml").read_text().split("[models.rework]")[1]
    body = body.replace('"0 4 * * 6"', '"* * * * *"')
    spec.write_text("[models.rework]" + body.replace("data_freshness_days = 21",
                                                     "data_freshness_days = 100000"))
    return spec


def events_of(flow: PgmlFlow, run_id: int) -> list[str]:
    with flow.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT status FROM ml_retraining_events WHERE job_run_id = %s ORDER BY client_id",
            (run_id,)).fetchall()]


def test_run_job_retrains_inside_the_server(tflow: PgmlFlow, tmp_path: Path) -> None:
    from pgml_flow import training
    from pgml_models.specs import load_file

    spec = load_file(every_minute_rework(tmp_path))["rework"]
    with tflow.connect() as conn:
        training.register(conn, spec)
        conn.commit()
    pretend_new_rows(tflow, "rework", 500)
    before = {p: deployed(tflow, p) for p in ("rework__client_1", "rework__client_2")}
    with tflow.connect(autocommit=True) as conn:
        out = conn.execute("SELECT pgml_flow.run_job('retrain:rework')").fetchone()[0]
        again = conn.execute("SELECT pgml_flow.run_job('retrain:rework')").fetchone()[0]
        with pytest.raises(psycopg.errors.RaiseException, match="registered retrain jobs: "
                           "retrain:complexity, retrain:rework, retrain:trajectory"):
            conn.execute("SELECT pgml_flow.run_job('retrain:nope')")
    assert "retrain:rework" in out and "succeeded" in out, out
    [run, *older] = tflow.job_runs("retrain:rework")
    assert run["claimed_by"].startswith("pg_cron:") and run["status"] == "succeeded"
    # one run per client, committed by the server-side run; champion kept or replaced
    assert sorted(events_of(tflow, run["id"] if not older else older[-1]["id"])) in (
        ["kept_champion", "kept_champion"], ["kept_champion", "promoted"],
        ["promoted", "promoted"])
    # the same slot again does nothing; a new minute's slot finds no new rows
    assert "already ran" in again or "2 skipped" in again, again
    after = {p: deployed(tflow, p) for p in before}
    assert all(after[p] is not None for p in after)


def test_pg_cron_jobs_install_run_and_remove(tflow: PgmlFlow, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with tflow.connect() as conn:
        if not conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]:
            pytest.skip("this server does not preload pg_cron")
    spec = every_minute_rework(tmp_path)
    monkeypatch.setenv("PGML_FLOW_SUMMARY_REFRESH", "* * * * *")
    monkeypatch.setenv("PGML_FLOW_LOG_PRUNE_SCHEDULE", "* * * * *")
    pretend_new_rows(tflow, "rework", 500)
    retrain = ("SELECT pgml_flow.run_job('retrain:rework', margin => 0.01, "
               "webhook_url => NULL, keep_challengers => 3)")
    refresh = "SELECT pgml_flow.refresh_materialized_view('public.mv_ml_training_summary')"
    prune = "CALL pgml_flow.prune_prediction_log()"
    with tflow.connect() as conn:  # a day of logged rows past the 30 days kept by default
        conn.execute("INSERT INTO ml_prediction_log (client_id, model_name, created_at) "
                     "SELECT 1, 'rework', now() - interval '31 days' FROM generate_series(1, 24)")
        conn.commit()
    try:
        installed = tflow.cron_install([str(spec)], options=RetrainOptions(margin=0.01))
        schedules = {r["command"]: r["schedule"] for r in installed}
        # one pg_cron job per scheduled job (retrains, refresh, prune, drift check)
        assert len(installed) == len(tflow.scheduled_jobs([str(spec)])) == 6
        assert all(r["jobname"].startswith("pgml-flow:test_") and len(r["jobname"]) <= 63
                   for r in installed)
        assert schedules[retrain] == "* * * * *"
        dbname = psycopg.conninfo.conninfo_to_dict(tflow.url)["dbname"]
        assert {r["database"] for r in installed} == {dbname}
        # pg_cron 1.4 runs jobs at minute boundaries, from the first one after it reloads
        deadline = time.monotonic() + 150
        history: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            history = [h for h in tflow.cron_history() if h["status"] in ("succeeded", "failed")]
            if {h["command"] for h in history} >= {retrain, refresh, prune}:
                print(f"pg_cron ran the jobs after {150 - deadline + time.monotonic():.0f} s")
                break
            time.sleep(1)
        assert history and {h["status"] for h in history} == {"succeeded"}, history
        assert any("retrain:rework" in (h["return_message"] or "") or h["command"] == retrain
                   for h in history)
    finally:
        tflow.cron_remove()
    assert tflow.cron_jobs() == []
    # the prune ran as pg_cron runs it (CALL, committing its batches)
    assert scalar(tflow, "SELECT count(*) FROM ml_prediction_log") == 0
    # the retrain ran inside the server: claimed by pg_cron's backend, one event per client
    runs_ = [r for r in tflow.job_runs("retrain:rework") if r["status"] == "succeeded"]
    assert runs_ and all(r["claimed_by"].startswith("pg_cron:") for r in runs_)
    first = runs_[-1]
    assert len(events_of(tflow, first["id"])) == 2
    assert set(events_of(tflow, first["id"])) <= {"promoted", "kept_champion"}


def test_service_runs_due_jobs_and_stops_on_sigterm(tflow: PgmlFlow,
                                                    cli_env: dict[str, str]) -> None:
    proc = cli(tflow, "scheduler", "run", "--sweep-seconds", "5", cli_env=cli_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(tflow.job_runs()) < len(tflow.scheduled_jobs()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # at start the service ran each job's latest slot (real time: the seeded data is stale)
    assert {r["job"]: r["status"] for r in tflow.job_runs()} == {
        j.name: "succeeded" for j in tflow.scheduled_jobs()}
    assert {e["status"] for e in tflow.events() if e["job_run_id"]} == {"skipped"}


def test_lost_connection_is_retried(tflow: PgmlFlow) -> None:
    from pgml_flow.retraining import RetrainOptions

    dbname = psycopg.conninfo.conninfo_to_dict(tflow.url)["dbname"]
    killed: list[int] = []

    def kill_first_train() -> None:
        with psycopg.connect(tflow.url, autocommit=True) as watch:
            for _ in range(600):
                row = watch.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND state = 'active' AND query LIKE '%%pgml.train%%' "
                    "AND pid <> pg_backend_pid()", (dbname,)).fetchone()
                if row and row[0]:
                    killed.append(1)
                    return
                time.sleep(0.02)

    import threading
    before = scalar(tflow, "SELECT count(*) FROM ml_retraining_events")
    killer = threading.Thread(target=kill_first_train)
    killer.start()
    [result] = tflow.retrain(["complexity"], [1], now=dt.datetime(2026, 6, 3, tzinfo=dt.UTC),
                             options=RetrainOptions(force=True, backoff_seconds=0.1))
    killer.join()
    assert killed == [1]
    assert result.status in ("promoted", "kept_champion"), result.detail
    assert scalar(tflow, "SELECT count(*) FROM ml_retraining_events") == before + 1
    [event] = tflow.events(model="complexity", client_id=1, limit=1)
    assert (event["id"], event["status"]) == (result.event_id, result.status)
