"""Migrations: upgrade, round trip, idempotent SQL, and the shape of the schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgml_flow import migrate
from pgml_flow.errors import ConfigurationError, MigrationError
from tests.conftest import flow_for
from tests.schema_dump import dump_schema, table_names

TENANT_TABLES = ("issuetypes", "repositories", "issues", "pull_requests",
                 "ml_prediction_log", "ml_retraining_events")
PARTIAL_INDEXES = ("issues_trajectory_idx", "issues_complexity_idx",
                   "pull_requests_rework_idx", "ml_prediction_log_recent_idx",
                   "issues_open_idx")


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


def test_open_issues_index_serves_the_feature_view(conn: psycopg.Connection) -> None:
    """issues_open_idx (0016) is only worth its writes if the planner can prove it applies
    to complexity_features' is_open: a change of either predicate alone would leave every
    BI read of a large client a sequential scan of all clients' issues again, silently.
    With sequential scans priced out (the test's tables are tiny) one client's open rows
    come from that index, and the heap rows are not tested against the predicate again."""
    try:
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT entity_id FROM pgml_flow.complexity_features"
            " WHERE client_id = 1 AND is_open").fetchall())
        assert "Index Scan using issues_open_idx" in plan, plan
        assert "status_category" not in plan and "active" not in plan, plan
    finally:
        conn.rollback()


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


# -- downgrade: target checked first, one transaction, never CASCADE ---------------------------
PGML_FLOW = str(Path(sys.executable).parent / "pgml-flow")
HEAD = migrate.head_revision()
#: every revision, newest first
CHAIN = migrate.revisions()
BELOW = CHAIN[1]


def state(url: str) -> tuple[str | None, str, int, list[str]]:
    """What a refused downgrade must leave exactly as it was."""
    with psycopg.connect(url) as conn:
        policies = conn.execute("SELECT count(*) FROM pg_policies").fetchone()[0]
        schemas = [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname IN "
            "('analytics', 'pgml', 'pgml_flow', 'pgml_flow_training') ORDER BY 1").fetchall()]
    return migrate.current_revision(url), dump_schema(url), policies, schemas


def cli(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGML_FLOW, *args], capture_output=True, text=True, check=False,
                          env={**env, "DATABASE_URL": url, "COLUMNS": "200"}, timeout=300)


def test_downgrade_to_an_unknown_revision_changes_nothing(db_url: str,
                                                          cli_env: dict[str, str]) -> None:
    before = state(db_url)
    assert before[0] == HEAD and before[2] > 0 and len(before[3]) == 4
    with pytest.raises(ConfigurationError, match=f"unknown revision 'typo'.*valid downgrade "
                       f"targets: {BELOW}, .*0001_core_tables, base, or -1 to -{len(CHAIN)}"):
        flow_for(db_url).downgrade("typo")
    assert state(db_url) == before

    proc = cli(db_url, cli_env, "db", "downgrade", "typo")
    assert proc.returncode == 2, proc
    assert "unknown revision 'typo'" in proc.stderr and "Traceback" not in proc.stderr
    assert state(db_url) == before
    status = json.loads(cli(db_url, cli_env, "db", "status", "--json").stdout)
    assert status["schema_revision"] == status["head_revision"] == HEAD
    # one past base, and an upgrade's typo, are refused the same way
    proc = cli(db_url, cli_env, "db", "downgrade", f"-{len(CHAIN) + 1}")
    assert proc.returncode == 2, proc
    assert f"{len(CHAIN)} revision(s) to undo" in proc.stderr, proc.stderr
    proc = cli(db_url, cli_env, "db", "upgrade", "typo")
    assert proc.returncode == 2 and "unknown revision 'typo'" in proc.stderr, proc.stderr
    assert state(db_url) == before


def test_downgrade_refuses_a_no_op_and_an_upgrade(db_url: str) -> None:
    flow = flow_for(db_url)
    for target in (HEAD, "head", HEAD[:4]):
        with pytest.raises(ConfigurationError, match=f"already at {HEAD}.*would do nothing"):
            flow.downgrade(target)
    assert flow.downgrade("-1") == BELOW
    with pytest.raises(ConfigurationError, match=f"{HEAD} is above the current revision "
                       f"{BELOW}: that is an upgrade"):
        flow.downgrade(HEAD)
    with pytest.raises(ConfigurationError, match="0003_training_summary is below the current "
                       f"revision {BELOW}: that is a downgrade"):
        flow.upgrade("0003")
    assert flow.upgrade() == HEAD


def test_an_object_of_the_user_blocks_the_downgrade_and_nothing_changes(
    db_url: str, cli_env: dict[str, str]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.my_points AS "
                     "SELECT * FROM analytics.issue_story_points")
    before = state(db_url)
    with pytest.raises(MigrationError, match=r"downgrade to base refused: .*view my_points "
                       r"depends on view analytics\.issue_story_points.*nothing was changed: "
                       f"the schema is still at {HEAD}"):
        flow_for(db_url).downgrade("base")
    assert state(db_url) == before
    proc = cli(db_url, cli_env, "db", "downgrade", "-1")
    assert proc.returncode == 5 and "view my_points depends on" in proc.stderr, proc.stderr
    assert state(db_url) == before

    # a view on a pgml table: the failure comes at revision 0004, after the idempotent
    # schemas, 0006 and 0005 were undone in the same transaction; all of it is rolled back
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP VIEW public.my_points")
        conn.execute("CREATE VIEW public.my_models AS SELECT id, algorithm FROM pgml.models")
    before = state(db_url)
    with pytest.raises(MigrationError, match=r"view my_models depends on table pgml\.models"):
        flow_for(db_url).downgrade("0003_training_summary")
    assert state(db_url) == before
    assert migrate.current_revision(db_url) == HEAD


def test_downgrade_drops_what_pgml_flow_made_and_upgrades_again(db_url: str) -> None:
    """Everything in pgml-flow's schemas goes without CASCADE: training views, toy data
    sets, models, the native scorer extension; the tables of the tenants stay at 0005."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pgml.load_dataset('iris')")
        conn.execute("SELECT * FROM pgml.train('iris_downgrade', 'classification', "
                     "'pgml.iris', 'target', 'xgboost', hyperparams => '{\"n_estimators\": 3}')")
        conn.execute("CREATE VIEW pgml_flow_training.rework__client_9 AS "
                     "SELECT * FROM pgml_flow.rework_training WHERE client_id = 9")
    at_head = dump_schema(db_url)
    flow = flow_for(db_url)
    assert flow.downgrade("0005") == "0005_client_models"
    assert state(db_url)[2:] == (0, ["pgml"])
    assert flow.downgrade("base") is None
    assert table_names(db_url) <= {"alembic_version"}
    assert flow.upgrade() == HEAD
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT pgml.load_dataset('iris')")
        conn.execute("CREATE VIEW pgml_flow_training.rework__client_9 AS "
                     "SELECT * FROM pgml_flow.rework_training WHERE client_id = 9")
        conn.commit()
    assert dump_schema(db_url) == at_head


