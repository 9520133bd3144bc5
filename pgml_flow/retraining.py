"""Retraining runs: challenger against champion, per client, one event each.

For each client and model, :func:`retrain` asks :func:`pgml_models.retraining.decide`
whether to retrain; when yes, :func:`retrain_client`, in **one transaction**:

1. recreates the client's training view in the spec's split order, and trains the
   challenger with ``pgml.train(..., test_sampling => 'last', automatic_deploy => false)``,
   so the held-out rows are the view's last ``test_size`` rows (the newest, for a spec
   split by time);
2. scores the deployed champion and the challenger on those same rows by the spec's key
   metric (``pgml.predict``'s ROW form, the metric computed with scikit-learn:
   :mod:`pgml_flow.holdout`);
3. deploys the challenger (``pgml.deploy(model_id)``) only when its key metric beats the
   champion's by more than ``margin`` (lower is better for an error such as MAE);
   otherwise the champion stays, and the event says why (:func:`training.challenge`);
4. stores the challenger's training distribution and writes the ``ml_retraining_events``
   row (reason, status, metrics before and after, duration).

Nothing is committed before the end, so a process killed half-way leaves the champion
deployed and no partial rows.  A lost connection is retried with exponential backoff; any
other failure (a statement timeout and a full disk included: psycopg files them under
``OperationalError`` too, but they would fail again) is recorded as a ``failed`` event and
the next client goes on.  After each
event, an optional webhook (``PGML_FLOW_WEBHOOK_URL``) receives it as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pgml_flow import sqlfiles, training
from pgml_flow.database import connection_lost, error_text
from pgml_flow.errors import (
    ClientNotFound,
    ConfigurationError,
    DatabaseUnreachable,
    Interrupted,
    ModelError,
    PgmlFlowError,
)
from pgml_flow.training import TrainingResult
from pgml_models.client import ModelInfo, PgmlClient
from pgml_models.retraining import Decision, decide, gather
from pgml_models.specs import ModelSpec, lower_is_better, metric_label

logger = logging.getLogger(__name__)
SOURCE = "retraining"


@dataclass(frozen=True)
class RetrainOptions:
    """How a retraining run behaves (each is a setting, see docs/operations.md)."""

    #: the challenger is promoted only when its key metric beats the champion's by more
    #: (higher r2 / f1, lower MAE; in the metric's unit; a finite number: negative lets a
    #: worse challenger win, -1 adopts it on r2 or f1)
    margin: float = 0.0
    #: retrain even when the policy says no
    force: bool = False
    #: attempts per client when the connection is lost (1 = no retry)
    attempts: int = 3
    #: first backoff in seconds, doubled after each lost connection
    backoff_seconds: float = 1.0
    #: POST each event here as JSON (failures are logged, never raised)
    webhook_url: str | None = None
    #: recorded as the event's reason prefix
    reason: str = "manual"
    #: the scheduled job run the events belong to (ml_job_runs.id)
    job_run_id: int | None = None
    #: unpromoted challengers kept per project (older never-deployed models are deleted)
    keep_challengers: int = 3
    #: clients retrained at the same time, each in its own connection (so its own backend,
    #: where pgml.train runs); 1 = one client after another (see :func:`retrain`)
    parallelism: int = 1
    #: the newest row per (client, model) of the training summary, read on the Citus
    #: coordinator before the clients are routed to their workers, which lack the summary
    #: (pgml_models.retraining.gather); None: read where the run is
    summary: Mapping[tuple[int, str], dt.datetime | None] | None = field(default=None,
                                                                         hash=False)

    def __post_init__(self) -> None:
        check_margin(self.margin)
        check_parallelism(self.parallelism)


#: the most clients retrained at once: each holds a backend (a connection slot and a
#: training's memory) for its whole run
MAX_PARALLELISM = 64


def check_parallelism(parallelism: int) -> int:
    """``parallelism`` if it is a whole number from 1 to :data:`MAX_PARALLELISM`; else
    :class:`ConfigurationError` naming the setting."""
    if (not isinstance(parallelism, int) or isinstance(parallelism, bool)
            or not 1 <= parallelism <= MAX_PARALLELISM):
        raise ConfigurationError(
            f"the retraining parallelism must be a whole number from 1 to {MAX_PARALLELISM}, "
            f"not {parallelism!r} (--parallelism, PGML_FLOW_RETRAIN_PARALLELISM): the number "
            "of clients retrained at once, each in its own database connection; 1 = one "
            "after another, at most the server's cores to leave the BI reads theirs"
        )
    return parallelism


def check_margin(margin: float) -> float:
    """``margin`` if it is a finite number; else :class:`ConfigurationError` naming it.

    NaN would never promote (every comparison with it is false) and -inf always would.
    """
    if not isinstance(margin, int | float) or not math.isfinite(margin):
        raise ConfigurationError(
            f"the promotion margin must be a finite number, not {margin!r} (--margin, "
            "PGML_FLOW_PROMOTION_MARGIN, pgml_flow.run_job's margin): a challenger is promoted "
            "when its key metric beats the champion's by more than it; 0 = strictly better, "
            "0.01 = by more than 0.01, -1 = adopt the challenger even when it is worse"
        )
    return margin


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def decisions(conn: psycopg.Connection, specs: Sequence[ModelSpec], client_ids: Sequence[int],
              now: dt.datetime, *, force: bool = False) -> list[Decision]:
    """The decision for each client and spec (read-only)."""
    out = []
    for client_id in client_ids:
        client, ml_enabled = _client(conn, client_id)
        for spec in specs:
            out.append(decide(spec, gather(conn, spec, client_id, client, ml_enabled), now,
                              force=force))
    conn.rollback()
    return out


@dataclass(frozen=True)
class Plan:
    """What a retrain would do for one client and model (``retrain --dry-run``)."""

    client_id: int
    client: str
    model: str
    project: str
    reason: str
    #: the training: relation, algorithm, hyperparameters or the search
    train: str
    training_rows: int
    holdout_rows: int
    #: the champion and the promotion rule
    promotion: str
    #: never-deployed models the run would delete (beyond keep_challengers)
    prune: list[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plans(conn: psycopg.Connection, specs: Sequence[ModelSpec], client_ids: Sequence[int],
          now: dt.datetime, options: RetrainOptions) -> list[Plan]:
    """The runs :func:`retrain` would make now, step by step (read-only)."""
    out = []
    for decision in decisions(conn, specs, client_ids, now, force=options.force):
        if not decision.retrain:
            continue
        facts = decision.facts
        spec = next(s for s in specs if s.name == facts.model_name)
        size = spec.test_size
        holdout = math.ceil(facts.rows * size) if size <= 1 else int(size)
        if spec.search:
            grid = math.prod(len(v) if isinstance(v, list) else 1
                             for v in spec.search_params.values())
            how = (f"{spec.search} search over {grid} candidates of "
                   f"{', '.join(sorted(spec.search_params))}"
                   + (f" ({spec.search_args})" if spec.search_args else ""))
        else:
            how = f"hyperparams {spec.hyperparams or '{}'}"
        train = (f"pgml.train {spec.algorithm} {spec.task} on pgml_flow_training."
                 f"{facts.project}, {how}, automatic_deploy off")
        if facts.deployed_model_id is None:
            promotion = "no champion: the challenger is deployed"
        else:
            label = metric_label(facts.key_metric)
            stored = ("" if facts.key_metric_value is None
                      else f", stored {label} {facts.key_metric_value:.3f}")
            better = "lower" if lower_is_better(facts.key_metric) else "higher"
            promotion = (f"both scored on the same {holdout} held-out rows; deployed only if "
                         f"its {label} ({better} is better) beats model "
                         f"{facts.deployed_model_id}'s{stored} by more than {options.margin:g}")
        # the new challenger will count among the kept ones
        prune = [int(r[0]) for r in conn.execute(_query("stale_challengers"), {
            "project": facts.project, "keep": max(0, options.keep_challengers - 1)}).fetchall()]
        out.append(Plan(facts.client_id, facts.client, facts.model_name, facts.project,
                        decision.reason, train, facts.rows - holdout, holdout, promotion,
                        prune))
    conn.rollback()
    return out


def _client(conn: psycopg.Connection, client_id: int) -> tuple[str, bool]:
    info = conn.execute(sqlfiles.query("client_info", "models"),
                        {"client_id": client_id}).fetchone()
    if info is None:
        raise ClientNotFound(f"client {client_id} does not exist; see the clients table")
    return str(info[1]), bool(info[2])


def retrain(
    connect: Callable[[], psycopg.Connection],
    specs: Sequence[ModelSpec],
    client_ids: Sequence[int],
    now: dt.datetime,
    options: RetrainOptions,
    *,
    progress: Callable[[TrainingResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[TrainingResult]:
    """Decide and retrain each client and spec; a failing client does not stop the others.

    ``connect`` opens a new connection (used again after a connection is lost).  Raises
    :class:`~pgml_flow.errors.Interrupted` when ``should_stop`` turns true between clients:
    the client in hand is finished first.

    With ``options.parallelism`` N > 1, N clients are retrained at once, each by a thread with
    its own connection (so its own backend: pgml.train runs in the server, the threads only
    wait for it); a client's models run in turn on one connection.  The results come back in
    the order of a sequential run, which the same data, seeds and margin make equal to it.
    A client that fails does not stop the others: its exception is raised once every other
    client has finished, except a lost server, after which no new client is started.
    """
    workers = min(options.parallelism, len(client_ids))
    if workers > 1:
        return _retrain_parallel(connect, specs, client_ids, now, options, workers,
                                 progress=progress, should_stop=should_stop)
    return _retrain_clients(connect, specs, client_ids, now, options, progress=progress,
                            should_stop=should_stop)


def _retrain_clients(
    connect: Callable[[], psycopg.Connection],
    specs: Sequence[ModelSpec],
    client_ids: Sequence[int],
    now: dt.datetime,
    options: RetrainOptions,
    *,
    progress: Callable[[TrainingResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[TrainingResult]:
    """One client after another on one connection (renewed when it is lost)."""
    results: list[TrainingResult] = []
    session = _Session(connect)
    try:
        for client_id in client_ids:
            session.run(specs, client_id, now, options, results, progress, should_stop)
    finally:
        session.close()
    return results


class _Session:
    """A connection that retrains clients in turn, renewed when it is lost.

    One per worker, kept from client to client: a new backend would import the training
    libraries again (about a second) for every client.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self.connect = connect
        self.conn: psycopg.Connection | None = None

    def run(self, specs: Sequence[ModelSpec], client_id: int, now: dt.datetime,
            options: RetrainOptions, results: list[TrainingResult],
            progress: Callable[[TrainingResult], None] | None,
            should_stop: Callable[[], bool]) -> None:
        """Each spec for one client; appends to ``results`` as they finish."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            self.conn = self.connect()
        for spec in specs:
            if should_stop():
                raise Interrupted(f"stopped after {len(results)} runs; the next "
                                  "scheduler run finishes the job")
            if options.job_run_id is not None and self.conn.execute(
                    _query("done_in_job_run"), {"client_id": client_id, "model_name": spec.name,
                                                "job_run_id": options.job_run_id}).fetchone():
                self.conn.rollback()
                continue  # finished by an earlier attempt of this job run
            result, self.conn = _with_retries(self.connect, self.conn, spec, client_id, now,
                                              options)
            results.append(result)
            _notify(options.webhook_url, result)
            if progress:
                progress(result)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _retrain_parallel(
    connect: Callable[[], psycopg.Connection],
    specs: Sequence[ModelSpec],
    client_ids: Sequence[int],
    now: dt.datetime,
    options: RetrainOptions,
    workers: int,
    *,
    progress: Callable[[TrainingResult], None] | None,
    should_stop: Callable[[], bool],
) -> list[TrainingResult]:
    """:func:`retrain` with ``workers`` clients at a time (threads, one connection each)."""
    pending = iter(range(len(client_ids)))
    done: dict[int, list[TrainingResult]] = {}
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()
    halted = threading.Event()  # the server is gone: start no new client

    def report(result: TrainingResult) -> None:
        if progress:
            with lock:  # one progress line at a time (a terminal's progress bar)
                progress(result)

    def work() -> None:
        session = _Session(connect)
        try:
            while not halted.is_set():
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                runs: list[TrainingResult] = []
                try:
                    session.run(specs, client_ids[index], now, options, runs, report,
                                should_stop)
                except BaseException as exc:  # raised below, once the others are done
                    errors[index] = exc
                    if isinstance(exc, Interrupted) or connection_lost(exc):
                        halted.set()
                done[index] = runs
        finally:
            session.close()

    threads = [threading.Thread(target=work, name=f"pgml-flow-retrain-{n + 1}", daemon=True)
               for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [r for index in sorted(done) for r in done[index]]
    if errors:
        interrupted = [e for e in errors.values() if isinstance(e, Interrupted)]
        if interrupted and len(interrupted) == len(errors):
            raise Interrupted(f"stopped after {len(results)} runs; the next scheduler run "
                              "finishes the job")
        first = min(i for i, e in errors.items() if not isinstance(e, Interrupted))
        for index, exc in sorted(errors.items()):
            if index != first and not isinstance(exc, Interrupted):
                logger.warning("retraining client %s failed: %s", client_ids[index],
                               _first(exc), extra={"action": "retrain_client_failed"})
        raise errors[first]
    return results


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _with_retries(connect: Callable[[], psycopg.Connection], conn: psycopg.Connection,
                  spec: ModelSpec, client_id: int, now: dt.datetime,
                  options: RetrainOptions) -> tuple[TrainingResult, psycopg.Connection]:
    delay = options.backoff_seconds
    for attempt in range(1, options.attempts + 1):
        try:
            if conn.closed or conn.broken:
                conn = connect()
            return run_one(conn, spec, client_id, now, options), conn
        except (psycopg.Error, PgmlFlowError) as exc:
            # a lost connection, whatever wrapped it (a ModelError around the training view's
            # "terminating connection", say); else a failure on a live connection: raised
            if not connection_lost(exc) and not conn.broken:
                raise
            if attempt == options.attempts:
                raise DatabaseUnreachable(
                    f"lost the connection {attempt} times retraining {spec.project(client_id)}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                ) from exc
            logger.warning("connection lost, retrying in %.1f s", delay,
                           extra={"action": "retrain_retry", "project": spec.project(client_id),
                                  "attempt": attempt})
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def run_one(conn: psycopg.Connection, spec: ModelSpec, client_id: int, now: dt.datetime,
            options: RetrainOptions) -> TrainingResult:
    """Decide for one client and spec, and retrain when the decision says so."""
    started = time.perf_counter()
    client, ml_enabled = _client(conn, client_id)
    decision = decide(spec, gather(conn, spec, client_id, client, ml_enabled,
                                   summary=options.summary), now, force=options.force)
    conn.rollback()
    reason = f"{options.reason}: {decision.reason}"
    if not decision.retrain:
        return _event(conn, spec, decision, reason, "skipped", started, options,
                      detail=decision.reason)
    try:
        with conn.transaction():
            return retrain_client(conn, spec, decision, reason, started, options)
    except (PgmlFlowError, psycopg.Error) as exc:
        if connection_lost(exc) or conn.broken:
            raise  # retried on a new connection by _with_retries
        # a statement timeout or a full disk too: the transaction rolled back, the champion
        # stays, and the failure is the event (it would fail the same way if retried now)
        message = (error_text(exc) if isinstance(exc, psycopg.Error) else
                   str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        logger.warning("retraining failed: %s", message,
                       extra={"action": "retrain_failed", "project": spec.project(client_id)})
        return _event(conn, spec, decision, reason, "failed", started, options, error=message)


def retrain_client(conn: psycopg.Connection, spec: ModelSpec, decision: Decision, reason: str,
                   started: float, options: RetrainOptions) -> TrainingResult:
    """Steps 1-4 of the module docstring; the caller holds the transaction."""
    facts = decision.facts
    project = facts.project
    training.register(conn, spec)
    training.training_view(conn, spec, facts.client_id)
    outcome = training.challenge(conn, spec, facts.client_id, facts.rows, margin=options.margin)
    champion, challenger = outcome.champion, outcome.challenger
    detail = training.describe(spec, outcome)
    pruned = prune_challengers(conn, project, facts.client_id, options.keep_challengers,
                               spare=[challenger.id])
    if pruned:
        detail += (f"; pruned {len(pruned)} unpromoted challenger(s) "
                   f"(kept the newest {options.keep_challengers})")
    return _event(
        conn, spec, decision, reason, "promoted" if outcome.promoted else "kept_champion",
        started, options, detail=detail, champion=champion, challenger=challenger,
        metrics_before=(training.metrics_of(spec, champion, outcome.before,
                                            outcome.holdout_rows) if champion else None),
        metrics_after=training.metrics_of(spec, challenger, outcome.after,
                                          outcome.holdout_rows),
    )


def prune_challengers(conn: psycopg.Connection, project: str, client_id: int, keep: int,
                      *, spare: Sequence[int] = ()) -> list[int]:
    """Delete a project's never-deployed models beyond the newest ``keep``; their ids.

    Every retrain leaves a challenger behind, promoted or not; without pruning a weekly
    retrain of a few hundred clients piles up thousands of models and their files.  Models
    that were ever deployed stay (a rollback may need them), and so do ``spare`` ones.
    """
    ids = [int(r[0]) for r in conn.execute(_query("stale_challengers"), {
        "project": project, "keep": max(0, keep)}).fetchall() if int(r[0]) not in spare]
    for model_id in ids:
        conn.execute(_query("delete_challenger"), {"model_id": model_id})
        conn.execute(_query("delete_baseline"), {"client_id": client_id, "model_id": model_id})
    return ids


def _event(conn: psycopg.Connection, spec: ModelSpec, decision: Decision, reason: str,
           status: str, started: float, options: RetrainOptions, *, detail: str | None = None,
           error: str | None = None, champion: ModelInfo | None = None,
           challenger: ModelInfo | None = None, metrics_before: dict[str, Any] | None = None,
           metrics_after: dict[str, Any] | None = None) -> TrainingResult:
    facts = decision.facts
    seconds = time.perf_counter() - started
    champion_id = champion.id if champion else facts.deployed_model_id
    row = conn.execute(_query("insert_retrain_event"), {
        "client_id": facts.client_id, "model_name": spec.name, "project": facts.project,
        "reason": reason, "status": status, "champion_model_id": champion_id,
        "challenger_model_id": challenger.id if challenger else None,
        "metrics_before": Jsonb(metrics_before) if metrics_before else None,
        "metrics_after": Jsonb(metrics_after) if metrics_after else None,
        "training_rows": facts.rows, "duration_seconds": seconds, "detail": detail,
        "error": error, "job_run_id": options.job_run_id,
    }).fetchone()
    assert row is not None
    if status in ("skipped", "failed"):
        conn.commit()  # else the caller's transaction commits it with the model
    value = (metrics_after or {}).get(spec.key_metric)
    logger.info("retraining %s", status, extra={"action": "retrain", "project": facts.project,
                                                "status": status})
    return TrainingResult(facts.client_id, facts.client, spec.name, facts.project, status,
                          facts.rows, challenger.id if challenger else None, spec.key_metric,
                          value, seconds, detail or error, int(row[0]))


def _notify(url: str | None, result: TrainingResult) -> None:
    """POST the event as JSON; a webhook that fails is logged, never raised."""
    if not url:
        return
    import urllib.request  # here: its import (http, email) is not free, and webhooks are rare

    body = json.dumps({"event": "retraining", **result.__dict__}, default=str).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except OSError as exc:
        logger.warning("webhook %s failed: %s", url, exc, extra={"action": "webhook_failed"})


def deploy(conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int | None,
           *, rollback: bool = False) -> TrainingResult:
    """Deploy ``model_id`` (or, with ``rollback``, the previously deployed model) for a client.

    Recorded as a ``deployed`` or ``rolled_back`` event with the models before and after.
    """
    started = time.perf_counter()
    client, ml_enabled = _client(conn, client_id)
    project = spec.project(client_id)
    pgml = PgmlClient(conn)
    with conn.transaction():
        before = pgml.deployed_model(project)
        if rollback:
            if before is None:
                raise ModelError(f"{project} has no deployed model to roll back from")
            pgml.deploy(project, "rollback")
        else:
            if model_id is None or model_id not in {m.id for m in pgml.models(project)}:
                raise ModelError(f"model {model_id} is not a model of {project}; list them "
                                 f"with `pgml-flow events --client {client_id}` or pgml.models")
            pgml.deploy_model(model_id)
        after = pgml.deployed_model(project)
        assert after is not None
        facts = gather(conn, spec, client_id, client, ml_enabled)
        status = "rolled_back" if rollback else "deployed"
        word = "rolled back" if rollback else "deployed"
        label = metric_label(spec.key_metric)
        detail = (f"{word}: model {after.id} ({label} "
                  f"{_fmt(after.metric(spec.key_metric))}) replaces model "
                  f"{before.id if before else '-'}"
                  f" ({label} {_fmt(before.metric(spec.key_metric) if before else None)})")
        decision = Decision(facts, False, detail)
        return _event(conn, spec, decision, "operator", status, started, RetrainOptions(),
                      detail=detail, champion=before, challenger=after,
                      metrics_before={"model_id": before.id,
                                      spec.key_metric: before.metric(spec.key_metric)}
                      if before else None,
                      metrics_after={"model_id": after.id,
                                     spec.key_metric: after.metric(spec.key_metric)})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _serving(conn: psycopg.Connection, model_id: int | None, native_scoring: str,
             reads_rows: bool = False) -> str | None:
    """How ``model_id`` answers the BI surface: ``native``, or ``python (why)``.

    ``reads_rows``: the spec's model is served by the ROW form (its spec has preprocess),
    native only when the compiled form has a row section.
    """
    if model_id is None:
        return None
    if native_scoring == "off":
        return "python (pgml.native_scoring is off)"
    if native_scoring != "installed":
        return "python (pgml_native not installed)"
    row = conn.execute(_query("native_file"), {"model_id": model_id}).fetchone()
    if not row or not row[0]:
        return "python (no native form)"
    if reads_rows and not row[1]:
        return "python (ROW form: learned encodings)"
    return "native"


def events(conn: psycopg.Connection, *, model_name: str | None = None,
           client_id: int | None = None, status: str | None = None,
           since: dt.datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("events"), {
            "model_name": model_name, "client_id": client_id, "status": status,
            "since": since, "limit": limit}).fetchall()


def status_rows(conn: psycopg.Connection, specs: Sequence[ModelSpec], client_ids: Sequence[int],
                now: dt.datetime, native_scoring: str) -> list[dict[str, Any]]:
    """Per client and model: the deployed model, its metric, how it is served, the last event.

    ``native_scoring`` is the database's scorer state (``PgmlFlow.database_info``).
    """
    rows = []
    for decision in decisions(conn, specs, client_ids, now):
        facts = decision.facts
        last = conn.execute(_query("last_event"), {"client_id": facts.client_id,
                                                   "model_name": facts.model_name}).fetchone()
        rows.append({
            "client_id": facts.client_id, "client": facts.client, "model": facts.model_name,
            "deployed_model_id": facts.deployed_model_id, "key_metric": facts.key_metric,
            "key_metric_value": facts.key_metric_value, "trained_at": facts.trained_at,
            "rows": facts.rows, "rows_since": facts.rows_since,
            "retrain_due": decision.retrain, "decision": decision.reason,
            "last_event": last[0] if last else None,
            "last_event_at": last[4] if last else None,
            "last_event_detail": (last[2] or last[3]) if last else None,
            "serving": _serving(conn, facts.deployed_model_id, native_scoring,
                                next(s for s in specs if s.name == facts.model_name).reads_rows),
        })
    conn.rollback()
    return rows
