"""Should a client's model be retrained?  The decision, with its reasons in words.

:func:`gather` reads the facts of one (spec, client) pair from the database (rows now and
at the deployed model's training, its key metric, the newest row, the drift signal);
:func:`decide` is a pure function of those facts and the spec's
:class:`~pgml_models.specs.RetrainingPolicy`, so the rules are testable without a database:

1. ML switched off for the client, or fewer rows than ``min_training_rows``: no.
2. No deployed model: yes.
3. The newest row is older than ``data_freshness_days``: no (the data is stale; retraining
   on it cannot help, the feed needs looking at).
4. Yes when any of: at least ``min_new_records`` rows since the deployed model was trained
   (or since the last retrain that challenged it and kept it, when that saw more rows);
   its key metric worse than ``performance_threshold`` (below it for a score such as r2
   or f1, above it for an error such as mean_absolute_error); drift: a feature of the
   deployed model drifted at the latest drift check (``pgml_flow.latest_drift``: PSI of the
   recent distinct scored items against its training rows over the threshold, KS test
   agreeing; sql/idempotent/400_monitoring.sql).  The share of logged predictions flagged
   as anomalies is shown, never a reason by itself: a re-read of the same items, or a few
   unusual ones, is no evidence that the population changed.  Otherwise no, saying which
   checks passed.

``force`` turns every "no" of rule 3 and 4 into a yes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgml_flow import sqlfiles
from pgml_models.client import PgmlClient
from pgml_models.specs import (
    ModelSpec,
    lower_is_better,
    meets_threshold,
    metric_label,
    split_relation,
)

SOURCE = "retraining"


@dataclass(frozen=True)
class Facts:
    """What the decision looks at, for one client and model."""

    client_id: int
    client: str
    model_name: str
    project: str
    ml_enabled: bool
    rows: int
    deployed_model_id: int | None = None
    key_metric: str = "r2"
    key_metric_value: float | None = None
    trained_at: dt.datetime | None = None
    #: training rows of the deployed model (None when unknown: trained outside pgml-flow)
    rows_at_training: int | None = None
    newest_data: dt.datetime | None = None
    logged_predictions: int = 0
    anomalies: int = 0
    #: training rows of the last retrain that ran against this deployed model and kept it
    #: (None: none yet); a metric below the threshold alone does not retrain on the same data
    rows_at_last_attempt: int | None = None
    #: the deployed model's drifted features at the latest drift check, in words
    #: ("description_words PSI 4.09, KS p 8e-170, 348 items")
    drift: tuple[str, ...] = ()

    @property
    def rows_since(self) -> int | None:
        return None if self.rows_at_training is None else self.rows - self.rows_at_training


@dataclass(frozen=True)
class Decision:
    facts: Facts
    retrain: bool
    #: why, in words (one sentence per check, '; '-separated)
    reason: str
    #: the spec's policy said no, but --force said yes
    forced: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self.facts)
        data.update(retrain=self.retrain, reason=self.reason, forced=self.forced,
                    rows_since=self.facts.rows_since)
        return data


def decide(spec: ModelSpec, facts: Facts, now: dt.datetime, *, force: bool = False) -> Decision:
    """The retraining decision for one client's model; see the module docstring."""
    policy = spec.retraining
    if not facts.ml_enabled:
        return Decision(facts, False, "ML is switched off for this client (clients.ml_enabled)")
    if facts.rows < spec.min_training_rows:
        return Decision(facts, False, f"only {facts.rows} training rows; {spec.name} needs "
                                      f"{spec.min_training_rows} (min_training_rows)")
    if facts.deployed_model_id is None:
        return Decision(facts, True, f"no deployed model; {facts.rows} training rows")
    notes: list[str] = []
    if facts.newest_data is not None:
        age = (now - facts.newest_data).total_seconds() / 86400
        if age > policy.data_freshness_days:
            stale = (f"data is stale: newest row {age:.0f} days old "
                     f"(data_freshness_days {policy.data_freshness_days})")
            return Decision(facts, force, f"forced; {stale}" if force else stale, force)
        notes.append(f"newest row {age:.0f} days old")
    reasons: list[str] = []
    since = facts.rows_since
    origin = f"model {facts.deployed_model_id}"
    if (since is not None and facts.rows_at_last_attempt is not None
            and facts.rows_at_training is not None
            and facts.rows_at_last_attempt > facts.rows_at_training):
        # a retrain already challenged the deployed model with the rows it had then and
        # kept it: only the rows that came after that can change the outcome
        since = facts.rows - facts.rows_at_last_attempt
        origin = f"the last retrain, which kept model {facts.deployed_model_id}"
    if since is None:
        reasons.append(f"training rows of model {facts.deployed_model_id} unknown "
                       f"({facts.rows} rows now)")
    elif since >= policy.min_new_records:
        reasons.append(f"{since} new rows since {origin} "
                       f"(min_new_records {policy.min_new_records})")
    else:
        notes.append(f"{since} new rows (< min_new_records {policy.min_new_records})")
    metric = facts.key_metric_value
    label = metric_label(facts.key_metric)
    if metric is not None and not meets_threshold(facts.key_metric, metric,
                                                  policy.performance_threshold):
        side = "above" if lower_is_better(facts.key_metric) else "below"
        below = (f"{label} {metric:.3f} {side} performance_threshold "
                 f"{policy.performance_threshold:g}")
        if facts.rows_at_last_attempt is not None and facts.rows == facts.rows_at_last_attempt:
            # Retraining on exactly the data the last attempt used cannot do better.
            notes.append(f"{below}, but the last retrain already tried these "
                         f"{facts.rows} rows and kept the champion")
        else:
            reasons.append(below)
    elif metric is not None:
        sign = "<=" if lower_is_better(facts.key_metric) else ">="
        notes.append(f"{label} {metric:.3f} {sign} {policy.performance_threshold:g}")
    if facts.drift:
        reasons.append("drift: " + "; ".join(facts.drift))
    if facts.logged_predictions:
        share = facts.anomalies / facts.logged_predictions
        notes.append(f"{share:.0%} of {facts.logged_predictions} logged predictions are "
                     "anomalies")
    if reasons:
        return Decision(facts, True, "; ".join(reasons))
    text = "; ".join(notes) or "nothing changed"
    return Decision(facts, force, f"forced; {text}" if force else text, force)