# -- the analytics surface: described, double precision, upgraded without CASCADE -----------
def test_every_analytics_column_has_a_comment_and_no_real(conn: psycopg.Connection) -> None:
    """An analyst reads each column's unit in its comment; numbers are never real."""
    columns = conn.execute(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), d.description
             FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             LEFT JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = a.attnum
                                       AND d.classoid = 'pg_class'::regclass
            WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind IN ('v', 'm', 'r')
            ORDER BY 1, a.attnum""").fetchall()
    assert {c[0] for c in columns} >= {
        "issue_story_points", "epic_forecasts", "pull_request_rework_risk", "model_quality",
        "training_summary", "prediction_log", "retraining_events"}
    assert [c[:2] for c in columns if not (c[3] or "").strip()] == []
    assert [c[:3] for c in columns if c[2] == "real"] == []
    results = conn.execute("SELECT oid::regprocedure::text, pg_get_function_result(oid)"
                           "  FROM pg_proc WHERE pronamespace = 'analytics'::regnamespace"
                           ).fetchall()
    assert results and [r for r in results if re.search(r"\breal\b", r[1])] == []


#: the analytics objects of the previous release, in their shape (predictions as real,
#: training_summary's target_avg in each model's unit): what an upgrade finds
OLD_ANALYTICS = """
DROP VIEW analytics.issue_story_points, analytics.epic_forecasts,
          analytics.pull_request_rework_risk, analytics.training_summary;
DROP FUNCTION analytics.predictions(text, boolean);
CREATE FUNCTION analytics.predictions(model_name text)
RETURNS TABLE(client_id bigint, model text, entity_id bigint, prediction real,
              probability real, model_id bigint, model_trained_at timestamptz)
LANGUAGE sql AS $$ SELECT NULL::bigint, NULL::text, NULL::bigint, NULL::real, NULL::real,
                          NULL::bigint, NULL::timestamptz WHERE false $$;
CREATE VIEW analytics.issue_story_points AS
SELECT p.client_id, p.entity_id AS issue_id, p.prediction AS predicted_story_points
  FROM analytics.predictions('complexity') p;
CREATE VIEW analytics.training_summary AS
SELECT client_id, model_type, training_records, latest_data, target_avg, target_stddev
  FROM public.mv_ml_training_summary;
DROP VIEW analytics.model_quality;
DROP FUNCTION analytics.model_quality_rows();
CREATE FUNCTION analytics.model_quality_rows()
RETURNS TABLE(client_id bigint, model_name text, performance_threshold real)
LANGUAGE sql AS $$ SELECT NULL::bigint, NULL::text, NULL::real WHERE false $$;
CREATE VIEW analytics.model_quality AS SELECT * FROM analytics.model_quality_rows();
"""


def test_upgrade_retypes_analytics_and_never_drops_a_users_view(db_url: str,
                                                                empty_db_url: str) -> None:
    """Columns that change type need DROP + CREATE: done for pgml-flow's own objects only.

    A view of the user's on one of them stops the upgrade, naming it, and nothing changes;
    without it the upgrade ends at exactly the head schema (grants and comments included);
    a user's view on the new views survives every later upgrade.
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(OLD_ANALYTICS)
        conn.execute("CREATE VIEW public.my_points AS SELECT * FROM analytics.issue_story_points")
        conn.execute("CREATE VIEW public.my_summary AS SELECT * FROM analytics.training_summary")
    for view, mine in (("issue_story_points", "my_points"), ("training_summary", "my_summary")):
        before = dump_schema(db_url)
        with pytest.raises(MigrationError, match=rf"cannot upgrade view analytics\.{view}: this "
                           rf"pgml-flow changes its columns.*view public\.{mine} depends on"):
            migrate.apply_idempotent(db_url)
        assert dump_schema(db_url) == before, "a refused upgrade changes nothing"
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP VIEW public.{mine}")
    migrate.apply_idempotent(db_url)
    flow_for(empty_db_url).upgrade()
    assert dump_schema(db_url) == dump_schema(empty_db_url)

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.my_points AS"
                     " SELECT issue_key, round(predicted_story_points::numeric, 1) AS points"
                     "   FROM analytics.issue_story_points")
        conn.execute("CREATE VIEW public.my_risk AS SELECT * FROM analytics.predictions('rework')")
    at_head = dump_schema(db_url)
    migrate.apply_idempotent(db_url)
    assert dump_schema(db_url) == at_head
