"""Scheduled jobs and their slots.

A job is ``retrain:<model>`` (the retrain check of one model spec for every active client,
on the spec's ``retraining.schedule``), ``refresh:<view>`` (``REFRESH MATERIALIZED VIEW
CONCURRENTLY``; the training summary hourly by default) or
``prune:public.ml_prediction_log`` (the prediction log's retention, hourly by default) or
``drift:check`` (``pgml_flow.check_drift()``: drift of every client's deployed models, stored
for the retraining decision and the monitoring views; hourly at :30 by default).  A
*slot* is one cron time of a job; a slot runs at most once (``ml_job_runs`` has one row per
job and slot).

Missed-run policy: when the scheduler was down over several slots of a job, only the most
recent one runs (the others are coalesced into it), as soon as the scheduler is back.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pgml_flow.errors import ConfigurationError

if TYPE_CHECKING:  # imported where used: the CLI imports this module for its constants
    from apscheduler.triggers.cron import CronTrigger

    from pgml_models.specs import ModelSpec

#: the training summary's refresh schedule (cron)
SUMMARY_ENV = "PGML_FLOW_SUMMARY_REFRESH"
SUMMARY_SCHEDULE = "0 * * * *"
SUMMARY_VIEW = "public.mv_ml_training_summary"
#: the prediction log's retention (pgml_flow.prune_prediction_log): its schedule (cron)
PRUNE_ENV = "PGML_FLOW_LOG_PRUNE_SCHEDULE"
PRUNE_SCHEDULE = "15 * * * *"
PRUNE_TABLE = "public.ml_prediction_log"
#: the drift check (pgml_flow.check_drift): its schedule (cron)
DRIFT_ENV = "PGML_FLOW_DRIFT_SCHEDULE"
DRIFT_SCHEDULE = "30 * * * *"
#: more materialized views to refresh: "schema.view=cron expression;..."
REFRESH_ENV = "PGML_FLOW_REFRESH_VIEWS"
#: time zone the cron expressions are read in
TIMEZONE_ENV = "PGML_FLOW_SCHEDULER_TZ"
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_VIEW = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_LOOKBACK = (dt.timedelta(days=8), dt.timedelta(days=63), dt.timedelta(days=800))


@dataclass(frozen=True)
class Job:
    #: retrain:<model>, refresh:<view>, prune:<table> or drift:check
    name: str
    kind: str
    #: the model (retrain), the materialized view (refresh) or the table (prune)
    target: str
    schedule: str


def jobs(specs: Mapping[str, ModelSpec], environ: Mapping[str, str] | None = None) -> list[Job]:
    """Every job: a retrain per spec, the summary refresh, the prediction log's prune, the
    views of PGML_FLOW_REFRESH_VIEWS."""
    env = os.environ if environ is None else environ
    found = [Job(f"retrain:{s.name}", "retrain", s.name, s.retraining.schedule)
             for s in specs.values()]
    found.append(Job(f"refresh:{SUMMARY_VIEW}", "refresh", SUMMARY_VIEW,
                     env.get(SUMMARY_ENV) or SUMMARY_SCHEDULE))
    found.append(Job(f"prune:{PRUNE_TABLE}", "prune", PRUNE_TABLE,
                     env.get(PRUNE_ENV) or PRUNE_SCHEDULE))
    found.append(Job("drift:check", "drift", "check", env.get(DRIFT_ENV) or DRIFT_SCHEDULE))
    for entry in filter(None, (e.strip() for e in env.get(REFRESH_ENV, "").split(";"))):
        view, _, schedule = entry.partition("=")
        if not _VIEW.match(view.strip()) or not schedule.strip():
            raise ConfigurationError(f"{REFRESH_ENV} entries are 'schema.view=cron', got {entry!r}")
        found.append(Job(f"refresh:{view.strip()}", "refresh", view.strip(), schedule.strip()))
    for job in found:
        trigger(job.schedule, dt.UTC)  # fail early on a bad expression
    return found


def timezone(name: str | None = None) -> ZoneInfo:
    name = name or os.environ.get(TIMEZONE_ENV) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown time zone {name!r} ({TIMEZONE_ENV}); use an IANA "
                                 "name like 'UTC' or 'Europe/Paris'") from None


def trigger(expression: str, tz: dt.tzinfo) -> CronTrigger:
    """A 5-field cron expression as an APScheduler trigger, with cron's day numbers.

    APScheduler counts weekdays from Monday = 0; cron from Sunday = 0 (and 7), so the
    day-of-week field is translated to day names.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ConfigurationError(f"{expression!r} is not a 5-field cron expression")
    minute, hour, day, month, dow = fields
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_day_names(dow), timezone=tz)
    except ValueError as exc:
        raise ConfigurationError(f"invalid cron expression {expression!r}: {exc}") from None


def _day_names(field: str) -> str:
    def name(part: str) -> str:
        if not part.isdigit() or int(part) > 7:
            raise ConfigurationError(f"day of week {part!r}: use 0-7 (0 and 7 are Sunday)")
        return _DAYS[int(part)]

    out = []
    for item in field.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            out.append(item)
            continue
        low, _, high = base.partition("-")
        text = name(low) + (f"-{name(high)}" if high else "")
        out.append(text + (f"/{step}" if step else ""))
    return ",".join(out)


def latest_slot(job: Job, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime | None:
    """The most recent cron time of ``job`` at or before ``now`` (None if none in ~2 years)."""
    cron = trigger(job.schedule, tz)
    for lookback in _LOOKBACK:
        latest = None
        fire = cron.get_next_fire_time(None, now - lookback)
        while fire is not None and fire <= now:
            latest = fire
            fire = cron.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
        if latest is not None:
            return latest.astimezone(dt.UTC)
    return None


def next_slot(job: Job, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime | None:
    fire = trigger(job.schedule, tz).get_next_fire_time(None, now + dt.timedelta(seconds=1))
    return None if fire is None else fire.astimezone(dt.UTC)
