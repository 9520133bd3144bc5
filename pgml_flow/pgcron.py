"""The in-database alternative to the scheduler: the same jobs as pg_cron jobs.

``pgml-flow cron install`` registers, in pg_cron (which keeps its jobs in the database named
by ``cron.database_name``), one job per scheduled job of :mod:`scheduler.jobs`, running in
pgml-flow's database:

* ``refresh:<view>`` runs ``SELECT pgml_flow.refresh_materialized_view('<view>')``: the
  refresh happens entirely in the database;
* ``prune:public.ml_prediction_log`` runs ``CALL pgml_flow.prune_prediction_log()`` (the
  prediction log's retention, in batches it commits one by one);
* ``retrain:<model>`` runs ``SELECT pgml_flow.run_job('retrain:<model>', margin, webhook)``:
  the whole retraining run (claim the slot, decide per client, challenger against champion,
  promotion, events, webhook) inside the server, through the code of ``pgml-flow scheduler
  run --once`` (see :mod:`scheduler.in_database`).  The margin and webhook are the ones
  ``cron install`` was given (``PGML_FLOW_PROMOTION_MARGIN``, ``PGML_FLOW_WEBHOOK_URL``),
  and the specs it schedules are registered in ``ml_model_registry`` for the server to read.

Job names are ``pgml-flow:<database>:<job>`` (hashed to fit 63 bytes), so several pgml-flow
databases can share a pg_cron installation; ``remove`` and ``list`` see only this database's jobs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgml_flow import database, sqlfiles
from pgml_flow.errors import ConfigurationError
from pgml_flow.retraining import RetrainOptions
from scheduler.jobs import Job

SOURCE = "pgcron"


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def command(job: Job, options: RetrainOptions | None = None) -> str:
    """The SQL a pg_cron job runs for ``job`` (``options``: margin and webhook of retrains)."""
    if job.kind == "refresh":
        return f"SELECT pgml_flow.refresh_materialized_view({_literal(job.target)})"
    if job.kind == "prune":
        return "CALL pgml_flow.prune_prediction_log()"
    if job.kind == "drift":
        return "SELECT count(*) FROM pgml_flow.check_drift()"
    options = options or RetrainOptions()
    webhook = _literal(options.webhook_url) if options.webhook_url else "NULL"
    return (f"SELECT pgml_flow.run_job({_literal(job.name)}, margin => {float(options.margin)!r}, "
            f"webhook_url => {webhook}, keep_challengers => {int(options.keep_challengers)})")


def _literal(text: str) -> str:
    """A SQL string literal (pg_cron stores the command as text, there are no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _target(url: str) -> tuple[str, str]:
    """(pgml-flow's database name, a URL of the cron database)."""
    with database.session(url) as conn:
        row = conn.execute("SELECT current_database(), "
                           "current_setting('cron.database_name', true)").fetchone()
    assert row is not None
    name, cron_db = str(row[0]), row[1]
    if not cron_db:
        raise ConfigurationError(
            "pg_cron is not loaded by this server: add shared_preload_libraries = 'pg_cron' "
            "and cron.database_name to postgresql.conf (Debian: postgresql-15-cron), restart, "
            "or use `pgml-flow scheduler run` instead")
    return name, database.with_dbname(url, cron_db)


def prefix(database_name: str) -> str:
    return f"pgml-flow:{database_name}:"


def job_name(database_name: str, job: Job) -> str:
    """``pgml-flow:<database>:<job>``, shortened with a hash to fit pg_cron's 63 bytes."""
    name = prefix(database_name) + job.name
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.md5(name.encode()).hexdigest()[:8]
    return name.encode()[:54].decode(errors="ignore") + "~" + digest


def install(url: str, jobs: Sequence[Job], host: str | None = None,
            options: RetrainOptions | None = None) -> list[dict[str, Any]]:
    """Create pg_cron if needed and (re)register every job; returns the installed jobs.

    pg_cron runs each job over a libpq connection to ``cron.host`` (default localhost, TCP).
    ``host`` overrides that per job; when pgml-flow itself connects through a unix socket
    (the embedded cluster), the jobs use the same socket directory and port.
    """
    name, cron_url = _target(url)
    params = psycopg.conninfo.conninfo_to_dict(url)
    port = int(params.get("port") or 5432)
    if host is None and str(params.get("host", "")).startswith("/"):
        host = str(params["host"])
    with database.session(cron_url, autocommit=True) as conn:
        conn.execute(_query("create_extension"))
        conn.execute(_query("unschedule"), {"prefix": prefix(name)})
        for job in jobs:
            conn.execute(_query("schedule"), {"name": job_name(name, job),
                                              "schedule": job.schedule,
                                              "command": command(job, options),
                                              "database": name})
        if host:
            conn.execute(_query("set_node"), {"prefix": prefix(name), "host": host,
                                              "port": port})
    return list_jobs(url)


def remove(url: str) -> int:
    name, cron_url = _target(url)
    with database.session(cron_url, autocommit=True) as conn:
        if not _has_cron(conn):
            return 0
        return len(conn.execute(_query("unschedule"), {"prefix": prefix(name)}).fetchall())


def list_jobs(url: str) -> list[dict[str, Any]]:
    name, cron_url = _target(url)
    with database.session(cron_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        if not _has_cron(conn):
            return []
        return cur.execute(_query("jobs"), {"prefix": prefix(name)}).fetchall()


def history(url: str, limit: int = 50) -> list[dict[str, Any]]:
    """pg_cron's runs of this database's jobs (cron.job_run_details), newest first."""
    name, cron_url = _target(url)
    with database.session(cron_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        if not _has_cron(conn):
            return []
        return cur.execute(_query("history"), {"prefix": prefix(name), "limit": limit}).fetchall()


def _has_cron(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('cron.job') IS NOT NULL").fetchone()
    return bool(row and row[0])
