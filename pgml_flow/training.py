"""Client-scoped training: one pgml project per client and model, every run recorded.

For a spec and a client, :func:`train_client`:

1. makes the client's training view ``pgml_flow_training.<model>__client_<id>``:
   the spec's feature columns and target from its training view, for that client only,
   in the spec's split order (``pgml_flow.holdout``);
2. skips the client, with the reason, when ML is switched off for it or it has fewer
   rows than the spec's ``min_training_rows``;
3. trains a challenger in the pgml project ``<model>__client_<id>`` with ``pgml.train``
   (not deployed by it), scores it and the deployed champion on the same held-out rows by
   the spec's key metric, and deploys it unless the champion does better
   (:func:`challenge`, which scheduled retraining shares with a margin); a spec with
   ``candidates`` trains the one chosen on a validation slice before the held-out rows
   (:mod:`pgml_flow.selection`, recorded in ``ml_model_candidates`` with the model);
4. stores the training distribution of the numeric features and the target
   (``ml_model_baselines``), which the BI surface scores predictions against;
5. records the run in ``ml_retraining_events`` (skipped, promoted, kept_champion, failed).

Steps 3-5 are one transaction: a run that fails ends ``failed`` with the error, and
leaves the champion deployed and no model behind. A failure for one client is recorded
and does not stop the others.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgml_flow import holdout, selection, sqlfiles
from pgml_flow.errors import ClientNotFound, ModelError, PgmlFlowError
from pgml_flow.selection import Selection
from pgml_models.client import ModelInfo, PgmlClient
from pgml_models.specs import (
    ModelSpec,
    beats,
    lower_is_better,
    meets_threshold,
    metric_label,
    split_relation,
)

logger = logging.getLogger(__name__)
SOURCE = "models"
#: the training view is in split order, so 'last' holds out its newest (or the same
#: hash-chosen) rows at every training: champion and challenger are judged on rows
#: neither was trained on
HOLDOUT_SAMPLING = "last"


@dataclass(frozen=True)
class TrainingResult:
    """One (client, model) run, as recorded in ``ml_retraining_events``."""

    client_id: int
    client: str
    model_name: str
    project: str
    #: promoted, kept_champion, skipped or failed
    status: str
    training_rows: int
    model_id: int | None
    key_metric: str
    key_metric_value: float | None
    seconds: float
    detail: str | None
    event_id: int | None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _template(name: str, **parts: sql.Composable) -> sql.Composed:
    return sql.SQL(_query(name)).format(**parts)


def active_client_ids(conn: psycopg.Connection) -> list[int]:
    return [int(r[0]) for r in conn.execute(_query("active_client_ids")).fetchall()]


def register(conn: psycopg.Connection, spec: ModelSpec) -> str | None:
    """Record the spec in ``ml_model_registry`` (what the BI surface serves from) and let
    the BI surface read its feature view (:func:`grant_feature_view`); a note when it
    cannot."""
    _upsert(conn, spec)
    return grant_feature_view(conn, spec)


def _upsert(conn: psycopg.Connection, spec: ModelSpec) -> bool:
    """The registry row of ``spec``; whether it changed.

    An unchanged row is only read, not upserted: the upsert would lock it until the end of
    the caller's transaction (a whole retrain), one client after another (registry_unchanged).
    """
    params = {
        "model_name": spec.name, "task": spec.task, "training_view": spec.training_view,
        "feature_view": spec.feature_view, "target": spec.target,
        "features": list(spec.features), "key_metric": spec.key_metric,
        "performance_threshold": spec.retraining.performance_threshold,
        "spec": Jsonb(spec.to_json()),
    }
    same = conn.execute(_query("registry_unchanged"), params).fetchone()
    if same and same[0]:
        return False
    cursor = conn.execute(_query("register_model"), params)
    return cursor.rowcount > 0


def refresh_registry(conn: psycopg.Connection, specs: Iterable[ModelSpec]) -> list[str]:
    """After an upgrade: the registered models whose spec changed (a built-in one, say),
    registered as their spec is now, so that the BI surface serves them as it says (e.g.
    with the ROW form) before they are retrained; their names."""
    known = {str(r[0]) for r in conn.execute(_query("registered_models"))}
    changed = [spec.name for spec in specs if spec.name in known and _upsert(conn, spec)]
    conn.commit()
    return changed


def grant_feature_view(conn: psycopg.Connection, spec: ModelSpec) -> str | None:
    """Make the spec's feature view readable by the BI surface, or say what is missing.

    ``analytics.predictions`` reads feature views as its owner (``pgml_flow_ml``): a view
    of yours needs ``GRANT SELECT ON <view> TO pgml_flow_ml``. It is given here when this
    connection may give it (it owns the view, or is a superuser); otherwise the returned
    note names the GRANT for the view's owner to run. None: nothing to do.
    """
    if spec.feature_view is None:
        return None
    row = conn.execute(_query("feature_view_access"), {"view": spec.feature_view}).fetchone()
    if row is None:  # no analytics.predictions: nothing serves feature views
        return None
    found, owner, readable = bool(row[0]), str(row[1]), bool(row[2])
    if not found:
        return (f"feature_view {spec.feature_view} does not exist, so the BI surface "
                "cannot serve this model; create it (docs/models.md) or fix the spec")
    if readable:
        return None
    grant = sql.SQL("GRANT SELECT ON {} TO {}").format(
        sql.Identifier(*split_relation(spec.feature_view)), sql.Identifier(owner))
    try:
        with conn.transaction():
            conn.execute(grant)
    except psycopg.errors.InsufficientPrivilege:
        text = grant.as_string(conn)
        logger.warning("the BI surface cannot read %s: %s", spec.feature_view, text,
                       extra={"action": "feature_view_grant_missing"})
        return (f"the BI surface (analytics.predictions, which runs as {owner}) cannot read "
                f"{spec.feature_view}, and this role may not grant it: its owner runs "
                f"`{text}`")
    logger.info("granted SELECT on %s to %s", spec.feature_view, owner,
                extra={"action": "feature_view_granted"})
    return None


def training_view(conn: psycopg.Connection, spec: ModelSpec, client_id: int) -> str:
    """(Re)create the client's training view; return its qualified name."""
    project = spec.project(client_id)
    view = sql.Identifier(project)
    try:
        with conn.transaction():
            conn.execute(_template("drop_training_view", view=view))
            conn.execute(_template(
                "create_training_view", view=view,
                features=sql.SQL(", ").join(sql.Identifier(f) for f in spec.features),
                target=sql.Identifier(spec.target),
                source=sql.Identifier(*split_relation(spec.training_view)),
                client_id=sql.Literal(int(client_id)), order=holdout.order_by(spec),
            ))
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"cannot build the training view of {spec.name!r} from {spec.training_view}: "
            f"{first}; check the spec's training_view, features, target and split (it needs "
            "a client_id column)"
        ) from exc
    return f"pgml_flow_training.{project}"


