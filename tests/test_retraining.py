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
features = ["title_length", "description_words"]
algorithm = "xgboost"
hyperparams = { n_estimators = 1, max_depth = 1, learning_rate = 0.01 }
key_metric = "mean_absolute_error"
split = { by = "created" }
min_training_rows = 100
[models.complexity.retraining]
schedule = "0 3 * * 3"
min_new_records = 200
performance_threshold = 3.0
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
        ml_enabled=True, rows=1000, deployed_model_id=5, key_metric="mean_absolute_error",
        key_metric_value=1.2,
        rows_at_training=1000, newest_data=AS_OF)
    return Facts(**{**base, **changes})


def test_decide_rules() -> None:
    spec = builtin_specs()["complexity"]  # min 100 rows, 200 new, mae 3.0, 14 days
    now = AS_OF + dt.timedelta(days=2)
    cases = {
        "quiet": (facts(), False, "0 new rows"),
        "new rows": (facts(rows=1250), True, "250 new rows since model 5"),
        "new rows, already tried by a retrain that kept the champion": (
            facts(rows=1250, rows_at_last_attempt=1250), False, "0 new rows"),
        "new rows since a retrain that kept the champion": (
            facts(rows=1500, rows_at_last_attempt=1250), True,
            "250 new rows since the last retrain, which kept model 5"),
        "metric": (facts(key_metric_value=4.5), True, "mae 4.500 above performance_threshold"),
        "metric, same data as the last attempt": (
            facts(key_metric_value=4.5, rows_at_last_attempt=1000), False,
            "the last retrain already tried these 1000 rows"),
        "metric, data changed since the last attempt": (
            facts(key_metric_value=4.5, rows=1010, rows_at_last_attempt=1000), True,
            "mae 4.500 above performance_threshold"),
        "metric met": (facts(key_metric_value=2.5), False, "mae 2.500 <= 3"),
        "no model": (facts(deployed_model_id=None), True, "no deployed model"),
        "stale": (facts(rows=5000, newest_data=AS_OF - dt.timedelta(days=30)), False,
                  "data is stale: newest row 32 days old"),
        "too few": (facts(rows=20), False, "only 20 training rows"),
        "off": (facts(ml_enabled=False), False, "ML is switched off"),
        "drift": (facts(drift=("description_words PSI 4.09, KS p 8e-170, 348 items",)), True,
                  "drift: description_words PSI 4.09"),
        # anomalies are shown, never a reason by themselves (drift is PSI/KS: 400_monitoring)
        "anomalies, no drift": (facts(logged_predictions=400, anomalies=80), False,
                                "20% of 400"),
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
    # judged by the spec's key metric, MAE: lower is better
    before = event["metrics_before"]["mean_absolute_error"]
    after = event["metrics_after"]["mean_absolute_error"]
    assert after > before
    assert event["metrics_before"]["holdout_rows"] == event["metrics_after"]["holdout_rows"] > 100
    assert f"does not beat model {champion}" in event["detail"]
    assert event["reason"].startswith("manual: forced")


def test_better_challenger_is_promoted_and_rollback(tflow: PgmlFlow, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_COMPLEXITY)
    good = deployed(tflow, "complexity__client_2")
    # a weak model deployed on purpose (a margin of -100 points of MAE promotes it) ...
    [weak] = tflow.retrain(["complexity"], [2], now=SOON, spec_files=[str(bad)],
                           options=RetrainOptions(force=True, margin=-100.0))
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
    # no scheduler service or pg_cron job runs the retrains: no next run ("not scheduled";
    # with a running service: tests/test_exporter.py)
    assert all(s["next_run"] is None and s["scheduled_by"] == [] for s in status)
    # every built-in model compiles, so each is served natively (complexity's ROW form
    # with its learned encodings too); without its compiled file a model answers through
    # Python, and status says so
    assert {s["model"]: s["serving"] for s in status if s["client_id"] == 1} == {
        "trajectory": "native", "rework": "native", "complexity": "native"}
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


# -- what a spec judges and holds out; failures ------------------------------------------------
OUTLIERS = """
CREATE TABLE public.outlier_points AS
SELECT c.client_id, g AS entity_id,
       timestamptz '2026-01-01' + g * interval '1 hour' AS created,
       ((g * 37) % 100) / 100.0 AS x,
       -- one row in ten is ten times x, the others 0: least squares fits x (mean of the
       -- rows), least absolute error fits 0 (their median): lower MAE, lower r2
       CASE WHEN g % 10 = 0 THEN 10 * ((g * 37) % 100) / 100.0 ELSE 0 END AS y
  FROM generate_series(1, 400) g CROSS JOIN (VALUES (1), (2)) c(client_id)
"""


def _spec(name: str, body: str, key_metric: str, threshold: float) -> str:
    return f"""
[models.{name}]
task = "regression"
training_view = "public.outlier_points"
target = "y"
features = ["x"]
{body}
key_metric = "{key_metric}"
split = {{ by = "created" }}
min_training_rows = 50
[models.{name}.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = {threshold}
data_freshness_days = 7
"""


def test_the_key_metric_decides_promotion(tflow: PgmlFlow, tmp_path: Path) -> None:
    """A challenger with a lower MAE but a lower r2 than the champion, both scored on the
    same held-out rows: kept out by a spec keyed on r2, deployed by one keyed on MAE."""
    with tflow.connect() as conn:
        conn.execute(OUTLIERS)
        conn.commit()
    least_squares = 'algorithm = "linear"'
    absolute = ('algorithm = "xgboost"\nhyperparams = { objective = "reg:absoluteerror", '
                'n_estimators = 20, max_depth = 2 }')
    specs = {name: tmp_path / f"{name}.toml" for name in ("ols", "l1_r2", "l1_mae")}
    specs["ols"].write_text(_spec("outliers", least_squares, "r2", 0.0))
    specs["l1_r2"].write_text(_spec("outliers", absolute, "r2", 0.0))
    specs["l1_mae"].write_text(_spec("outliers", absolute, "mean_absolute_error", 5.0))
    [champion] = tflow.train(["outliers"], [1], spec_files=[str(specs["ols"])])
    assert champion.status == "promoted", champion.detail
    [by_r2] = tflow.train(["outliers"], [1], spec_files=[str(specs["l1_r2"])])
    assert by_r2.status == "kept_champion", by_r2.detail
    assert f"does not beat model {champion.model_id}" in (by_r2.detail or "")
    assert deployed(tflow, "outliers__client_1") == champion.model_id
    [by_mae] = tflow.train(["outliers"], [1], spec_files=[str(specs["l1_mae"])])
    assert by_mae.status == "promoted", by_mae.detail
    assert deployed(tflow, "outliers__client_1") == by_mae.model_id
    event = tflow.events(model="outliers", client_id=1, limit=1)[0]
    assert event["champion_model_id"] == champion.model_id
    before, after = event["metrics_before"], event["metrics_after"]
    assert before["holdout_rows"] == after["holdout_rows"] == 100
    assert after["mean_absolute_error"] < before["mean_absolute_error"]
    # the same 100 rows (time split, unchanged data): the models' stored test metrics
    assert after["trained"]["r2"] < before["trained"]["r2"]
    assert math.isclose(after["trained"]["mean_absolute_error"], after["mean_absolute_error"],
                        rel_tol=1e-6)
    # scheduled retraining judges the same way (MAE, lower is better, with the margin)
    [again] = tflow.retrain(["outliers"], [1], now=SOON, spec_files=[str(specs["l1_mae"])],
                            options=RetrainOptions(force=True, margin=0.01))
    assert again.status == "kept_champion" and "mae" in (again.detail or "")


def test_the_time_split_holds_out_the_newest_rows(tflow: PgmlFlow, tmp_path: Path) -> None:
    """split = { by = "created" }: the newest 25 % are held out (rows without a date count
    as the oldest). Their target is 100, every older row's 0: a model trained on the older
    rows predicts 0, so its held-out MAE is exactly 100 only if they are all held out."""
    with tflow.connect() as conn:
        conn.execute("""CREATE TABLE public.dated_points AS
            SELECT 1 AS client_id, g AS entity_id,
                   CASE WHEN g % 7 = 0 THEN NULL
                        ELSE timestamptz '2026-01-01' + (g * 11 % 400) * interval '1 day' END
                       AS created,
                   (g % 13)::real AS x,
                   CASE WHEN g % 7 <> 0 AND (g * 11 % 400) >= 300 THEN 100 ELSE 0 END AS y
              FROM generate_series(1, 400) g""")
        newest = conn.execute("SELECT count(*) FROM public.dated_points WHERE y = 100").fetchone()
        conn.commit()
    assert newest is not None and newest[0] > 50
    for by, expected in (("created", 100.0), ("hash", None)):
        path = tmp_path / f"{by}.toml"
        path.write_text(f"""
[models.dated_{by}]
task = "regression"
training_view = "public.dated_points"
target = "y"
features = ["x"]
key_metric = "mean_absolute_error"
split = {{ by = "{by}" }}
test_size = {newest[0]}
min_training_rows = 50
[models.dated_{by}.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = 200
data_freshness_days = 7
""")
        [result] = tflow.train([f"dated_{by}"], [1], spec_files=[str(path)])
        assert result.status == "promoted", result.detail
        assert result.key_metric_value is not None
        if expected is None:  # a hash-chosen sample mixes old and new rows
            assert result.key_metric_value < 90
        else:
            assert result.key_metric_value == pytest.approx(expected)


def test_a_run_that_fails_after_training_ends_failed(tflow: PgmlFlow) -> None:
    """A failure after pgml.train (here: storing the baseline) ends the run 'failed' with
    the error; the champion stays deployed and the challenger is not kept. A run whose
    process died ('running' with no live run) is marked failed by the next run."""
    project = "complexity__client_1"
    champion = deployed(tflow, project)
    models = project_models(tflow, project)
    with tflow.connect() as conn:
        conn.execute("""CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS
                        $$ BEGIN RAISE EXCEPTION 'baselines are read-only today'; END $$""")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON ml_model_baselines"
                     " FOR EACH ROW EXECUTE FUNCTION public.refuse()")
        abandoned = conn.execute(
            "INSERT INTO ml_retraining_events (client_id, model_name, project, reason, status)"
            " VALUES (1, 'complexity', %s, 'manual', 'running') RETURNING id",
            (project,)).fetchone()
        conn.commit()
    assert abandoned is not None
    [result] = tflow.train(["complexity"], [1])
    assert result.status == "failed" and "baselines are read-only today" in (result.detail or "")
    assert deployed(tflow, project) == champion
    assert project_models(tflow, project) == models
    with tflow.connect() as conn:
        statuses: dict[int, str] = dict(conn.execute(
            "SELECT id, status FROM ml_retraining_events WHERE project = %s AND id >= %s",
            (project, abandoned[0])).fetchall())
        error = conn.execute("SELECT error FROM ml_retraining_events WHERE id = %s",
                             (abandoned[0],)).fetchone()
    assert statuses == {abandoned[0]: "failed", result.event_id: "failed"}
    assert error is not None and "ended without recording its outcome" in error[0]


