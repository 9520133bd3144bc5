"""Run a scheduled retrain inside the server: ``SELECT pgml_flow.run_job('retrain:<model>')``.

This is what pg_cron's retrain jobs call (``pgml-flow cron install``), so that an operator
who wants no Python process outside the database still gets the whole retraining run:
claim, decide, challenger against champion, promotion, one event per client, webhook.

Why a loopback connection: a SQL function runs in its caller's single transaction, but a
retraining run must commit each client on its own (a crash keeps the clients already done,
and their events carry the job run id so a retry skips them), and must hold the slot's
session advisory lock for as long as it runs (see :mod:`scheduler.runner`).  So the
function opens a connection to its own database — over the server's unix socket and port,
as the calling role, as ``dblink`` does — and runs exactly the code of ``pgml-flow
scheduler run --once`` restricted to that one job.  The calling statement only waits.

The slot is the job's latest cron time at or before ``now()`` in UTC (pg_cron's clock), so
a pg_cron run and a scheduler replica configured for the same job claim the same slot and
it still runs once.  Specs come from ``ml_model_registry`` (``cron install`` registers every
spec it schedules, user specs included), not from files the server may not be able to read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from typing import Any

import psycopg

from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError, JobFailed
from pgml_flow.retraining import RetrainOptions
from pgml_flow.settings import Settings
from pgml_models.specs import ModelSpec, parse_spec
from scheduler.jobs import Job, jobs
from scheduler.runner import JobOutcome, run_once

#: custom setting with a libpq conninfo for the loopback connection (when the default, the
#: server's own unix socket as the calling role, cannot authenticate)
LOOPBACK_SETTING = "pgml_flow.loopback_conninfo"


def loopback_conninfo(plpy: Any) -> str:
    """How this backend reaches its own database: the setting, else socket + port + role."""
    row = plpy.execute(
        "SELECT current_database() AS dbname, session_user AS usr, "
        "current_setting('port') AS port, "
        "current_setting('unix_socket_directories') AS sockets, "
        f"current_setting('{LOOPBACK_SETTING}', true) AS override")[0]
    if row["override"]:
        params = psycopg.conninfo.conninfo_to_dict(row["override"])
        params.setdefault("dbname", row["dbname"])
    else:
        sockets = [s.strip() for s in (row["sockets"] or "").split(",") if s.strip()]
        params = {"host": sockets[0] if sockets else "localhost", "port": row["port"],
                  "user": row["usr"], "dbname": row["dbname"]}
    params["application_name"] = "pgml-flow in-database job"
    return psycopg.conninfo.make_conninfo("", **params)


def registered_specs(plpy: Any) -> dict[str, ModelSpec]:
    """The model specs recorded in ``ml_model_registry`` (by training and ``cron install``)."""
    rows = plpy.execute("SELECT model_name, spec::text AS spec FROM public.ml_model_registry")
    specs = {}
    for row in rows:
        body = json.loads(row["spec"])
        body.pop("name", None)
        specs[row["model_name"]] = parse_spec(row["model_name"], body,
                                              source="ml_model_registry")
    return specs


def retrain_job(specs: dict[str, ModelSpec], name: str) -> Job:
    """The scheduled job ``name`` (``retrain:<model>``) of the registered specs."""
    by_name = {job.name: job for job in jobs(specs, environ={}) if job.kind == "retrain"}
    if name not in by_name:
        if name.startswith("refresh:"):
            raise ConfigurationError(
                f"{name} is a refresh: run SELECT pgml_flow.refresh_materialized_view"
                f"('{name.removeprefix('refresh:')}') instead (what `pgml-flow cron install` "
                "registers)")
        if name.startswith("prune:"):
            raise ConfigurationError(
                f"{name} is the prediction log's retention: run CALL "
                "pgml_flow.prune_prediction_log() instead (what `pgml-flow cron install` "
                "registers)")
        known = ", ".join(sorted(by_name)) or "none"
        raise ConfigurationError(
            f"no scheduled job {name!r} in this database; registered retrain jobs: {known} "
            "(`pgml-flow cron install` or `pgml-flow train` registers a model's spec)")
    return by_name[name]


def run_job(plpy: Any, name: str, margin: float | None = None,
            webhook_url: str | None = None, keep_challengers: int | None = None,
            now: dt.datetime | None = None) -> str:
    """Run the due slot of one retrain job, as ``pgml-flow scheduler run --once`` would.

    Returns the outcome in words; raises (so pg_cron records the run as failed) when the
    job failed.
    """
    # first: a bad argument (a NaN margin, say) is refused before anything is looked up
    options = RetrainOptions(margin=0.0 if margin is None else margin,
                             webhook_url=webhook_url or None,
                             keep_challengers=3 if keep_challengers is None else keep_challengers)
    specs = registered_specs(plpy)
    job = retrain_job(specs, name)
    settings = dataclasses.replace(Settings.from_env({}), database_url=loopback_conninfo(plpy))
    flow = PgmlFlow(settings, specs=specs)
    pid = plpy.execute("SELECT pg_backend_pid() AS pid")[0]["pid"]
    outcomes = run_once(flow, now=now, jobs=[job], tz=dt.UTC, options=options,
                        claimed_by=f"pg_cron:{os.uname().nodename}:{pid}")
    return summary(name, outcomes)


def summary(name: str, outcomes: list[JobOutcome]) -> str:
    """The outcome of each slot run, '; '-separated; raises :class:`JobFailed` if one failed."""
    if not outcomes:
        return f"{name}: no slot due"
    lines = [f"{o.job} {o.slot:%Y-%m-%d %H:%M} UTC {o.status}: {o.detail}" for o in outcomes]
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise JobFailed("; ".join(lines))
    return "; ".join(lines)