@dataclass(frozen=True)
class Challenge:
    """A challenger trained and judged against the champion on the same held-out rows."""

    challenger: ModelInfo
    champion: ModelInfo | None
    #: the key metric of each on the held-out rows (None: it could not predict them)
    after: float | None
    before: float | None
    holdout_rows: int
    promoted: bool
    #: why, in words
    verdict: str
    #: the spec's candidates judged on the validation slice (None: it has none)
    selection: Selection | None = None


def challenge(conn: psycopg.Connection, spec: ModelSpec, client_id: int, rows: int, *,
              margin: float = 0.0, ties_promote: bool = False) -> Challenge:
    """Train a challenger (not deployed by pgml.train), score it and the deployed champion on
    the held-out rows by the spec's key metric, deploy it when it wins, store its baseline.

    It wins when there is no champion, when the champion cannot predict the held-out rows,
    or when its key metric beats the champion's by more than ``margin`` (lower is better
    for errors such as mean_absolute_error); with ``ties_promote``, also when it is equal.
    The caller holds the transaction: nothing is kept if anything here fails.
    """
    project = spec.project(client_id)
    pgml = PgmlClient(conn)
    champion = pgml.deployed_model(project)
    table = holdout.materialize(conn, spec, client_id)  # read once for all but the training
    chosen = selection.select(conn, spec, client_id, rows, table)
    trained = spec if chosen is None else chosen.winner.spec
    pgml.train(
        project, task=spec.task, relation=f"pgml_flow_training.{project}",
        y_column=spec.target, algorithm=trained.algorithm,
        hyperparams=trained.hyperparams_with_seed(), search=spec.search,
        search_params=spec.search_params, search_args=spec.search_args,
        test_size=spec.test_size, test_sampling=HOLDOUT_SAMPLING,
        preprocess=trained.preprocess, automatic_deploy=False,
    )
    challenger = pgml.models(project)[-1]
    if chosen is not None:
        selection.record(conn, spec, client_id, challenger.id, chosen)
    before = None
    if champion is None:
        after, held_out = holdout.score(conn, spec, client_id, challenger.id, rows, table)
    else:  # both on the same rows, read once
        after, before, held_out = holdout.score_pair(conn, spec, client_id, challenger.id,
                                                     champion.id, rows, table)
    label = metric_label(spec.key_metric)
    if after is None:
        promoted, verdict = False, "the challenger could not predict the held-out rows"
    elif champion is None:
        promoted, verdict = True, "no champion was deployed"
    elif before is None:
        promoted, verdict = True, f"the champion (model {champion.id}) cannot predict these rows"
    else:
        better = beats(spec.key_metric, after, before, margin)
        promoted = better or (ties_promote and after == before)
        comparison = "beats" if better else "ties with" if promoted else "does not beat"
        verdict = f"{comparison} model {champion.id} ({label} {before:.3f} on the same rows)"
        if margin:
            verdict += f" by more than the margin {margin:g}"
    if promoted:
        pgml.deploy_model(challenger.id)
    _store_baseline(conn, spec, client_id, challenger.id, rows, table)
    if promoted:
        # what drift is measured against, and the anomaly score's calibration: the rows it
        # was trained on, read in this transaction (pgml_flow.monitoring)
        conn.execute(sqlfiles.query("store_drift_reference", "monitoring"),
                     {"client_id": client_id, "model_id": challenger.id})
    return Challenge(challenger, champion, after, before, held_out, promoted, verdict, chosen)