@pytest.mark.parametrize(("value", "words"), [
    ("'Infinity'::real", "column 'tl' contains 1 Infinity value(s)"),
    ("'-Infinity'::real", "column 'tl' contains 1 -Infinity value(s)"),
    ("NULL::real", "column 'tl' contains NULL values; add an impute rule"),
])
def test_unusable_feature_values_name_their_column(tflow: PgmlFlow, tmp_path: Path,
                                                   value: str, words: str) -> None:
    with tflow.connect() as conn:
        conn.execute(f"""CREATE VIEW public.odd_points AS
            SELECT client_id, created, CASE WHEN entity_id = (SELECT min(entity_id) FROM
                   pgml_flow.complexity_training) THEN {value} ELSE title_length END AS tl,
                   story_points FROM pgml_flow.complexity_training""")
        conn.commit()
    path = tmp_path / "odd.toml"
    path.write_text("""
[models.odd]
task = "regression"
training_view = "public.odd_points"
target = "story_points"
features = ["tl"]
min_training_rows = 20
[models.odd.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = 0.5
data_freshness_days = 7
""")
    first = scalar(tflow, "SELECT client_id FROM pgml_flow.complexity_training"
                          " ORDER BY entity_id LIMIT 1")
    [result] = tflow.train(["odd"], [first], spec_files=[str(path)])
    assert result.status == "failed" and words in (result.detail or ""), result.detail
    assert scalar(tflow, "SELECT status FROM ml_retraining_events WHERE id = %s",
                  result.event_id) == "failed"


def test_an_upgrade_registers_changed_specs_again(tflow: PgmlFlow) -> None:
    """A registered model whose spec changed with pgml-flow (a built-in one) is registered
    as its spec is now at `db upgrade`, so the BI surface serves it as that says (complexity
    reads rows: its preprocess) even before it is retrained."""
    with tflow.connect() as conn:
        conn.execute("UPDATE ml_model_registry SET spec = spec - 'preprocess'"
                     " WHERE model_name = 'complexity'")
        conn.commit()
        assert not conn.execute("SELECT pgml_flow.reads_rows('complexity')").fetchone()[0]
    tflow.upgrade()
    with tflow.connect() as conn:
        spec = conn.execute("SELECT spec FROM ml_model_registry"
                            " WHERE model_name = 'complexity'").fetchone()
        assert conn.execute("SELECT pgml_flow.reads_rows('complexity')").fetchone()[0]
    assert spec is not None and spec[0] == json.loads(
        json.dumps(builtin_specs()["complexity"].to_json()))
