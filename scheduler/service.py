"""The long-running scheduler: APScheduler cron triggers calling :func:`run_once`.

Each job gets a cron trigger; when it fires, the service runs that job's due slot through
:func:`scheduler.runner.run_once` (claim, advisory lock, exactly once across replicas).  At
start, and every ``sweep_seconds`` after, it also runs whatever is due or open (missed
slots while it was down, slots requested by pg_cron, slots a crashed replica left).

SIGTERM and SIGINT stop it gracefully: no new job starts, a retrain in hand finishes the
client it is training (its transaction commits or rolls back as a whole), the job is
marked ``interrupted`` and the next run resumes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Sequence
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from pgml_flow.retraining import RetrainOptions
from scheduler.jobs import Job, trigger
from scheduler.runner import JobOutcome, run_once

logger = logging.getLogger(__name__)


class Service:
    def __init__(self, flow: Any, jobs: Sequence[Job], tz: dt.tzinfo,
                 options: RetrainOptions, *, sweep_seconds: int = 300) -> None:
        self.flow = flow
        self.jobs = list(jobs)
        self.tz = tz
        self.options = options
        self.sweep_seconds = sweep_seconds
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.scheduler = BlockingScheduler(timezone=tz)

    def _run(self, jobs: Sequence[Job]) -> list[JobOutcome]:
        if self.stop.is_set():
            return []
        with self._lock:  # one job at a time per process; replicas add parallelism
            return run_once(self.flow, jobs=jobs, tz=self.tz, options=self.options,
                            should_stop=self.stop.is_set)

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
        logger.info("scheduler started", extra={"action": "scheduler_start"})
        self.scheduler.start()

    def _on_signal(self, signum: int, frame: Any) -> None:
        logger.info("stopping on signal %s", signum, extra={"action": "scheduler_stop"})
        self.stop.set()
        # shut down from another thread: waiting here would block the signal handler
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}).start()
