"""Monitoring: the exporter and the scheduler's /metrics scraped by a real Prometheus, the
probes, the alert rules (promtool), the dashboard and compose files, and `status` saying
"not scheduled" until something schedules the jobs.

Prometheus is Debian's ``prometheus`` package (``./dev`` installs it), started here on a free
loopback port with a temporary configuration and storage directory, never as a service.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.metrics import Collector, MetricsConfig

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
PGML_FLOW = str(ROOT / ".venv/bin/pgml-flow")
yaml = pytest.importorskip("yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (OSError, ValueError):
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _exported_names() -> set[str]:
    """Every metric name the exporter and the scheduler service can expose."""
    text = (ROOT / "pgml_flow/metrics.py").read_text() + (ROOT / "scheduler/service.py"
                                                           ).read_text()
    names = set(re.findall(r'"(pgml_flow_[a-z_]+)"', text))
    out = set(names)
    for name in names:
        out |= {f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum",
                f"{name}_info"}
    return out


def test_alert_rules_pass_promtool_and_name_exported_metrics() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(["promtool", *args], cwd=MONITORING, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    alerts = {r["alert"] for r in rules}
    assert {"PgmlFlowRetrainFailed", "PgmlFlowPredictionLatencyHigh", "PgmlFlowDrift",
            "PgmlFlowViewStale", "PgmlFlowModelMissing", "PgmlFlowDatabaseDown",
            "PgmlFlowSchedulerSilent"} <= alerts
    dashboard = json.loads((MONITORING / "grafana/dashboards/pgml-flow.json").read_text())
    exprs = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"]
                                          for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bpgml_flow_[a-z_]+", e)}
    assert used and used <= _exported_names(), used - _exported_names()
    assert len(dashboard["panels"]) >= 10 and dashboard["uid"] == "pgml-flow"

    # compose: prometheus mounts these rules and scrapes the exporter and the scheduler on
    # the ports their commands listen on; grafana gets the provisioning and the dashboard
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {c["job_name"]: c["static_configs"][0]["targets"][0]
               for c in config["scrape_configs"]}
    assert targets == {"pgml-flow": "exporter:9717", "pgml-flow-scheduler": "scheduler:9718"}
    assert services["exporter"]["command"][-1] == "9717"
    assert services["scheduler"]["command"][-1] == "9718"
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/pgml-flow.yml")
                              .read_text())["providers"][0]
    assert any(v.endswith(":" + provider["options"]["path"] + ":ro")
               for v in services["grafana"]["volumes"])


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def _status(flow: PgmlFlow) -> tuple[dict[str, Any], str]:
    """`pgml-flow status --client 1 --model rework`: the row and its "next run" cell."""
    from cli.model_commands import _next_run

    rows = flow.model_status(["rework"], [1])
    assert len(rows) == 1
    return rows[0], _next_run(rows[0])


def test_prometheus_scrapes_the_exporter_and_the_scheduler(
        tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    flow = tflow
    flow.grant_bi_access([1])
    with flow.bi_session(1) as bi:  # a BI read: logged predictions with their timing
        assert bi.execute("SELECT count(*) FROM analytics.pull_request_rework_risk"
                          ).fetchone()[0] > 0
    with flow.connect() as conn:  # the drift view, if the drift checks are not there yet
        if conn.execute("SELECT to_regclass('pgml_flow.latest_drift')").fetchone()[0] is None:
            conn.execute("CREATE VIEW pgml_flow.latest_drift AS SELECT 2 AS client_id, "
                         "'rework'::text AS model_name, 'additions'::text AS feature, "
                         "0.4::float8 AS psi, 0.001::float8 AS ks_pvalue, true AS drifted, "
                         "now() AS checked_at")
            conn.commit()
        drift_rows = conn.execute("SELECT count(*) FROM pgml_flow.latest_drift").fetchone()[0]
    env = {**cli_env, "DATABASE_URL": flow.url, "PGML_FLOW_METRICS_MODEL_TTL": "0"}

    # nothing runs the jobs yet: no next run
    before, cell = _status(flow)
    assert before["next_run"] is None and before["scheduled_by"] == []
    assert cell == "not scheduled"

    # cardinality: above the cap (2 clients, cap 1), one client="all" series per model
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(flow, MetricsConfig(max_clients=1, model_ttl=0)))
    capped = generate_latest(registry).decode()
    assert 'pgml_flow_model_deployed{client="all",model="rework"} 2.0' in capped
    assert 'client="1"' not in capped

    exporter_port, scheduler_port, prom_port = _free_port(), _free_port(), _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="pgml-flow-prometheus-"))
    processes = []
    try:
        exporter = _start([PGML_FLOW, "metrics", "serve", "--port", str(exporter_port)], env,
                          tmp / "exporter.log")
        scheduler = _start([PGML_FLOW, "scheduler", "run", "--sweep-seconds", "3600",
                            "--metrics-port", str(scheduler_port)], env, tmp / "scheduler.log")
        processes += [exporter, scheduler]
        base = f"http://127.0.0.1:{exporter_port}"
        _wait("the exporter", lambda: _get(base + "/health")[0] == 200)
        assert json.loads(_get(base + "/health")[1]) == {"status": "alive"}
        code, body = _get(base + "/health/ready")
        ready = json.loads(body)
        assert code == 200 and ready["status"] == "ready", ready
        assert ready["checks"]["models"]["missing"] == []
        text = _get(base + "/metrics")[1].decode()
        for line in ('pgml_flow_database_up 1.0', 'pgml_flow_schema_at_head{',
                     'pgml_flow_model_deployed{client="1",model="rework"} 1.0',
                     'pgml_flow_predictions_logged{client="1",model="rework"}',
                     'pgml_flow_prediction_latency_seconds_bucket{client="1",le="+Inf",'
                     'model="rework"}',
                     'pgml_flow_retraining_runs_total{client="1",model="rework",'
                     'status="promoted"} 1.0',
                     'pgml_flow_drift_psi{' if drift_rows else '# HELP pgml_flow_drift',
                     'pgml_flow_scrape_duration_seconds'):
            assert line in text, line
        assert "pgml_flow_scrape_errors{" not in text, text

        # the scheduler service: logs at INFO without --debug, serves the same metrics,
        # and now the status has a next run
        _wait("the scheduler's start", lambda: "scheduler started" in (
            tmp / "scheduler.log").read_text())
        after, cell = _status(flow)
        assert after["scheduled_by"] == ["scheduler"] and after["next_run"] is not None
        assert cell.endswith("(scheduler)")

        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(MONITORING / "alerts.yml")],
                  "scrape_configs": [
                      {"job_name": "pgml-flow",
                       "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]},
                      {"job_name": "pgml-flow-scheduler",
                       "static_configs": [{"targets": [f"127.0.0.1:{scheduler_port}"]}]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = _start(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], dict(os.environ),
                            tmp / "prometheus.log")
        processes.append(prometheus)

        def query(expr: str) -> list[dict[str, Any]]:
            url = (f"http://127.0.0.1:{prom_port}/api/v1/query?"
                   + urllib.parse.urlencode({"query": expr}))
            answer = json.loads(_get(url)[1])
            assert answer["status"] == "success", answer
            return list(answer["data"]["result"])

        up = _wait("both targets scraped", lambda: (
            found := query("pgml_flow_database_up == 1")) and len(found) == 2 and found,
            timeout=40)
        assert {r["metric"]["job"] for r in up} == {"pgml-flow", "pgml-flow-scheduler"}
        deployed = query('pgml_flow_model_deployed{job="pgml-flow-scheduler",model="rework"}')
        assert {r["metric"]["client"]: r["value"][1] for r in deployed} == {"1": "1", "2": "1"}
        assert query('pgml_flow_job_scheduled{by="scheduler",job_name="retrain:rework"}'
                     )[0]["value"][1] == "1"

        # a client loses its deployed model: not ready, named
        with flow.connect() as conn:
            conn.execute("DELETE FROM pgml.deployments d USING pgml.projects p "
                         "WHERE d.project_id = p.id AND p.name = 'rework__client_2'")
            conn.commit()
        code, body = _get(base + "/health/ready")
        assert code == 503, body
        assert json.loads(body)["checks"]["models"]["missing"] == [
            {"client_id": 2, "model": "rework"}]
    finally:
        codes = [_stop(p) for p in reversed(processes)]
    log = (tmp / "scheduler.log").read_text()
    assert "INFO scheduler.service: scheduler started" in log, log
    assert "job retrain:rework: schedule" in log and "scheduler stopped" in log, log
    assert codes[1:] == [0, 0], (codes, (tmp / "exporter.log").read_text(), log)
