"""Prometheus metrics of a pgml-flow database, read at scrape time.

:class:`Collector` is a custom ``prometheus_client`` collector: every scrape runs the
queries of ``sql/metrics.sql`` (and the retraining decision's facts, cached for
``model_ttl`` seconds) on one short connection, so any number of exporters (``pgml-flow
metrics serve``, every scheduler replica) report the same numbers and none keeps state that
a restart would lose.  A section whose query fails (a database at an older schema, say) is
skipped and counted in ``pgml_flow_scrape_errors``; a database that cannot be reached gives
``pgml_flow_database_up 0`` and nothing else about it, never a failed scrape.

Scheduled jobs are labelled ``job_name`` (``job`` is Prometheus's own target label).

Cardinality rule: series carry a ``client`` label while the database has at most
``max_clients`` active clients (``PGML_FLOW_METRICS_MAX_CLIENTS``, default 50); above that,
each metric's per-client series collapse into one with ``client="all"``: counts and
histogram buckets are summed, model ages and rows since training take the maximum (the
worst client), key metrics the mean, drift PSI the maximum and KS p-values the minimum.

Why predictions are windowed gauges, not counters: what a BI read serves is not counted
anywhere; the prediction log holds a *sample* of each read, once per unchanged prediction,
and is pruned, so counts over it go down.  The exporter therefore reports what was logged
in the last ``window`` seconds (``PGML_FLOW_METRICS_WINDOW``, default 3600): logged
predictions, anomalies by severity, and a histogram of per-row prediction time (the read's
prediction time divided by its rows, ``ml_prediction_log.response_time_ms``).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgml_flow import sqlfiles
from pgml_flow.errors import ConfigurationError, PgmlFlowError

if TYPE_CHECKING:
    import psycopg
    from prometheus_client.core import Metric

    from pgml_flow.app import PgmlFlow
    from pgml_models.retraining import Decision

SOURCE = "metrics"
#: per-row prediction time buckets, seconds (the native scorer: ~10 us a row)
LATENCY_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
#: retraining run duration buckets, seconds
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
ALL = "all"
#: the port of ``pgml-flow metrics serve``
DEFAULT_PORT = 9717


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True)
class MetricsConfig:
    """The exporter's settings (environment variables, see docs/operations.md)."""

    #: per-client labels up to this many active clients, ``client="all"`` above
    max_clients: int = 50
    #: the window of the prediction metrics, seconds
    window_seconds: int = 3600
    #: how long the per-model facts (deployed model, metric, rows since) are reused, seconds
    model_ttl: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MetricsConfig:
        env = os.environ if environ is None else environ
        return cls(max_clients=_int(env, "PGML_FLOW_METRICS_MAX_CLIENTS", 50, 0),
                   window_seconds=_int(env, "PGML_FLOW_METRICS_WINDOW", 3600, 60),
                   model_ttl=float(_int(env, "PGML_FLOW_METRICS_MODEL_TTL", 60, 0)))


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r} is not a whole number; e.g. {name}={default}"
                                 ) from None
    if value < minimum:
        raise ConfigurationError(f"{name}={value} is below {minimum}; e.g. {name}={default}")
    return value


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _ts(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass
class _Family:
    """Samples of one metric, aggregated over clients when there are too many."""

    name: str
    doc: str
    labels: tuple[str, ...]
    kind: str = "gauge"  # gauge or counter
    reduce: Callable[[list[float]], float] = sum
    values: dict[tuple[str, ...], list[float]] = field(default_factory=dict)

    def add(self, labels: Iterable[Any], value: float | None) -> None:
        if value is not None:
            self.values.setdefault(tuple(str(v) for v in labels), []).append(float(value))

    def build(self) -> Metric:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = cls(self.name, self.doc, labels=list(self.labels))
        for labels, values in sorted(self.values.items()):
            family.add_metric(list(labels), self.reduce(values))
        return family


@dataclass
class _Histogram:
    """Cumulative bucket counts and sums per label set (summed over collapsed clients)."""

    name: str
    doc: str
    labels: tuple[str, ...]
    bounds: tuple[float, ...]
    #: a gauge histogram (a window's distribution) or a cumulative one
    gauge: bool
    buckets: dict[tuple[str, ...], dict[float, float]] = field(default_factory=dict)
    counts: dict[tuple[str, ...], float] = field(default_factory=dict)
    sums: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add_bucket(self, labels: Iterable[Any], le: float, n: float) -> None:
        key = tuple(str(v) for v in labels)
        row = self.buckets.setdefault(key, dict.fromkeys(self.bounds, 0.0))
        row[float(le)] = row.get(float(le), 0.0) + float(n)

    def add_total(self, labels: Iterable[Any], count: float, total: float) -> None:
        key = tuple(str(v) for v in labels)
        self.counts[key] = self.counts.get(key, 0.0) + float(count)
        self.sums[key] = self.sums.get(key, 0.0) + float(total)

    def build(self) -> Metric:
        from prometheus_client.core import GaugeHistogramMetricFamily, HistogramMetricFamily

        family: Any = (GaugeHistogramMetricFamily if self.gauge else HistogramMetricFamily)(
            self.name, self.doc, labels=list(self.labels))
        for key, count in sorted(self.counts.items()):
            row = self.buckets.get(key, {})
            buckets = [(_le(b), row.get(b, 0.0)) for b in self.bounds] + [("+Inf", count)]
            family.add_metric(list(key), buckets, self.sums[key])
        return family


def _le(bound: float) -> str:
    return repr(float(bound))


class ModelFacts:
    """The retraining decision's facts per client and model, cached for ``ttl`` seconds.

    They take a few queries per client and model (rows in the training view, the deployed
    model and its baseline), so scrapes and readiness probes in quick succession share them.
    """

    def __init__(self, flow: PgmlFlow, ttl: float) -> None:
        self.flow = flow
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = -1e18
        self._value: list[tuple[Decision, int]] = []

    def get(self, conn: psycopg.Connection) -> list[tuple[Decision, int]]:
        """(decision, the spec's min_training_rows) per active client and model spec."""
        from pgml_flow import retraining, training

        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                specs = list(self.flow.model_specs().values())
                ids = training.active_client_ids(conn)
                found = retraining.decisions(conn, specs, ids, dt.datetime.now(dt.UTC))
                minimum = {s.name: s.min_training_rows for s in specs}
                self._value = [(d, minimum[d.facts.model_name]) for d in found]
                self._at = time.monotonic()
            return self._value


def eligible(decision: Decision, min_rows: int) -> bool:
    """A client the model should serve: ML on, and enough rows to train it."""
    return decision.facts.ml_enabled and decision.facts.rows >= min_rows


class Collector:
    """The ``prometheus_client`` collector of one pgml-flow database (see the module doc)."""

    def __init__(self, flow: PgmlFlow, config: MetricsConfig | None = None,
                 facts: ModelFacts | None = None) -> None:
        self.flow = flow
        self.config = config or MetricsConfig.from_env()
        self.facts = facts or ModelFacts(flow, self.config.model_ttl)

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: registering it runs no query

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        started = time.monotonic()
        up = GaugeMetricFamily("pgml_flow_database_up",
                               "1 if the database answered this scrape, else 0")
        errors = GaugeMetricFamily("pgml_flow_scrape_errors",
                                   "1 for each section of this scrape whose queries failed",
                                   labels=["section"])
        out: list[Metric] = []
        try:
            conn = self.flow.connect(autocommit=True)
        except PgmlFlowError:
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            with conn:
                for section in (self._schema, self._clients_and_predictions, self._models,
                                self._retraining, self._jobs, self._drift):
                    try:
                        out.extend(section(conn))
                    except Exception:
                        errors.add_metric([section.__name__.strip("_")], 1)
                        if conn.closed or conn.broken:
                            break
        yield up
        yield from out
        yield errors
        duration = GaugeMetricFamily("pgml_flow_scrape_duration_seconds",
                                     "Time this scrape took to query the database")
        duration.add_metric([], time.monotonic() - started)
        yield duration

    # -- sections -------------------------------------------------------------------------
    def _per_client(self, conn: psycopg.Connection) -> bool:
        row = conn.execute(_query("clients")).fetchone()
        return row is not None and int(row[0]) <= self.config.max_clients

    def _client(self, per_client: bool, client_id: Any) -> str:
        return str(client_id) if per_client else ALL

    def _schema(self, conn: psycopg.Connection) -> list[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from pgml_flow import schema_version

        at, head = schema_version.current(conn), schema_version.head()
        family = GaugeMetricFamily("pgml_flow_schema_at_head",
                                   "1 if the database is at the schema revision this "
                                   "pgml-flow needs", labels=["revision", "head"])
        family.add_metric([at or "none", head], 1 if at == head else 0)
        return [family]

    def _clients_and_predictions(self, conn: psycopg.Connection) -> list[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        row = conn.execute(_query("clients")).fetchone()
        active = int(row[0]) if row else 0
        per_client = active <= self.config.max_clients
        clients = GaugeMetricFamily("pgml_flow_clients", "Active clients")
        clients.add_metric([], active)
        per = GaugeMetricFamily("pgml_flow_metrics_per_client",
                                "1 if series carry a client label (active clients <= "
                                "PGML_FLOW_METRICS_MAX_CLIENTS), 0 if client=\"all\"")
        per.add_metric([], 1 if per_client else 0)
        window = self.config.window_seconds
        params = {"window": window}
        labels = ("model", "client")
        logged = _Family("pgml_flow_predictions_logged",
                         f"Predictions logged in the last {window} s (a sample of each BI "
                         "read, once per unchanged prediction)", labels)
        anomalies = _Family("pgml_flow_anomalies",
                            f"Logged predictions flagged as anomalies in the last {window} s, "
                            "by severity", (*labels, "severity"))
        latency = _Histogram("pgml_flow_prediction_latency_seconds",
                             f"Per-row prediction time of the predictions logged in the last "
                             f"{window} s (the read's time divided by its rows)", labels,
                             LATENCY_BUCKETS, gauge=True)
        for r in conn.execute(_query("prediction_window"), params).fetchall():
            key = (r[1], self._client(per_client, r[0]))
            logged.add(key, r[2])
            for severity, n in zip(("low", "medium", "high"), r[4:7], strict=True):
                anomalies.add((*key, severity), n)
            latency.add_total(key, r[7], r[8])
        for r in conn.execute(_query("prediction_latency_buckets"),
                              {**params, "bounds": list(LATENCY_BUCKETS)}).fetchall():
            latency.add_bucket((r[1], self._client(per_client, r[0])), r[2], r[3])
        capped = _Family("pgml_flow_predictions_capped",
                         f"Predictions not logged because the client's hourly cap was "
                         f"reached, in the UTC hours overlapping the last {window} s",
                         ("client",))
        for r in conn.execute(_query("prediction_capped"), params).fetchall():
            capped.add((self._client(per_client, r[0]),), r[1])
        return [clients, per, logged.build(), anomalies.build(), latency.build(),
                capped.build()]

    def _models(self, conn: psycopg.Connection) -> list[Metric]:
        per_client = self._per_client(conn)
        now = time.time()
        labels = ("model", "client")
        deployed = _Family("pgml_flow_model_deployed",
                           "Eligible clients with a deployed model (1 per client with "
                           "client labels)", labels)
        missing = _Family("pgml_flow_model_missing",
                          "Eligible clients (ML on, enough training rows) without a deployed "
                          "model", ("model",))
        metric = _Family("pgml_flow_model_key_metric",
                         "The deployed model's key metric on its held-out rows "
                         "(mean over clients when client=\"all\")", (*labels, "metric"),
                         reduce=_mean)
        age = _Family("pgml_flow_model_age_seconds",
                      "Seconds since the deployed model was trained (the oldest when "
                      "client=\"all\")", labels, reduce=max)
        since = _Family("pgml_flow_model_rows_since_training",
                        "Training rows added since the deployed model was trained (the most "
                        "when client=\"all\")", labels, reduce=max)
        due = _Family("pgml_flow_model_retrain_due",
                      "Clients whose retraining policy says retrain now", labels)
        for decision, min_rows in self.facts.get(conn):
            f = decision.facts
            if not eligible(decision, min_rows):
                continue
            key = (f.model_name, self._client(per_client, f.client_id))
            deployed.add(key, 0 if f.deployed_model_id is None else 1)
            missing.add((f.model_name,), 1 if f.deployed_model_id is None else 0)
            due.add(key, 1 if decision.retrain else 0)
            if f.deployed_model_id is None:
                continue
            metric.add((*key, f.key_metric), f.key_metric_value)
            trained = _ts(f.trained_at)
            age.add(key, None if trained is None else now - trained)
            since.add(key, f.rows_since)
        return [deployed.build(), missing.build(), metric.build(), age.build(), since.build(),
                due.build()]

    def _retraining(self, conn: psycopg.Connection) -> list[Metric]:
        per_client = self._per_client(conn)
        labels = ("model", "client", "status")
        runs = _Family("pgml_flow_retraining_runs",
                       "Retraining runs (ml_retraining_events) by outcome", labels,
                       kind="counter")
        last = _Family("pgml_flow_retraining_last_run_timestamp_seconds",
                       "When the last run of each outcome started (Unix time)", labels,
                       reduce=max)
        duration = _Histogram("pgml_flow_retraining_duration_seconds",
                              "Duration of finished retraining runs (trained, compared, "
                              "promoted or kept)", ("model",), DURATION_BUCKETS, gauge=False)
        for r in conn.execute(_query("retraining_runs")).fetchall():
            key = (r[1], self._client(per_client, r[0]), r[2])
            runs.add(key, r[3])
            last.add(key, _ts(r[5]))
            if r[2] not in ("deployed", "rolled_back"):
                duration.add_total((r[1],), r[3], r[4])
        for r in conn.execute(_query("retraining_duration_buckets"),
                              {"bounds": list(DURATION_BUCKETS)}).fetchall():
            duration.add_bucket((r[0],), r[1], r[2])
        return [runs.build(), last.build(), duration.build()]

    def _jobs(self, conn: psycopg.Connection) -> list[Metric]:
        jobs = self.flow.scheduled_jobs()
        names = [j.name for j in jobs]
        runs = _Family("pgml_flow_job_runs", "Scheduled job runs (ml_job_runs) by status",
                       ("job_name", "status"), kind="counter")
        last_ok = _Family("pgml_flow_job_last_success_timestamp_seconds",
                          "When each scheduled job last succeeded (Unix time; scheduler "
                          "service, --once and pg_cron's run_job)", ("job_name",), reduce=max)
        for r in conn.execute(_query("job_runs")).fetchall():
            runs.add((r[0], r[1]), r[2])
            if r[1] == "succeeded":
                last_ok.add((r[0],), _ts(r[3]))
        scheduled = _Family("pgml_flow_job_scheduled",
                            "Who schedules each job now: running scheduler services (by="
                            "\"scheduler\") and active pg_cron jobs (by=\"pg_cron\")",
                            ("job_name", "by"))
        for r in conn.execute(_query("scheduler_presence"), {"jobs": names}).fetchall():
            scheduled.add((r[0], "scheduler"), r[1])
        row = conn.execute("SELECT current_database()").fetchone()
        cron = cron_jobs(self.flow.url, str(row[0]) if row else "", jobs)
        for job in jobs:
            scheduled.add((job.name, "pg_cron"), 1 if job.name in cron else 0)
        # pg_cron runs refreshes and prunes without ml_job_runs: its own history counts
        for name, finished in cron.items():
            last_ok.add((name,), _ts(finished))
        views = [j.target for j in jobs if j.kind == "refresh"]
        refreshed = _Family("pgml_flow_view_last_refresh_timestamp_seconds",
                            "When each scheduled materialized view was last refreshed by its "
                            "job (Unix time)", ("view",), reduce=max)
        populated = _Family("pgml_flow_view_populated",
                            "1 if the materialized view exists and is populated", ("view",))
        by_job = {j.name: j.target for j in jobs if j.kind == "refresh"}
        for (name,), values in last_ok.values.items():
            if name in by_job:
                refreshed.add((by_job[name],), max(values))
        for r in conn.execute(_query("matviews"), {"views": views}).fetchall():
            populated.add((r[0],), 1 if r[1] else 0)
        return [runs.build(), last_ok.build(), scheduled.build(), refreshed.build(),
                populated.build()]

    def _drift(self, conn: psycopg.Connection) -> list[Metric]:
        row = conn.execute(_query("latest_drift_exists")).fetchone()
        if not (row and row[0]):
            return []  # the drift checks are not installed in this database (yet)
        per_client = self._per_client(conn)
        labels = ("model", "client", "feature")
        psi = _Family("pgml_flow_drift_psi", "Population stability index of the latest "
                      "drift check (the largest when client=\"all\")", labels, reduce=max)
        ks = _Family("pgml_flow_drift_ks_pvalue", "Kolmogorov-Smirnov p-value of the latest "
                     "drift check (the smallest when client=\"all\")", labels, reduce=min)
        drifted = _Family("pgml_flow_drift_drifted", "Features whose latest check found "
                          "drift (1 per client with client labels)", labels)
        checked = _Family("pgml_flow_drift_checked_timestamp_seconds",
                          "When drift was last checked (Unix time)", ("model", "client"),
                          reduce=max)
        for r in conn.execute(_query("latest_drift")).fetchall():
            key = (r[1], self._client(per_client, r[0]), r[2])
            psi.add(key, r[3])
            ks.add(key, r[4])
            drifted.add(key, None if r[5] is None else int(bool(r[5])))
            checked.add(key[:2], _ts(r[6]))
        return [psi.build(), ks.build(), drifted.build(), checked.build()]


def cron_jobs(url: str, database: str, jobs: Iterable[Any]) -> dict[str, dt.datetime | None]:
    """The jobs that have an active pg_cron entry for ``database`` (pgml-flow's), with
    pg_cron's last successful run of each; empty when pg_cron is not loaded, not installed
    or not readable by this role."""
    import psycopg

    from pgml_flow import pgcron

    try:
        listed = pgcron.list_jobs(url)
        runs = pgcron.history(url, limit=1000) if listed else []
    except (PgmlFlowError, psycopg.Error):
        return {}
    name_of = {row["jobname"] for row in listed if row.get("active", True)}
    out: dict[str, dt.datetime | None] = {}
    for job in jobs:
        entry = pgcron.job_name(database, job)
        if entry in name_of:
            done = [r["end_time"] for r in runs
                    if r["jobname"] == entry and r["status"] == "succeeded" and r["end_time"]]
            out[job.name] = max(done) if done else None
    return out


def readiness(flow: PgmlFlow, facts: ModelFacts) -> tuple[bool, dict[str, Any]]:
    """``/health/ready``: the database answers, its schema is at head, and every model spec
    has a deployed model for each eligible client (ML on, enough rows to train it).

    Returns (ready, the JSON body): each check with ``ok`` and what failed.
    """
    from pgml_flow import schema_version

    checks: dict[str, Any] = {}
    try:
        conn = flow.connect(autocommit=True)
    except PgmlFlowError as exc:
        checks["database"] = {"ok": False, "error": str(exc)}
        return False, {"status": "not ready", "checks": checks}
    with conn:
        checks["database"] = {"ok": True}
        at, head = schema_version.current(conn), schema_version.head()
        checks["schema"] = {"ok": at == head, "revision": at, "head": head}
        if at != head:
            checks["schema"]["error"] = "run `pgml-flow db upgrade`"
            return False, {"status": "not ready", "checks": checks}
        missing = [{"client_id": d.facts.client_id, "model": d.facts.model_name}
                   for d, min_rows in facts.get(conn)
                   if eligible(d, min_rows) and d.facts.deployed_model_id is None]
        checks["models"] = {"ok": not missing, "missing": missing}
        if missing:
            checks["models"]["error"] = ("train them: `pgml-flow train MODEL --client ID` "
                                         "(or wait for the scheduled retrain)")
    ready = all(c["ok"] for c in checks.values())
    return ready, {"status": "ready" if ready else "not ready", "checks": checks}


def schedulers(conn: psycopg.Connection, url: str, jobs: Iterable[Any]) -> dict[str, list[str]]:
    """Per job, what schedules it now: ``scheduler`` (a running service holds its presence
    lock) and/or ``pg_cron`` (an active pg_cron entry for this database); no entry: nothing
    does, so the job has no next run."""
    chosen = list(jobs)
    out: dict[str, list[str]] = {j.name: [] for j in chosen}
    rows = conn.execute(_query("scheduler_presence"), {"jobs": list(out)}).fetchall()
    for job, replicas in rows:
        if replicas:
            out[job].append("scheduler")
    row = conn.execute("SELECT current_database()").fetchone()
    for job in cron_jobs(url, str(row[0]) if row else "", chosen):
        out[job].append("pg_cron")
    return {job: by for job, by in out.items() if by}
