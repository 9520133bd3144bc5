"""Drift that means something, calibrated anomalies, monitoring functions, the HTML report.

Issue 14's proof: a shift injected into one client's data crosses the drift threshold for
that client only; twelve BI reads of unchanged data never do; the scheduler's drift job
stores the checks and its retraining decision names drift. Reads are made as each
client's BI login, on a fresh copy of the trained template.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cli.app import app
from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError
from scheduler.runner import run_once
from tests.conftest import as_client

STORY_POINTS = "SELECT count(*) FROM analytics.issue_story_points"
#: a Wednesday after the seeded data ends: the complexity retrain's slot (03:00) is due
WEDNESDAY = dt.datetime(2026, 6, 3, 3, 30, tzinfo=dt.UTC)
#: open these many of each client's training issues, so that the BI views score them
REOPENED = 120


def test_drift_for_the_shifted_client_only(bi_flow: PgmlFlow) -> None:
    with psycopg.connect(bi_flow.url, autocommit=True) as admin:
        # the training rows' anomaly scores, calibrated: about 1% at >= 3, not a third
        shares = admin.execute("""
            SELECT b.model_name, b.client_id, avg((pgml_flow.anomaly_raw_score(
                       f.features, f.story_points, b.feature_mean, b.feature_stddev,
                       b.target_mean, b.target_stddev) * c.scale >= 3)::integer)
              FROM ml_model_baselines b
              JOIN ml_anomaly_calibration c USING (client_id, model_id)
              JOIN pgml_flow.complexity_features f
                ON f.client_id = b.client_id AND f.is_training
             WHERE b.model_name = 'complexity' GROUP BY 1, 2""").fetchall()
        assert len(shares) == 2 and all(0.005 <= s <= 0.02 for _, _, s in shares), shares
        admin.execute("INSERT INTO pgml_flow_settings VALUES ('prediction_log_rows', '-1')")
        for client in (1, 2):
            admin.execute(
                "UPDATE issues SET status_category = 'in_progress' WHERE client_id = %s"
                "   AND issue_id IN (SELECT entity_id FROM pgml_flow.complexity_features"
                "                     WHERE client_id = %s AND is_training"
                "                     ORDER BY md5(entity_id::text) LIMIT %s)",
                (client, client, REOPENED))
        # client 1's issues now come with descriptions 60 words longer than it trained on
        admin.execute("UPDATE issues SET description = description"
                      " || repeat(' more words here', 20)"
                      " WHERE client_id = 1 AND status_category = 'in_progress'")

    with as_client(bi_flow.url, 1) as bi:
        bi.execute(STORY_POINTS)
    with as_client(bi_flow.url, 2) as bi:  # a dashboard refreshing the same open issues
        for _ in range(12):
            bi.execute(STORY_POINTS)

    # the scheduler's drift job stores a check per client, model and feature
    [outcome] = run_once(bi_flow, now=WEDNESDAY,
                         jobs=[j for j in bi_flow.scheduled_jobs() if j.kind == "drift"])
    assert outcome.status == "succeeded", outcome.detail
    assert "client 1 complexity: description_words drifted" in outcome.detail
    latest = {(r["client_id"], r["model_name"], r["feature"]): r for r in bi_flow.latest_drift()}
    shifted = latest[(1, "complexity", "description_words")]
    assert shifted["drifted"] and shifted["psi"] > 1 and shifted["ks_pvalue"] < 1e-6
    assert shifted["recent_rows"] >= REOPENED
    # twelve reads of the same issues: each item counted once, and no drift
    unchanged = [r for (c, m, _), r in latest.items() if (c, m) == (2, "complexity")]
    assert {r["recent_rows"] for r in unchanged} == {REOPENED + 2}  # + its 2 open ones
    assert all(r["psi"] < 0.1 and not r["drifted"] for r in unchanged), unchanged
    assert not any(r["drifted"] for (c, _, _), r in latest.items() if c == 2)
    # too few scored epics: no verdict, and it says so
    assert "drift_min_rows" in latest[(1, "trajectory", "child_count")]["detail"]

    with psycopg.connect(bi_flow.url) as admin:
        # the unchanged training rows, scored and logged by the BI reads: ~1% anomalies
        rate = admin.execute("SELECT avg(is_anomaly::integer) FROM ml_prediction_log"
                             " WHERE client_id = 2").fetchone()[0]
        assert rate <= 0.03
    # the exporter's contract: these columns first, in this order
    with psycopg.connect(bi_flow.url) as admin:
        cur = admin.execute("SELECT * FROM pgml_flow.latest_drift LIMIT 0")
        assert [(d.name, d.type_code) for d in cur.description][:7] == [
            ("client_id", 23), ("model_name", 25), ("feature", 25), ("psi", 701),
            ("ks_pvalue", 701), ("drifted", 16), ("checked_at", 1184)]

    # the scheduled retrain's decision (what retrain:complexity runs on Wednesday, and
    # `retrain --check` shows): client 1 because of drift; client 2 has no reason
    decisions = {d.facts.client_id: d for d in bi_flow.retrain_decisions(
        ["complexity"], now=WEDNESDAY)}
    assert decisions[1].retrain and "drift: description_words PSI" in decisions[1].reason
    assert not decisions[2].retrain and "drift" not in decisions[2].reason

    # a BI login sees its own client's monitoring only, whatever it sets
    with as_client(bi_flow.url, 2) as bi:
        bi.execute("SET pgml_flow.client_id = 1")
        assert {r[0] for r in bi.execute("SELECT client_id FROM monitoring.drift('30 days')")
                } == {2}
        health = bi.execute("SELECT client_id, model_name, status FROM monitoring.health()"
                            " WHERE model_name = 'complexity'").fetchall()
        assert health == [(2, "complexity", "ok")]
        # a bucket date_bin cannot use is named, with what to pass instead
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match="contains months or years") as refused:
            bi.execute("SELECT * FROM monitoring.prediction_volume('2 years', '1 year')")
        assert "30 days" in (refused.value.diag.message_hint or "")
        assert bi.execute("SELECT count(*) >= 0 FROM monitoring.prediction_volume("
                          "'2 years', '365 days')").fetchone() == (True,)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium (./dev installs it)")
def test_monitor_and_report_render_in_a_browser(tflow: PgmlFlow, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": tflow.url, "COLUMNS": "200"}
    result = runner.invoke(app, ["drift", "--check", "--client", "1", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert {r["model_name"] for r in json.loads(result.output)} == {
        "complexity", "rework", "trajectory"}
    result = runner.invoke(app, ["monitor", "--client", "1", "--since", "30d", "--json"],
                           env=env)
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    assert {r["model_name"] for r in snap["performance"]} == {"complexity", "rework",
                                                              "trajectory"}
    assert {r["client_id"] for r in snap["health"]} == {1}
    result = runner.invoke(app, ["monitor", "--since", "yesterday"], env=env)
    assert isinstance(result.exception, ConfigurationError)  # exit code 2 in main()
    assert "use 1h, 24h, 7d or 30d" in str(result.exception)

    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--out", str(out), "--client", "1",
                                 "--since", "30d"], env=env)
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing from the network
    # the page as a browser renders it: the script it carries lists each image's natural size
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--allow-file-access-from-files",
         "--virtual-time-budget=5000", "--dump-dom", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    loaded = re.search(r'<pre id="plots-loaded">(.*?)</pre>', dom, re.S)
    assert loaded, dom[-2000:]
    sizes = dict(line.split(" ") for line in loaded.group(1).strip().splitlines())
    assert set(sizes) == {"metric_1_complexity.png", "metric_1_rework.png",
                          "metric_1_trajectory.png", "volume_1.png", "drift_1.png",
                          "retraining.png"}
    assert all(s != "0x0" and int(s.split("x")[0]) > 100 for s in sizes.values()), sizes
