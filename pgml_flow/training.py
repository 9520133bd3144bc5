"""Client-scoped training: one pgml project per client and model, every run recorded.

For a spec and a client, :func:`train_client`:

1. makes the client's training view ``pgml_flow_training.<model>__client_<id>``:
   the spec's feature columns and target from its training view, for that client only;
2. skips the client, with the reason, when ML is switched off for it or it has fewer
   rows than the spec's ``min_training_rows``;
3. trains the pgml project ``<model>__client_<id>`` with ``pgml.train`` (which deploys
   the new model unless it is worse than the deployed one);
4. stores the training distribution of the features and target (``ml_model_baselines``),
   which the BI surface scores predictions against;
5. records the run in ``ml_retraining_events`` (skipped, promoted, kept_champion, failed).

A failure for one client is recorded and does not stop the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgml_flow import sqlfiles
from pgml_flow.errors import ClientNotFound, ModelError, PgmlFlowError
from pgml_models.client import PgmlClient
from pgml_models.specs import ModelSpec, split_relation

logger = logging.getLogger(__name__)
SOURCE = "models"
#: the training view is hash-ordered, so 'last' holds out the same rows at every training,
#: which is what lets a retrain compare champion and challenger fairly
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


def register(conn: psycopg.Connection, spec: ModelSpec) -> None:
    """Record the spec in ``ml_model_registry`` (what the BI surface serves from)."""
    conn.execute(_query("register_model"), {
        "model_name": spec.name, "task": spec.task, "training_view": spec.training_view,
        "feature_view": spec.feature_view, "target": spec.target,
        "features": list(spec.features), "key_metric": spec.key_metric,
        "performance_threshold": spec.retraining.performance_threshold,
        "spec": Jsonb(spec.to_json()),
    })


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
                client_id=sql.Literal(int(client_id)),
            ))
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"cannot build the training view of {spec.name!r} from {spec.training_view}: "
            f"{first}; check the spec's training_view, features and target (it needs a "
            "client_id column)"
        ) from exc
    return f"pgml_flow_training.{project}"


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

    register(conn, spec)
    view = training_view(conn, spec, client_id)
    counted = conn.execute(_template("count_rows", view=sql.Identifier(project))).fetchone()
    rows = int(counted[0]) if counted else 0
    if rows < spec.min_training_rows:
        detail = (f"only {rows} training rows in {spec.training_view}; {spec.name} needs at "
                  f"least {spec.min_training_rows} (min_training_rows)")
        event_id = event("skipped", rows, detail)
        conn.commit()
        logger.info("skipped", extra={"action": "train_skipped", "project": project})
        return result("skipped", rows, detail, event_id)

    pgml = PgmlClient(conn)
    champion = pgml.deployed_model(project)
    event_id = event("running", rows, None, champion)
    conn.commit()
    try:
        outcome = pgml.train(
            project, task=spec.task, relation=view, y_column=spec.target,
            algorithm=spec.algorithm, hyperparams=spec.hyperparams, search=spec.search,
            search_params=spec.search_params, search_args=spec.search_args,
            test_size=spec.test_size, test_sampling=HOLDOUT_SAMPLING,
            preprocess=spec.preprocess,
        )
        model = pgml.models(project)[-1]
        _store_baseline(conn, spec, client_id, model.id, rows)
        status = "promoted" if outcome.deployed else "kept_champion"
        metric = model.key_metric()
        detail = _describe(spec, model.id, metric, champion, outcome.deployed)
        conn.execute(_query("finish_event"), {
            "client_id": client_id, "id": event_id, "status": status,
            "challenger_model_id": model.id, "metrics_after": Jsonb(_plain(model.metrics)),
            "duration_seconds": time.perf_counter() - started, "detail": detail,
            "error": None,
        })
        conn.commit()
    except PgmlFlowError as exc:
        conn.rollback()
        conn.execute(_query("finish_event"), {
            "client_id": client_id, "id": event_id, "status": "failed",
            "challenger_model_id": None, "metrics_after": None,
            "duration_seconds": time.perf_counter() - started, "detail": None,
            "error": str(exc),
        })
        conn.commit()
        logger.warning("training failed", extra={"action": "train_failed", "project": project})
        return result("failed", rows, str(exc), event_id)
    logger.info("trained", extra={"action": "train", "project": project, "status": status})
    return result(status, rows, detail, event_id, model.id, metric)


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
    conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int, rows: int
) -> None:
    columns = [sql.Identifier(f) for f in spec.features]
    query = _template(
        "feature_stats", view=sql.Identifier(spec.project(client_id)),
        means=sql.SQL(", ").join(sql.SQL("avg({}::double precision)").format(c)
                                 for c in columns),
        stddevs=sql.SQL(", ").join(sql.SQL("stddev_pop({}::double precision)").format(c)
                                   for c in columns),
        target=sql.Identifier(spec.target),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        stats = cur.execute(query).fetchone()
    assert stats is not None
    conn.execute(_query("insert_baseline"), {
        "client_id": client_id, "model_id": model_id, "model_name": spec.name,
        "project": spec.project(client_id), "training_rows": rows,
        "feature_names": list(spec.features), **stats,
    })


def _describe(spec: ModelSpec, model_id: int, metric: float | None, champion: Any,
              deployed: bool) -> str:
    value = "n/a" if metric is None else f"{metric:.3f}"
    text = f"model {model_id}: {spec.key_metric} {value}"
    if champion is not None:
        old = champion.key_metric()
        old_text = "n/a" if old is None else f"{old:.3f}"
        verdict = "replaces" if deployed else "does not beat"
        text += f"; {verdict} model {champion.id} ({spec.key_metric} {old_text})"
    if metric is not None and metric < spec.retraining.performance_threshold:
        text += f"; below the threshold {spec.retraining.performance_threshold:g}"
    return text


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics without the (large) search results, JSON-safe."""
    return json.loads(json.dumps({k: v for k, v in metrics.items() if k != "search_results"},
                                 default=str))


def retraining_events(
    conn: psycopg.Connection, model_name: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("retraining_events"),
                           {"model_name": model_name, "limit": limit}).fetchall()
