"""Monitoring for people: drift checks, the monitoring functions' figures, an HTML report.

The statistics are computed in the database (``sql/idempotent/400_monitoring.sql``): drift
per client, deployed model and feature (population stability index of the recent distinct
scored items against the model's training rows, and the Kolmogorov-Smirnov test for
numeric features), and the ``monitoring`` schema's set-returning functions that a
dashboard calls with a time range.  This module runs them, and renders the static report
(``pgml-flow report --out DIR``): ``index.html`` and PNG plots made with matplotlib, no
network resources, so that it opens from a file or any static web server.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.errors import ConfigurationError

SOURCE = "monitoring"
#: the time ranges `pgml-flow monitor --since` accepts, as PostgreSQL intervals
RANGES = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}
_WINDOW = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def interval(text: str) -> str:
    """``1h``, ``24h``, ``7d``, ``30d`` (or any ``N`` + m/h/d/w) as a PostgreSQL interval.

    Raises :class:`ConfigurationError` naming the accepted forms otherwise.
    """
    found = _WINDOW.match(text or "")
    if not found or int(found.group(1)) < 1:
        raise ConfigurationError(
            f"time range {text!r}: use 1h, 24h, 7d or 30d (any positive number with m, h, d "
            "or w: 90m, 2w)")
    return f"{int(found.group(1))} {_UNITS[found.group(2)]}"


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _rows(conn: psycopg.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query(name), params).fetchall()


def check_drift(conn: psycopg.Connection, client_id: int | None = None,
                window: str | None = None) -> list[dict[str, Any]]:
    """Run a drift check now (stored in ``ml_drift_checks``) and return its rows.

    ``window``: the recent window (``7d``); None: the setting ``drift_window`` (7 days).
    """
    rows = _rows(conn, "check_drift", {"client_id": client_id,
                                       "window": interval(window) if window else None})
    conn.commit()
    return rows


def latest_drift(conn: psycopg.Connection, client_id: int | None = None
                 ) -> list[dict[str, Any]]:
    """The latest drift check per client, model and feature (``pgml_flow.latest_drift``)."""
    return _rows(conn, "latest_drift", {"client_id": client_id})


@dataclass(frozen=True)
class Snapshot:
    """What ``pgml-flow monitor`` and the report show for one time range."""

    since: str
    performance: list[dict[str, Any]]
    volume: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    retraining: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    health: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "performance": self.performance, "volume": self.volume,
                "anomalies": self.anomalies, "retraining": self.retraining,
                "metrics": self.metrics, "drift": self.drift, "health": self.health}


def snapshot(conn: psycopg.Connection, client_id: int | None = None,
             since: str = "24h") -> Snapshot:
    """Every monitoring function over the last ``since`` (``1h``, ``24h``, ``7d``, ``30d``)."""
    params = {"client_id": client_id, "since": interval(since)}
    # the metric over time needs the deployment before the range too: at least 90 days
    history = {**params, "since": "90 days" if since in ("1h", "24h", "7d", "30d")
               else params["since"]}
    out = Snapshot(
        since=since,
        performance=_rows(conn, "model_performance", params),
        volume=_rows(conn, "prediction_volume", params),
        anomalies=_rows(conn, "anomaly_summary", params),
        retraining=_rows(conn, "retraining_history", params),
        metrics=_rows(conn, "metric_history", history),
        drift=_rows(conn, "drift_history", params),
        health=_rows(conn, "health", {"client_id": client_id}),
    )
    conn.rollback()
    return out


# -- the HTML report ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    index: Path
    plots: list[Path]


def _series(rows: Sequence[dict[str, Any]], x: str, y: str, *keys: str
            ) -> dict[tuple[Any, ...], tuple[list[Any], list[float]]]:
    out: dict[tuple[Any, ...], tuple[list[Any], list[float]]] = {}
    for r in rows:
        if r[y] is None:
            continue
        xs, ys = out.setdefault(tuple(r[k] for k in keys), ([], []))
        xs.append(r[x])
        ys.append(float(r[y]))
    return out


def _plot(path: Path, title: str, ylabel: str,
          series: dict[tuple[Any, ...], tuple[list[Any], list[float]]], *,
          steps: bool = False, hline: float | None = None, hlabel: str = "",
          events: Sequence[tuple[dt.datetime, str]] = ()) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=90)
    try:
        for key, (xs, ys) in sorted(series.items(), key=lambda kv: str(kv[0])):
            label = " / ".join(str(k) for k in key)
            if steps:
                ax.step(xs, ys, where="post", marker="o", label=label)
            else:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        for when, status in events:
            # matplotlib converts dates on a date axis (its stubs say float)
            ax.axvline(when, color={"promoted": "tab:green",  # type: ignore[arg-type]
                                    "failed": "tab:red"}.get(status, "tab:gray"),
                       linestyle=":", linewidth=1)
        if hline is not None:
            ax.axhline(hline, color="tab:red", linestyle="--", linewidth=1, label=hlabel)
        if not series:
            ax.text(0.5, 0.5, "no data in this range", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if series or hline is not None:
            ax.legend(fontsize="small", loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dt.datetime):
            return f"{value:%Y-%m-%d %H:%M}"
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return str(value)

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r.get(c)))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: written into the page: after every image has loaded, the page lists their natural sizes
#: in #plots-loaded (a headless browser's --dump-dom shows whether the plots rendered)
_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img').forEach(function (img) {
    out.push(img.getAttribute('src') + ' ' + img.naturalWidth + 'x' + img.naturalHeight);
  });
  document.getElementById('plots-loaded').textContent = out.join('\\n');
});
</script>"""


