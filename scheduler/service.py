"""The long-running scheduler: APScheduler cron triggers calling :func:`run_once`.

Each job gets a cron trigger; when it fires, the service runs that job's due slot through
:func:`scheduler.runner.run_once` (claim, advisory lock, exactly once across replicas).  At
start, and every ``sweep_seconds`` after, it also runs whatever is due or open (missed
slots while it was down, slots requested by pg_cron, slots a crashed replica left).

SIGTERM and SIGINT stop it gracefully: no new job starts, a retrain in hand finishes the
client it is training (its transaction commits or rolls back as a whole), the job is
marked ``interrupted`` and the next run resumes it.

While it runs, the service holds a shared advisory lock per job on a connection of its own
(``presence_lock`` in sql/metrics.sql): that is how ``pgml-flow status`` and the
``pgml_flow_job_scheduled`` metric know a job is actually scheduled, without a heartbeat
table (a killed service's connection, and so its locks, go away with it).  It logs its
start, its jobs with their next run, and every run's outcome (skipped ones included) at
INFO; with ``metrics_port`` it serves the same ``/metrics`` and probes as ``pgml-flow
metrics serve`` (:mod:`pgml_flow.exporter`).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from apscheduler.schedulers.blocking import BlockingScheduler

from pgml_flow import sqlfiles
from pgml_flow.database import connection_lost
from pgml_flow.errors import PgmlFlowError
from pgml_flow.retraining import RetrainOptions
from scheduler.jobs import Job, next_slot, trigger
from scheduler.runner import JobOutcome, run_once

logger = logging.getLogger(__name__)
#: the backoff of runs after the database went away: first and longest wait, seconds
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


class Service:
    def __init__(self, flow: Any, jobs: Sequence[Job], tz: dt.tzinfo,
                 options: RetrainOptions, *, sweep_seconds: int = 300,
                 metrics_host: str = "127.0.0.1", metrics_port: int | None = None) -> None:
        self.flow = flow
        self.jobs = list(jobs)
        self.tz = tz
        self.options = options
        self.sweep_seconds = sweep_seconds
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.scheduler = BlockingScheduler(timezone=tz)
        self.metrics_host = metrics_host
        self.metrics_port = metrics_port
        #: the connection holding this service's presence locks (see the module doc)
        self._presence: psycopg.Connection | None = None
        #: Unix time of the last completed run of due jobs (the service's own metric)
        self.last_run: float | None = None
        #: the current backoff after a lost database (0: the last run reached it)
        self._retry_seconds = 0.0

    def _run(self, jobs: Sequence[Job]) -> list[JobOutcome]:
        if self.stop.is_set():
            return []
        with self._lock:  # one job at a time per process; replicas add parallelism
            self._hold_presence()
            try:
                outcomes = run_once(self.flow, jobs=jobs, tz=self.tz, options=self.options,
                                    should_stop=self.stop.is_set)
            except (PgmlFlowError, psycopg.Error) as exc:
                if connection_lost(exc):
                    self._retry_later(exc)
                else:
                    logger.warning("scheduled run of %s failed: %s", _names(jobs), exc,
                                   extra={"action": "run_failed"})
                return []
            self._retry_seconds = 0.0
            self.last_run = time.time()
            # the runs themselves are logged by the runner; the rest in one line
            skipped = [o for o in outcomes if o.status == "skipped"]
            if skipped or not outcomes:
                logger.info("checked %s: %s", _names(jobs), "; ".join(
                    f"{o.job} {o.slot:%Y-%m-%d %H:%M} skipped ({o.detail})" for o in skipped)
                    or "nothing due", extra={"action": "jobs_checked"})
            return outcomes

    def _retry_later(self, exc: BaseException) -> None:
        """The database went away (a restart, a crash): run every job again soon.

        Bounded exponential backoff: 1 s, 2 s, 4 s ... up to a minute (or the sweep
        interval when shorter), reset by the first run that reaches the database.  The run
        then resumes what the lost one left open (its slot stays open in ml_job_runs).
        """
        if self.stop.is_set():
            return
        delay = min(float(self.sweep_seconds), RETRY_MAX_SECONDS,
                    self._retry_seconds * 2 or RETRY_FIRST_SECONDS)
        self._retry_seconds = delay
        text = str(exc).strip()
        logger.warning("the database is unreachable (%s); every job is retried in %.0f s",
                       text.splitlines()[0] if text else type(exc).__name__, delay,
                       extra={"action": "reconnect", "retry_seconds": delay})
        self.scheduler.add_job(self._run, "date", args=[self.jobs], id="reconnect",
                               run_date=dt.datetime.now(self.tz) + dt.timedelta(seconds=delay),
                               replace_existing=True, misfire_grace_time=None)

    def _hold_presence(self) -> None:
        """(Re)take this service's shared lock per job, after a lost connection too."""
        if self._presence is not None and not (self._presence.closed or self._presence.broken):
            try:
                self._presence.execute("SELECT 1")
                return
            except psycopg.Error:
                self._presence.close()
        try:
            conn = self.flow.connect(autocommit=True)
            for job in self.jobs:
                conn.execute(sqlfiles.query("presence_lock", "metrics"), {"job": job.name})
        except (PgmlFlowError, psycopg.Error) as exc:
            logger.warning("cannot mark the jobs as scheduled in the database (retried at the "
                           "next run): %s", exc, extra={"action": "presence_failed"})
            self._presence = None
            return
        self._presence = conn

    def collect(self) -> Iterator[Any]:
        """The service's own metric (a prometheus_client collector)."""
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("pgml_flow_scheduler_last_run_timestamp_seconds",
                                   "When this scheduler service last finished a run of its "
                                   "due jobs (Unix time)")
        if self.last_run is not None:
            family.add_metric([], self.last_run)
        yield family

    def describe(self) -> list[Any]:
        return []

    def start(self) -> None:
        """Block until SIGTERM/SIGINT."""
        for job in self.jobs:
            self.scheduler.add_job(self._run, trigger(job.schedule, self.tz), args=[[job]],
                                   id=job.name, coalesce=True, max_instances=1,
                                   misfire_grace_time=None)
        self.scheduler.add_job(self._run, "interval", seconds=self.sweep_seconds,
                               args=[self.jobs], id="sweep", coalesce=True, max_instances=1,
                               next_run_time=dt.datetime.now(self.tz))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        exporter = None
        if self.metrics_port is not None:
            from pgml_flow.exporter import Exporter

            exporter = Exporter(self.flow, role="scheduler", extra=[self])
            exporter.start(self.metrics_host, self.metrics_port)
        self._hold_presence()
        now = dt.datetime.now(dt.UTC)
        logger.info("scheduler started: %d jobs, sweep every %d s, time zone %s",
                    len(self.jobs), self.sweep_seconds, self.tz,
                    extra={"action": "scheduler_start"})
        for job in self.jobs:
            nxt = next_slot(job, now, self.tz)
            logger.info("job %s: schedule '%s', next run %s", job.name, job.schedule,
                        "never" if nxt is None else f"{nxt:%Y-%m-%d %H:%M} UTC",
                        extra={"action": "job_scheduled", "job": job.name})
        try:
            self.scheduler.start()
        finally:
            if exporter is not None:
                exporter.stop()
            if self._presence is not None:
                self._presence.close()
            logger.info("scheduler stopped", extra={"action": "scheduler_stop"})

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            return  # already stopping (a second signal: the process group's)
        logger.info("stopping on signal %s", signum, extra={"action": "scheduler_stop"})
        self.stop.set()
        # shut down from another thread: waiting here would block the signal handler
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}).start()


def _names(jobs: Sequence[Job]) -> str:
    return ", ".join(j.name for j in jobs) if len(jobs) <= 3 else f"{len(jobs)} jobs"