def describe(spec: ModelSpec, outcome: Challenge) -> str:
    """``model 12: mae 1.234 on 300 held-out rows; beats model 9 (...)``."""
    value = "n/a" if outcome.after is None else f"{outcome.after:.3f}"
    text = (f"model {outcome.challenger.id}: {metric_label(spec.key_metric)} {value} on "
            f"{outcome.holdout_rows} held-out rows; {outcome.verdict}")
    if outcome.selection is not None:
        text += f"; {outcome.selection.describe()}"
    threshold = spec.retraining.performance_threshold
    if outcome.after is not None and not meets_threshold(spec.key_metric, outcome.after,
                                                         threshold):
        side = "above" if lower_is_better(spec.key_metric) else "below"
        text += f"; {side} the threshold {threshold:g}"
    return text


def metrics_of(spec: ModelSpec, model: ModelInfo, value: float | None,
               held_out: int) -> dict[str, Any]:
    """The event's metrics_before / metrics_after: the key metric on the held-out rows and
    the model's stored metrics (JSON-safe: no NaN or infinity)."""
    return _plain({spec.key_metric: value, "holdout_rows": held_out, "model_id": model.id,
                   "trained": model.metrics})


def train_client(
    conn: psycopg.Connection, spec: ModelSpec, client_id: int, *, reason: str = "manual"
) -> TrainingResult:
    """Train ``spec`` for one client; see the module docstring."""
    started = time.perf_counter()
    info = conn.execute(_query("client_info"), {"client_id": client_id}).fetchone()
    if info is None:
        raise ClientNotFound(
            f"client {client_id} does not exist; see the clients table, or seed clients "
            "with `pgml-flow seed`"
        )
    client_name, ml_enabled = str(info[1]), bool(info[2])
    project = spec.project(client_id)

    def result(status: str, rows: int, detail: str | None, event_id: int | None,
               model_id: int | None = None, metric: float | None = None) -> TrainingResult:
        return TrainingResult(client_id, client_name, spec.name, project, status, rows,
                              model_id, spec.key_metric, metric,
                              time.perf_counter() - started, detail, event_id)

    def event(status: str, rows: int, detail: str | None, champion: Any = None) -> int:
        row = conn.execute(_query("insert_event"), {
            "client_id": client_id, "model_name": spec.name, "project": project,
            "reason": reason, "status": status,
            "champion_model_id": champion.id if champion else None,
            "metrics_before": Jsonb(_plain(champion.metrics)) if champion else None,
            "training_rows": rows, "detail": detail,
        }).fetchone()
        assert row is not None
        return int(row[0])

    if not ml_enabled:
        detail = "ML is switched off for this client (clients.ml_enabled = false)"
        event_id = event("skipped", 0, detail)
        conn.commit()
        return result("skipped", 0, detail, event_id)

    note = register(conn, spec)
    training_view(conn, spec, client_id)
    counted = conn.execute(_template("count_rows", view=sql.Identifier(project))).fetchone()
    rows = int(counted[0]) if counted else 0
    if rows < spec.min_training_rows:
        detail = (f"only {rows} training rows in {spec.training_view}; {spec.name} needs at "
                  f"least {spec.min_training_rows} (min_training_rows)")
        event_id = event("skipped", rows, detail)
        conn.commit()
        logger.info("skipped", extra={"action": "train_skipped", "project": project})
        return result("skipped", rows, detail, event_id)

    locked = _lock(conn, client_id, project)
    try:
        champion = PgmlClient(conn).deployed_model(project)
        event_id = event("running", rows, None, champion)
        conn.commit()
        try:
            with conn.transaction():
                outcome = challenge(conn, spec, client_id, rows, ties_promote=True)
                status = "promoted" if outcome.promoted else "kept_champion"
                detail = describe(spec, outcome) + (f"; note: {note}" if note else "")
                conn.execute(_query("finish_event"), {
                    "client_id": client_id, "id": event_id, "status": status,
                    "challenger_model_id": outcome.challenger.id,
                    "metrics_before": None if outcome.champion is None else Jsonb(metrics_of(
                        spec, outcome.champion, outcome.before, outcome.holdout_rows)),
                    "metrics_after": Jsonb(metrics_of(spec, outcome.challenger, outcome.after,
                                                      outcome.holdout_rows)),
                    "duration_seconds": time.perf_counter() - started, "detail": detail,
                    "error": None,
                })
            conn.commit()
        except psycopg.OperationalError:
            raise  # the connection is gone: the next run of the project records it failed
        except Exception as exc:
            # PgmlFlowError and psycopg.Error are the run's failures; anything else is a
            # bug, recorded as well before it is raised: a run never stays 'running'
            message = _first_line(exc)
            conn.rollback()
            conn.execute(_query("finish_event"), {
                "client_id": client_id, "id": event_id, "status": "failed",
                "challenger_model_id": None, "metrics_before": None, "metrics_after": None,
                "duration_seconds": time.perf_counter() - started, "detail": None,
                "error": message,
            })
            conn.commit()
            logger.warning("training failed: %s", message,
                           extra={"action": "train_failed", "project": project})
            if not isinstance(exc, PgmlFlowError | psycopg.Error):
                raise
            return result("failed", rows, message, event_id)
    finally:
        if locked and not conn.closed and not conn.broken:
            conn.execute(_query("unlock_project"), {"project": project})
            conn.commit()
    logger.info("trained", extra={"action": "train", "project": project, "status": status})
    return result(status, rows, detail, event_id, outcome.challenger.id, outcome.after)


