"""Monitoring from the shell: ``drift``, ``monitor`` and ``report``.

Each command is one call on :class:`pgml_flow.app.PgmlFlow`; rendering lives here.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.output import JsonOption, cell, console, flow, new_table, print_json

ClientOption = Annotated[int | None, typer.Option(
    "--client", envvar="PGML_FLOW_CLIENT", help="One client id (default: every client).")]
SinceOption = Annotated[str, typer.Option(
    "--since", envvar="PGML_FLOW_MONITOR_SINCE",
    help="Time range: 1h, 24h, 7d or 30d (any number with m, h, d or w).")]


def _number(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def drift(
    client: ClientOption = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Check drift now (stored in ml_drift_checks) instead of showing the "
                        "latest check.")] = False,
    window: Annotated[str | None, typer.Option(
        "--window", envvar="PGML_FLOW_DRIFT_WINDOW",
        help="With --check: the recent window of scored items (default: the setting "
             "drift_window, 7d).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Drift per client, deployed model and feature: PSI and KS test against training rows.

    The recent window holds each scored item once (its newest logged prediction), so that
    re-reading the same open issues is no new evidence. A feature is drifted when its PSI is
    at least 0.25 (drift_psi_threshold) and, for a numeric feature, the KS test's p-value is
    below 0.01 (drift_ks_alpha); with fewer than 100 items (drift_min_rows) there is no
    verdict. A drifted feature is a retraining reason (`pgml-flow retrain --check`). Exit
    code 0 either way; --json for scripts.
    """
    pf = flow()
    rows = pf.check_drift(client, window=window) if check else pf.latest_drift(client)
    if as_json:
        print_json(rows)
        return
    table = new_table("client", "model", "model id", "feature", "kind", "PSI", "KS p",
                      "drifted", "items", "checked at", "note",
                      title="Drift" + (" (checked now)" if check else " (latest checks)"))
    for r in rows:
        table.add_row(str(r["client_id"]), r["model_name"], str(r["model_id"]), r["feature"],
                      r["kind"], _number(r["psi"], ".3f"), _number(r["ks_pvalue"], ".2g"),
                      "DRIFT" if r["drifted"] else "no", f"{r['recent_rows']:,}",
                      cell(r["checked_at"]), r["detail"] or "")
    console.print(table)
    if not rows:
        console.print("no drift checks yet: run `pgml-flow drift --check` (the scheduler's "
                      "drift job does it hourly)")


def monitor(client: ClientOption = None, since: SinceOption = "24h",
            as_json: JsonOption = False) -> None:
    """Health and performance per client and model over a time range.

    The figures come from the monitoring schema's functions (what a BI dashboard calls:
    SELECT * FROM monitoring.model_performance('24 hours')): predictions logged, p50/p95
    latency per prediction, anomaly rate (calibrated: about 1% on training data), critical
    predictions, the deployed model's key metric, drift, and the last retraining run.
    """
    snap = flow().monitor(client, since)
    if as_json:
        print_json(snap.to_json())
        return
    health = {(r["client_id"], r["model_name"]): r for r in snap.health}
    table = new_table("client", "model", "model id", "metric", "predictions", "p50 ms",
                      "p95 ms", "anomalies", "critical", "drift", "last run", "status",
                      title=f"Monitoring, last {since}")
    for r in snap.performance:
        h = health.get((r["client_id"], r["model_name"]), {})
        metric = ("" if r["key_metric_value"] is None
                  else f"{r['key_metric']} {r['key_metric_value']:.3f}")
        table.add_row(f"{r['client_id']} {r['client']}", r["model_name"],
                      cell(r["model_id"]), metric, f"{r['predictions']:,}",
                      _number(r["p50_latency_ms"], ".2f"), _number(r["p95_latency_ms"], ".2f"),
                      _number(r["anomaly_rate"], ".1%"), f"{r['critical_predictions']:,}",
                      ", ".join(h.get("drifted_features") or []) or
                      ("" if h.get("max_psi") is None else f"PSI <= {h['max_psi']:.2f}"),
                      h.get("last_run_status") or "",
                      h.get("status", "") + (f": {h['reasons']}" if h.get("reasons") else ""))
    console.print(table)


def report(
    out: Annotated[str, typer.Option("--out", envvar="PGML_FLOW_REPORT_DIR",
                                     help="Directory to write index.html and the plots into.")],
    client: ClientOption = None,
    since: SinceOption = "7d",
    as_json: JsonOption = False,
) -> None:
    """Write a static HTML report: health, performance, and plots per client and model.

    Plots (PNG): the deployed model's key metric over time with retraining runs, prediction
    volume, drift (PSI per feature against the 0.25 threshold) and retraining durations.
    No network resources: open OUT/index.html in a browser, or serve the directory.
    """
    written = flow().report(out, client, since)
    if as_json:
        print_json({"index": str(written.index), "plots": [str(p) for p in written.plots]})
        return
    console.print(f"wrote {written.index} with {len(written.plots)} plots")
