"""Migrations: upgrade, round trip, idempotent SQL, and the shape of the schema."""

from __future__ import annotations

import psycopg

from pgml_flow import migrate
from tests.conftest import flow_for
from tests.schema_dump import dump_schema, table_names

TENANT_TABLES = ("issuetypes", "repositories", "issues", "pull_requests",
                 "ml_prediction_log", "ml_retraining_events")
PARTIAL_INDEXES = ("issues_trajectory_idx", "issues_complexity_idx",
                   "pull_requests_rework_idx", "ml_prediction_log_recent_idx")


def test_round_trip_and_idempotent_sql(empty_db_url: str) -> None:
    flow = flow_for(empty_db_url)
    assert flow.upgrade() == migrate.head_revision()
    at_head = dump_schema(empty_db_url)
    assert "CREATE TABLE public.issues" in at_head
    assert "pgml_flow.refresh_training_summary" in at_head

    assert flow.downgrade("base") is None
    assert table_names(empty_db_url) <= {"alembic_version"}

    flow.upgrade()
    assert dump_schema(empty_db_url) == at_head, "downgrade base + upgrade head must round-trip"

    migrate.apply_idempotent(empty_db_url)
    migrate.apply_idempotent(empty_db_url)
    assert dump_schema(empty_db_url) == at_head, "re-applying sql/idempotent must change nothing"


def test_step_by_step_equals_straight_to_head(empty_db_url: str, db_url: str) -> None:
    flow = flow_for(empty_db_url)
    for revision in ("0001_core_tables", "0002_partial_indexes", "0003_training_summary"):
        flow.upgrade(revision)
    flow.upgrade("head")
    assert dump_schema(empty_db_url) == dump_schema(db_url)


def test_partial_indexes_are_valid_and_partial(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT c.relname, i.indisvalid, pg_get_expr(i.indpred, i.indrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE c.relname = ANY(%s)""",
        (list(PARTIAL_INDEXES),),
    ).fetchall()
    found = {name: (valid, predicate) for name, valid, predicate in rows}
    assert set(found) == set(PARTIAL_INDEXES)
    for name, (valid, predicate) in found.items():
        assert valid, name
        assert predicate and predicate.lstrip("(").startswith("active"), (name, predicate)


def test_client_id_leads_every_key(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT cl.relname, con.conname, con.contype, a.attname
             FROM pg_constraint con
             JOIN pg_class cl ON cl.oid = con.conrelid
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
            WHERE con.contype IN ('p', 'f') AND cl.relname = ANY(%s)""",
        (list(TENANT_TABLES),),
    ).fetchall()
    assert len(rows) >= 12
    offenders = [(t, c) for t, c, _, first in rows if first != "client_id"]
    assert offenders == []


def test_refresh_function_and_unique_index(conn: psycopg.Connection) -> None:
    unique = conn.execute(
        "SELECT indisunique FROM pg_index WHERE indexrelid = 'mv_ml_training_summary_key'::regclass"
    ).fetchone()
    assert unique == (True,)
    conn.execute("SELECT pgml_flow.refresh_training_summary()")
    conn.execute("SELECT pgml_flow.refresh_training_summary(false)")
