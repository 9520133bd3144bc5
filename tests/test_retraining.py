"""Scheduled retraining: the decision, champion against challenger, events, the CLI.

A module fixture seeds two clients and trains the three built-in models once, into a
database used as a template; each test gets its own copy of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from cli.app import app
from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ClientNotFound, ConfigurationError
from pgml_flow.retraining import RetrainOptions
from pgml_models.retraining import Facts, decide
from pgml_models.specs import builtin_specs
from tests.conftest import AS_OF

SOON = AS_OF + dt.timedelta(days=3)
BAD_COMPLEXITY = """
[models.complexity]
task = "regression"
training_view = "pgml_flow.complexity_training"
feature_view = "pgml_flow.complexity_features"
target = "story_points"
features = ["type_bug", "title_length"]
algorithm = "xgboost"
hyperparams = { n_estimators = 1, max_depth = 1, learning_rate = 0.01 }
min_training_rows = 100
[models.complexity.retraining]
schedule = "0 3 * * 3"
min_new_records = 200
performance_threshold = 0.75
data_freshness_days = 14
"""


def deployed(flow: PgmlFlow, project: str) -> int | None:
    with flow.pgml() as pgml:
        model = pgml.deployed_model(project)
    return model.id if model else None


def scalar(flow: PgmlFlow, query: str, *params: Any) -> Any:
    with flow.connect() as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def pretend_new_rows(flow: PgmlFlow, model: str, rows: int) -> None:
    """Make the deployed models look trained on ``rows`` fewer rows than there are now."""
    with flow.connect() as conn:
        conn.execute("UPDATE ml_model_baselines SET training_rows = training_rows - %s "
                     "WHERE model_name = %s", (rows, model))
        conn.commit()


# -- the decision (no database) ----------------------------------------------------------------
def facts(**changes: Any) -> Facts:
    base: dict[str, Any] = dict(
        client_id=1, client="Acme", model_name="complexity", project="complexity__client_1",
        ml_enabled=True, rows=1000, deployed_model_id=5, key_metric="r2", key_metric_value=0.9,
        rows_at_training=1000, newest_data=AS_OF)
    return Facts(**{**base, **changes})


def test_decide_rules() -> None:
    spec = builtin_specs()["complexity"]  # min 100 rows, 200 new, r2 0.75, 14 days
    now = AS_OF + dt.timedelta(days=2)
    cases = {
        "quiet": (facts(), False, "0 new rows"),
        "new rows": (facts(rows=1250), True, "250 new rows since model 5"),
        "metric": (facts(key_metric_value=0.5), True, "r2 0.500 below performance_threshold"),
        "metric, same data as the last attempt": (
            facts(key_metric_value=0.5, rows_at_last_attempt=1000), False,
            "the last retrain already tried these 1000 rows"),
        "metric, data changed since the last attempt": (
            facts(key_metric_value=0.5, rows=1010, rows_at_last_attempt=1000), True,
            "r2 0.500 below performance_threshold"),
        "no model": (facts(deployed_model_id=None), True, "no deployed model"),
        "stale": (facts(rows=5000, newest_data=AS_OF - dt.timedelta(days=30)), False,
                  "data is stale: newest row 32 days old"),
        "too few": (facts(rows=20), False, "only 20 training rows"),
        "off": (facts(ml_enabled=False), False, "ML is switched off"),
        "drift": (facts(logged_predictions=400, anomalies=80), True, "drift: 20% of 400"),
        "no drift": (facts(logged_predictions=400, anomalies=4), False, "1% of 400"),
    }
    for name, (case, retrain, words) in cases.items():
        decision = decide(spec, case, now)
        assert (decision.retrain, name) == (retrain, name), decision.reason
        assert words in decision.reason, (name, decision.reason)
    forced = decide(spec, facts(), now, force=True)
    assert forced.retrain and forced.forced and forced.reason.startswith("forced")


# -- decisions and runs on a trained database ------------------------------------------------------
def test_check_reports_why(tflow: PgmlFlow) -> None:
    before = {d.facts.project: d for d in tflow.retrain_decisions(["complexity"], now=SOON)}
    assert all(d.facts.rows_since == 0 for d in before.values())
    assert all(d.facts.deployed_model_id is not None for d in before.values())
    pretend_new_rows(tflow, "complexity", 250)
    after = tflow.retrain_decisions(["complexity"], now=SOON)
    assert all(d.retrain and "250 new rows since model" in d.reason for d in after)
    stale = tflow.retrain_decisions(["complexity"], now=AS_OF + dt.timedelta(days=40))
    assert all(not d.retrain and "data is stale" in d.reason for d in stale)
    # nothing is written by a check
    assert scalar(tflow, "SELECT count(*) FROM ml_retraining_events WHERE reason <> 'manual'") == 0


def test_worse_challenger_is_not_promoted(tflow: PgmlFlow, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_COMPLEXITY)
    champion = deployed(tflow, "complexity__client_1")
    [result] = tflow.retrain(["complexity"], [1], now=SOON, spec_files=[str(bad)],
                             options=RetrainOptions(force=True))
    assert result.status == "kept_champion", result.detail
    assert deployed(tflow, "complexity__client_1") == champion
    [event] = tflow.events(model="complexity", client_id=1, limit=1)
    assert event["champion_model_id"] == champion
    assert event["challenger_model_id"] == result.model_id != champion
    before, after = event["metrics_before"]["r2"], event["metrics_after"]["r2"]
    assert after < before
    assert event["metrics_before"]["holdout_rows"] == event["metrics_after"]["holdout_rows"] > 100
    assert f"does not beat model {champion}" in event["detail"]
    assert event["reason"].startswith("manual: forced")


def test_better_challenger_is_promoted_and_rollback(tflow: PgmlFlow, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_COMPLEXITY)
    good = deployed(tflow, "complexity__client_2")
    # a weak model deployed on purpose (a negative margin promotes anything) ...
    [weak] = tflow.retrain(["complexity"], [2], now=SOON, spec_files=[str(bad)],
                           options=RetrainOptions(force=True, margin=-1.0))
    assert weak.status == "promoted" and deployed(tflow, "complexity__client_2") == weak.model_id
    # ... is replaced by the real spec's challenger, which beats it on the same rows
    [strong] = tflow.retrain(["complexity"], [2], now=SOON,
                             options=RetrainOptions(force=True, margin=0.05))
    assert strong.status == "promoted", strong.detail
    assert deployed(tflow, "complexity__client_2") == strong.model_id
    # rollback redeploys the previous model and says so
    back = tflow.deploy("complexity", 2, rollback=True)
    assert back.status == "rolled_back"
    assert deployed(tflow, "complexity__client_2") == weak.model_id
    again = tflow.deploy("complexity", 2, good)
    assert again.status == "deployed" and deployed(tflow, "complexity__client_2") == good
    statuses = [e["status"] for e in tflow.events(model="complexity", client_id=2, limit=4)]
    assert statuses == ["deployed", "rolled_back", "promoted", "promoted"]


def project_models(flow: PgmlFlow, project: str) -> dict[int, bool]:
    """Model id -> was it ever deployed, for one project."""
    with flow.connect() as conn:
        return {int(r[0]): bool(r[1]) for r in conn.execute(
            "SELECT m.id, EXISTS (SELECT 1 FROM pgml.deployments d WHERE d.model_id = m.id) "
            "FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id "
            "WHERE p.name = %s", (project,)).fetchall()}


def test_dry_run_plans_each_due_run_and_writes_nothing(tflow: PgmlFlow) -> None:
    pretend_new_rows(tflow, "complexity", 250)
    models = project_models(tflow, "complexity__client_1")
    plans = tflow.retrain_plans(["complexity"], now=SOON,
                                options=RetrainOptions(margin=0.02, keep_challengers=0))
    assert [p.project for p in plans] == ["complexity__client_1", "complexity__client_2"]
    plan = plans[0]
    champion = deployed(tflow, "complexity__client_1")
    assert "250 new rows since model" in plan.reason
    assert plan.train.startswith("pgml.train xgboost regression on "
                                 "pgml_flow_training.complexity__client_1")
    assert plan.holdout_rows > 100 and plan.training_rows > 3 * plan.holdout_rows - 4
    assert f"beats model {champion}'s" in plan.promotion and "more than 0.02" in plan.promotion
    assert plan.prune == [m for m, ever in models.items() if not ever]
    assert project_models(tflow, "complexity__client_1") == models
    assert scalar(tflow, "SELECT count(*) FROM ml_retraining_events WHERE reason <> 'manual'") == 0


def test_retrain_prunes_unpromoted_challengers(tflow: PgmlFlow, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_COMPLEXITY)
    champion = deployed(tflow, "complexity__client_1")
    challengers = []
    for _ in range(3):  # worse challengers: never promoted, never deployed
        [result] = tflow.retrain(["complexity"], [1], now=SOON, spec_files=[str(bad)],
                                 options=RetrainOptions(force=True, keep_challengers=1))
        assert result.status == "kept_champion"
        challengers.append(result.model_id)
    models = project_models(tflow, "complexity__client_1")
    # the newest challenger stays, the older two are gone; the champion is untouched
    assert challengers[-1] in models and not set(challengers[:2]) & set(models)
    assert models[champion] and deployed(tflow, "complexity__client_1") == champion
    [event] = tflow.events(model="complexity", client_id=1, limit=1)
    assert "pruned 1 unpromoted challenger(s) (kept the newest 1)" in event["detail"]
    assert scalar(tflow, "SELECT count(*) FROM ml_model_baselines WHERE model_id = ANY(%s)",
                  challengers[:2]) == 0


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_one_failing_client_does_not_stop_the_others(tflow: PgmlFlow, tmp_path: Path) -> None:
    with tflow.connect() as conn:
        conn.execute("""CREATE VIEW public.fragile_training AS
                        SELECT client_id, title_length,
                               story_points / (CASE WHEN client_id = 1 THEN 0 ELSE 1 END)
                                   AS story_points
                          FROM pgml_flow.complexity_training""")
        conn.commit()
    spec = tmp_path / "fragile.toml"
    spec.write_text("""