def _lock(conn: psycopg.Connection, client_id: int, project: str) -> bool:
    """Hold the project's run lock; when no other run holds it, runs still 'running' are
    abandoned ones (their process ended first): record them failed."""
    row = conn.execute(_query("lock_project"), {"project": project}).fetchone()
    locked = bool(row and row[0])
    if locked:
        conn.execute(_query("fail_abandoned_runs"), {"client_id": client_id,
                                                     "project": project})
    conn.commit()
    return locked


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def train(
    conn: psycopg.Connection,
    specs: Sequence[ModelSpec],
    client_ids: Iterable[int],
    *,
    reason: str = "manual",
    progress: Callable[[TrainingResult], None] | None = None,
) -> list[TrainingResult]:
    """Each client in turn, each spec for it; ``progress`` is called after every run."""
    ids = list(client_ids)
    known = set(active_client_ids(conn)) | {
        cid for cid in ids
        if conn.execute(_query("client_info"), {"client_id": cid}).fetchone() is not None}
    missing = [cid for cid in ids if cid not in known]
    if missing:
        raise ClientNotFound(
            f"client(s) {', '.join(map(str, missing))} do not exist; see the clients "
            "table, or seed clients with `pgml-flow seed`"
        )
    results = []
    for client_id in ids:
        for spec in specs:
            outcome = train_client(conn, spec, client_id, reason=reason)
            results.append(outcome)
            if progress:
                progress(outcome)
    return results


