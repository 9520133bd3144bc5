"""Run due jobs exactly once: :func:`run_once`.

For each job, the slot to run is its most recent cron time at or before ``now`` (earlier
missed slots are coalesced into it), plus any slot still open in ``ml_job_runs``: pending
(requested by pg_cron), or running/interrupted whose owner is gone.  Each slot is
claimed under a session-level advisory lock on the control connection:

* the lock is busy: another replica runs that slot now, skip it;
* the claim row (``UNIQUE (job, slot)``) is finished: it already ran, skip it;
* else run it, and record succeeded/failed/interrupted.

A process killed mid-job loses its connection, so its lock is released and its claim row
stays ``running``: the next run of any replica retries it.  A retrain retried this way skips
the clients the killed attempt had committed (their events carry the job run id).  A job
that loses the database (a restart) is likewise left open, ``interrupted``, never
``failed`` (finished slots never run again), and :func:`run_once` raises
:class:`~pgml_flow.errors.DatabaseUnreachable` so that the service backs off and retries.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.database import connection_lost, error_text
from pgml_flow.errors import DatabaseUnreachable, Interrupted, PgmlFlowError
from pgml_flow.retraining import RetrainOptions
from scheduler.jobs import Job, latest_slot

logger = logging.getLogger(__name__)
SOURCE = "scheduler"


@dataclass(frozen=True)
class JobOutcome:
    job: str
    slot: dt.datetime
    #: succeeded, failed, interrupted, or skipped (done already / running elsewhere)
    status: str
    detail: str
    run_id: int | None = None
    attempts: int = 0


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def due_slots(conn: psycopg.Connection, jobs: Sequence[Job], now: dt.datetime,
              tz: dt.tzinfo) -> list[tuple[Job, dt.datetime, list[dt.datetime]]]:
    """Per job: the slot to run now and the older open slots it coalesces."""
    open_rows = conn.execute(_query("open_slots"), {"jobs": [j.name for j in jobs]}).fetchall()
    out = []
    for job in jobs:
        slots = {row[1] for row in open_rows if row[0] == job.name and row[1] <= now}
        latest = latest_slot(job, now, tz)
        if latest is not None:
            slots.add(latest)
        if slots:
            ordered = sorted(slots)
            out.append((job, ordered[-1], ordered[:-1]))
    return out


def run_once(
    flow: Any,
    *,
    now: dt.datetime | None = None,
    jobs: Sequence[Job] | None = None,
    tz: dt.tzinfo = dt.UTC,
    options: RetrainOptions | None = None,
    claimed_by: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[JobOutcome]:
    """Run every due slot once; ``flow`` is a :class:`pgml_flow.app.PgmlFlow`."""
    from scheduler.jobs import jobs as all_jobs

    now = now or dt.datetime.now(dt.UTC)
    flow.require_current_schema()
    chosen = list(jobs) if jobs is not None else all_jobs(flow.model_specs())
    me = claimed_by or replica_id()
    outcomes = []
    with flow.connect(autocommit=True) as control:
        for job, slot, older in due_slots(control, chosen, now, tz):
            if should_stop():
                break
            for old in older:
                _supersede(control, job, old, slot)
            outcome = _run_slot(flow, control, job, slot, now, me, options or RetrainOptions(),
                                should_stop)
            outcomes.append(outcome)
            if outcome.status == "interrupted":
                break
    return outcomes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _params(job: Job, slot: dt.datetime) -> dict[str, Any]:
    return {"job": job.name, "slot": slot}


def _supersede(control: psycopg.Connection, job: Job, slot: dt.datetime,
               newer: dt.datetime) -> None:
    row = control.execute(_query("try_lock"), _params(job, slot)).fetchone()
    if not (row and row[0]):
        return
    try:
        control.execute(_query("supersede"), {**_params(job, slot), "newer": newer})
    finally:
        control.execute(_query("unlock"), _params(job, slot))


def _run_slot(flow: Any, control: psycopg.Connection, job: Job, slot: dt.datetime,
              now: dt.datetime, me: str, options: RetrainOptions,
              should_stop: Callable[[], bool]) -> JobOutcome:
    params = _params(job, slot)
    locked = control.execute(_query("try_lock"), params).fetchone()
    if not (locked and locked[0]):
        return JobOutcome(job.name, slot, "skipped", "running in another scheduler")
    try:
        claim = control.execute(_query("claim"), {**params, "claimed_by": me}).fetchone()
        if claim is None:
            return JobOutcome(job.name, slot, "skipped", "already ran")
        run_id, attempts = int(claim[0]), int(claim[1])
        logger.info("%s for %s: started (attempt %s)", job.name, f"{slot:%Y-%m-%d %H:%M}",
                    attempts, extra={"action": "job_start", "job": job.name, "attempt": attempts})
        started = time.monotonic()
        status, detail, error = "succeeded", "", None
        lost: BaseException | None = None
        try:
            detail = _execute(flow, job, slot, now, run_id, options, should_stop)
        except Interrupted as exc:
            status, detail, error = "interrupted", str(exc), None
        except (PgmlFlowError, psycopg.Error) as exc:
            if connection_lost(exc):
                # a server restart is not the job's failure: the slot stays open (finished
                # slots are never run again) and the next run resumes it
                lost = exc
                status, detail = "interrupted", "lost the connection to the database"
            else:
                status, error = "failed", (error_text(exc) if isinstance(exc, psycopg.Error)
                                           else str(exc))
        control.execute(_query("finish"), {"id": run_id, "status": status,
                                           "detail": detail or None, "error": error})
        seconds = time.monotonic() - started
        logger.log(logging.WARNING if status == "failed" else logging.INFO,
                   "%s for %s: %s in %.1f s: %s", job.name, f"{slot:%Y-%m-%d %H:%M}", status,
                   seconds, detail or error or "-",
                   extra={"action": "job_end", "job": job.name, "status": status,
                          "seconds": round(seconds, 3)})
        if lost is not None:
            raise DatabaseUnreachable(
                f"{job.name} for {slot:%Y-%m-%d %H:%M}: lost the connection to the database "
                f"({_first_line(lost)}); the slot stays open: the next run resumes it") from lost
        return JobOutcome(job.name, slot, status, detail or error or "", run_id, attempts)
    finally:
        if not control.closed and not control.broken:
            control.execute(_query("unlock"), params)


def _execute(flow: Any, job: Job, slot: dt.datetime, now: dt.datetime, run_id: int,
             options: RetrainOptions, should_stop: Callable[[], bool]) -> str:
    if job.kind == "refresh":
        with flow.connect(autocommit=True) as conn:
            row = conn.execute(sql.SQL("SELECT pgml_flow.refresh_materialized_view({})").format(
                sql.Literal(job.target))).fetchone()
        return f"refreshed {job.target} ({row[0] if row else '?'})"
    if job.kind == "drift":
        rows = flow.check_drift()
        drifted = sorted({f"client {r['client_id']} {r['model_name']}: {r['feature']}"
                          for r in rows if r["drifted"]})
        judged = sum(r["psi"] is not None for r in rows)
        return (f"checked {len(rows)} features ({judged} with enough items): "
                + ("; ".join(drifted) + " drifted" if drifted else "no drift"))
    if job.kind == "prune":
        pruned = flow.prune_prediction_log()
        deleted = sum(r["deleted"] or 0 for r in pruned)
        return f"deleted {deleted:,} rows of {job.target} ({len(pruned)} clients)"
    results = flow.retrain(
        [job.target], None, now=now, should_stop=should_stop,
        options=replace(options, reason=f"scheduled {slot:%Y-%m-%d %H:%M} UTC",
                        job_run_id=run_id))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no clients"


def job_runs(conn: psycopg.Connection, job: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("job_runs"), {"job": job, "limit": limit}).fetchall()