def write_report(snap: Snapshot, out: Path, *, title: str = "pgml-flow monitoring") -> Report:
    """Write ``out/index.html`` and its PNG plots; every path is relative to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    sections: list[str] = []
    events = [(r["started_at"], r["status"]) for r in snap.retraining]

    def figure(name: str, caption: str, **kwargs: Any) -> str:
        path = _plot(out / name, **kwargs)
        plots.append(path)
        return (f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    clients = sorted({(r["client_id"], r["client"]) for r in snap.performance})
    for client_id, client in clients:
        mine = [r for r in snap.metrics if r["client_id"] == client_id]
        parts = [f"<h2>Client {client_id} {html.escape(str(client))}</h2>"]
        for model in sorted({r["model_name"] for r in snap.performance
                             if r["client_id"] == client_id}):
            rows = [r for r in mine if r["model_name"] == model]
            label = rows[-1]["key_metric"] if rows else "key metric"
            parts.append(figure(
                f"metric_{client_id}_{model}.png",
                f"{model}: {label} of the deployed model over time (dotted: retraining runs)",
                title=f"client {client_id} {model}: {label}", ylabel=label,
                series=_series(rows, "deployed_at", "key_metric_value", "model_name"),
                steps=True,
                events=[(r["started_at"], r["status"]) for r in snap.retraining
                        if r["client_id"] == client_id and r["model_name"] == model]))
        volume = [r for r in snap.volume if r["client_id"] == client_id]
        parts.append(figure(
            f"volume_{client_id}.png", "logged predictions per time bucket and model",
            title=f"client {client_id}: prediction volume (last {snap.since})",
            ylabel="predictions", series=_series(volume, "bucket_start", "predictions",
                                                 "model_name")))
        drift = [r for r in snap.drift if r["client_id"] == client_id]
        parts.append(figure(
            f"drift_{client_id}.png",
            "population stability index per model and feature (dashed: the drift threshold)",
            title=f"client {client_id}: drift (PSI)", ylabel="PSI",
            series=_series(drift, "checked_at", "psi", "model_name", "feature"),
            hline=0.25, hlabel="0.25: major shift"))
        sections.append("\n".join(parts))

    retrain_plot = figure(
        "retraining.png", "retraining runs: duration per client and model (dotted: each run)",
        title=f"retraining runs (last {snap.since})", ylabel="seconds",
        series=_series(snap.retraining, "started_at", "duration_seconds", "client_id",
                       "model_name"), events=events)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 100%; }}
.critical {{ color: #b00; }} #plots-loaded {{ display: none; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC;
range: last {html.escape(snap.since)}.</p>
<h2>Health</h2>
{_table(snap.health, ["client_id", "client", "model_name", "model_id", "key_metric",
                      "key_metric_value", "predictions_24h", "anomaly_rate_24h",
                      "drifted_features", "max_psi", "last_run_status", "status", "reasons"])}
<h2>Model performance</h2>
{_table(snap.performance, ["client_id", "model_name", "model_id", "predictions",
                           "distinct_items", "p50_latency_ms", "p95_latency_ms",
                           "anomaly_rate", "critical_predictions", "key_metric",
                           "key_metric_value"])}
{"".join(sections)}
<h2>Retraining</h2>
{retrain_plot}
{_table(snap.retraining, ["client_id", "model_name", "started_at", "status", "reason",
                          "metric_before", "metric_after", "duration_seconds"])}
<h2>Anomalies</h2>
{_table(snap.anomalies, ["client_id", "model_name", "severity", "predictions", "share",
                         "max_score", "last_seen"])}
<pre id="plots-loaded"></pre>
{_CHECK_SCRIPT}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return Report(index, plots)