def gather(conn: psycopg.Connection, spec: ModelSpec, client_id: int, client: str,
           ml_enabled: bool,
           summary: Mapping[tuple[int, str], dt.datetime | None] | None = None) -> Facts:
    """Read the facts of one client and model (read-only).

    ``summary``: the newest row per (client, model) of ``mv_ml_training_summary``, read
    by the caller where the summary is (:func:`summary_newest`). On Citus the summary is
    the coordinator's, and a client's retrain runs on a worker, where it could not be read:
    the coordinator reads it before routing, so the decision is the one server's."""
    project = spec.project(client_id)
    source = sql.Identifier(*split_relation(spec.training_view))
    params = {"client_id": client_id, "model_name": spec.name}
    rows = _scalar(conn, sql.SQL(_query("client_rows")).format(source=source), params) or 0
    if spec.timestamp_column:
        newest = _scalar(conn, sql.SQL(_query("client_newest")).format(
            source=source, column=sql.Identifier(spec.timestamp_column)), params)
    elif summary is not None:  # read on the Citus coordinator before routing
        newest = summary.get((client_id, spec.name))
    elif _scalar(conn, _query("has_summary"), {}):
        newest = _scalar(conn, _query("summary_newest"), params)
    else:  # a Citus worker without the coordinator's summary: the data's age is unknown
        newest = None
    facts = Facts(client_id, client, spec.name, project, ml_enabled, int(rows),
                  key_metric=spec.key_metric, newest_data=newest)
    model = PgmlClient(conn).deployed_model(project)
    if model is None:
        return facts
    baseline = conn.execute(_query("baseline"), {**params, "model_id": model.id}).fetchone()
    drift = conn.execute(_query("drift"), {**params, "model_id": model.id}).fetchone()
    attempt = _scalar(conn, _query("last_kept_attempt"), {**params, "model_id": model.id})
    drifted = conn.execute(sqlfiles.query("deployed_model_drift", "monitoring"),
                           {**params, "model_id": model.id}).fetchall()
    return Facts(
        client_id, client, spec.name, project, ml_enabled, int(rows),
        deployed_model_id=model.id, key_metric=spec.key_metric,
        key_metric_value=model.metric(spec.key_metric), trained_at=model.created_at,
        rows_at_training=int(baseline[0]) if baseline else None, newest_data=newest,
        logged_predictions=int(drift[0]) if drift else 0,
        anomalies=int(drift[1]) if drift else 0,
        rows_at_last_attempt=None if attempt is None else int(attempt),
        drift=tuple(f"{feature} PSI {psi:.2f}"
                    + ("" if pvalue is None else f", KS p {pvalue:.1g}")
                    + f", {items} items" for feature, psi, pvalue, items in drifted),
    )


def summary_newest(conn: psycopg.Connection, client_ids: Sequence[int]
                   ) -> dict[tuple[int, str], dt.datetime | None]:
    """The newest row per (client, model) of ``mv_ml_training_summary`` (read-only): what
    :func:`gather` takes as ``summary`` for runs on a node without the summary."""
    rows = conn.execute(_query("summary_newest_of_clients"),
                        {"client_ids": list(client_ids)}).fetchall()
    return {(int(cid), str(model)): newest for cid, model, newest in rows}


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _scalar(conn: psycopg.Connection, query: str | sql.Composed,
            params: dict[str, Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None