[models.fragile]
task = "regression"
training_view = "public.fragile_training"
target = "story_points"
features = ["title_length"]
min_training_rows = 10
[models.fragile.retraining]
schedule = "0 5 * * *"
min_new_records = 10
performance_threshold = 0.1
data_freshness_days = 7
""")
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        results = tflow.retrain(["fragile"], [1, 2], now=SOON, spec_files=[str(spec)],
                                options=RetrainOptions(webhook_url=url))
    finally:
        server.shutdown()
    assert [r.status for r in results] == ["failed", "promoted"]
    assert "division by zero" in (results[0].detail or "")
    assert deployed(tflow, "fragile__client_2") == results[1].model_id
    assert deployed(tflow, "fragile__client_1") is None
    events = {e["client_id"]: e for e in tflow.events(model="fragile")}
    assert events[1]["status"] == "failed" and "division by zero" in events[1]["error"]
    assert events[2]["status"] == "promoted" and events[2]["duration_seconds"] > 0
    assert [(h["project"], h["status"]) for h in _Hook.received] == [
        ("fragile__client_1", "failed"), ("fragile__client_2", "promoted")]


def test_cli_check_json_and_exit_codes(tflow: PgmlFlow) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": tflow.url, "COLUMNS": "200"}
    result = runner.invoke(app, ["retrain", "--check", "--model", "complexity", "--json",
                                 "--now", SOON.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["client_id"], r["retrain"]) for r in rows] == [(1, False), (2, False)]
    assert "0 new rows" in rows[0]["reason"]
    result = runner.invoke(app, ["retrain", "--check", "--client", "99"], env=env)
    # (main() turns it into exit code 2 and one line on stderr: tested in test_scheduler.py)
    assert isinstance(result.exception, ClientNotFound) and result.exception.exit_code == 2
    result = runner.invoke(app, ["status", "--json", "--now", SOON.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert len(status) == 6 and all(s["deployed_model_id"] for s in status)
    assert {s["model"]: s["next_run"][:16] for s in status if s["client_id"] == 1} == {
        "trajectory": "2026-06-07 02:00", "complexity": "2026-06-10 03:00",
        "rework": "2026-06-06 04:00"}
    # every built-in model compiles, so each is served natively; without its compiled file
    # the same model answers through Python, and status says so
    assert {s["serving"] for s in status} == {"native"}
    with tflow.connect() as conn:
        conn.execute("DELETE FROM pgml.files WHERE model_id = %s AND path = 'native'",
                     (status[0]["deployed_model_id"],))
        conn.commit()
    result = runner.invoke(app, ["status", "--json", "--now", SOON.isoformat()], env=env)
    assert json.loads(result.output)[0]["serving"] == "python (no native form)"
    result = runner.invoke(app, ["refresh", "--json"], env=env)
    assert json.loads(result.output) == {"public.mv_ml_training_summary": "concurrently"}


# -- the margin: any finite number, everywhere it enters ----------------------------------------
@pytest.mark.parametrize("margin", [math.nan, math.inf, -math.inf])
def test_a_non_finite_margin_is_refused(margin: float) -> None:
    # NaN would never promote (every comparison with it is false), -inf always would
    with pytest.raises(ConfigurationError, match=f"finite number, not {margin!r}"):
        RetrainOptions(margin=margin)
    with pytest.raises(ConfigurationError, match="finite number"):
        dataclasses.replace(RetrainOptions(), margin=margin)
    # negative margins stay: -1 adopts a challenger even when it is worse (docs/operations.md)
    assert RetrainOptions(margin=-1.0).margin == -1.0


def test_cli_and_run_job_refuse_a_non_finite_margin(flow: PgmlFlow,
                                                    cli_env: dict[str, str]) -> None:
    pgml_flow = str(Path(sys.executable).parent / "pgml-flow")
    for args, extra in [
        (["retrain", "--force", "--margin", "nan"], {}),
        (["retrain", "--dry-run"], {"PGML_FLOW_PROMOTION_MARGIN": "-inf"}),
        (["scheduler", "run", "--once", "--margin", "-inf"], {}),
        (["cron", "install", "--margin", "inf"], {}),
    ]:
        proc = subprocess.run([pgml_flow, *args], capture_output=True, text=True, timeout=120,
                              env={**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "200",
                                   **extra}, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "the promotion margin must be a finite number" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    # in the server, called as pg_cron calls it (a superuser): refused before the job is
    # looked up or its slot claimed
    with flow.connect(autocommit=True) as conn:
        for value, shown in [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")]:
            with pytest.raises(psycopg.errors.RaiseException,
                               match=f"finite number, not {shown} "):
                conn.execute("SELECT pgml_flow.run_job('retrain:rework', margin => %s::float8)",
                             (value,))
        assert conn.execute("SELECT count(*) FROM ml_job_runs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ml_retraining_events").fetchone()[0] == 0