def _store_baseline(
    conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int, rows: int,
    table: sql.Identifier,
) -> None:
    """Mean and spread of the numeric features (as a feature view's features array holds
    them: number and boolean columns, arrays flattened, in spec order) and of the target,
    over the training's rows (``table``: :func:`holdout.materialize`'s)."""
    project = spec.project(client_id)
    numeric = conn.execute(_query("numeric_columns"),
                           {"view": f"pgml_flow_training.{project}"}).fetchall()
    columns = [(str(name), bool(is_array)) for name, is_array in numeric
               if name in spec.features]
    columns.sort(key=lambda c: spec.features.index(c[0]))

    def element(name: str, is_array: bool) -> sql.Composable:
        column = sql.SQL("v.{}").format(sql.Identifier(name))
        if is_array:
            return sql.SQL("coalesce({}::double precision[], '{{}}')").format(column)
        return sql.SQL("ARRAY[{}::double precision]").format(column)

    flat = (sql.SQL(" || ").join(element(n, a) for n, a in columns) if columns
            else sql.SQL("ARRAY[]::double precision[]"))
    widths = sql.SQL(", ").join(
        sql.SQL("max(cardinality(v.{}))").format(sql.Identifier(n)) if a else sql.SQL("1")
        for n, a in columns)
    query = _template("feature_stats", table=table, flat=flat, widths=widths,
                      target=sql.Identifier(spec.target))
    with conn.cursor(row_factory=dict_row) as cur:
        stats = cur.execute(query).fetchone()
    assert stats is not None
    names: list[str] = []
    for (name, is_array), width in zip(columns, stats.pop("widths"), strict=True):
        names += [f"{name}[{k + 1}]" for k in range(width or 0)] if is_array else [name]
    conn.execute(_query("insert_baseline"), {
        "client_id": client_id, "model_id": model_id, "model_name": spec.name,
        "project": project, "training_rows": rows, "feature_names": names, **stats,
    })


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics without the (large) search results, JSON-safe: NaN and infinities (which
    JSON cannot hold) become null."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): finite(v) for k, v in value.items() if k != "search_results"}
        if isinstance(value, list | tuple):
            return [finite(v) for v in value]
        return value

    return json.loads(json.dumps(finite(metrics), default=str))


def retraining_events(
    conn: psycopg.Connection, model_name: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("retraining_events"),
                           {"model_name": model_name, "limit": limit}).fetchall()
