"""The kill switch and the rollout of models to clients (``pgml-flow rollout``).

The state lives in tables (revision ``0011_rollout``) that the BI surface reads on every
query (``pgml_flow.rollout_state``, ``sql/idempotent/260_rollout.sql``): nothing is cached,
so a flip changes the next query of a BI connection that is already open, and a disabled
model makes the analytics views return NULL predictions with ``serving_state`` and
``serving_reason`` saying why, never an error that breaks a dashboard.  Only the operator
(a superuser or a member of ``pgml_flow_ml``) may flip: BI logins can neither execute
``pgml_flow.set_rollout`` nor write the tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.database import error_text
from pgml_flow.errors import ClientNotFound, ConfigurationError

SOURCE = "rollout"
#: what a switch may say; ``clear`` removes it
STATES = ("enabled", "shadow", "disabled", "clear")


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def bucket(client_id: int, key: str) -> int:
    """The client's bucket 0..99 for ``key`` (a model; ``model|item`` for a split test):
    ``pgml_flow.rollout_bucket``'s md5, so that Python and SQL always agree."""
    digest = hashlib.md5(f"{client_id}|{key}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


def set_switch(conn: psycopg.Connection, state: str, *, model: str = "*",
               client_id: int | None = None, percent: int | None = None,
               reason: str | None = None) -> str | None:
    """Set (or with ``clear`` remove) one switch; committed.  ``model`` ``*``: every
    model; ``client_id`` None: every client; ``percent``: the model's rollout."""
    if state not in STATES:
        raise ConfigurationError(f"unknown rollout state {state!r}; one of {', '.join(STATES)}")
    try:
        row = conn.execute(_query("set_rollout"), {
            "state": state, "model": model, "client_id": client_id, "percent": percent,
            "reason": reason}).fetchone()
    except psycopg.errors.ForeignKeyViolation as exc:
        conn.rollback()
        raise ClientNotFound(f"client {client_id} does not exist; see the clients table") \
            from exc
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.UndefinedObject) as exc:
        conn.rollback()
        raise ConfigurationError(error_text(exc)) from exc
    conn.commit()
    return None if row is None else row[0]


def status(conn: psycopg.Connection, client_ids: Sequence[int] | None = None,
           model: str | None = None) -> list[dict[str, Any]]:
    """Per client and served model: the state the BI surface applies now, and why."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("rollout_status"), {
            "client_ids": list(client_ids) if client_ids is not None else None,
            "model": model}).fetchall()


def switches(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every switch that is set (global ones first)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("rollout_switches")).fetchall()
