"""Partial indexes for trajectory, complexity, rework and prediction-log reads, built CONCURRENTLY.

Revision ID: 0002_partial_indexes
Revises: 0001_core_tables
"""

from alembic import op
from psycopg import sql

from pgml_flow.migrate import run_sql_file

revision = "0002_partial_indexes"
down_revision = "0001_core_tables"
branch_labels = None
depends_on = None

_INDEXES = (
    "issues_trajectory_idx",
    "issues_complexity_idx",
    "pull_requests_rework_idx",
    "ml_prediction_log_recent_idx",
)


def upgrade() -> None:
    # A CONCURRENTLY build that was interrupted leaves an INVALID index behind, which
    # IF NOT EXISTS would keep forever: drop such leftovers first.
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        for name in _INDEXES:
            invalid = bind.exec_driver_sql(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %(name)s AND NOT i.indisvalid",
                {"name": name},
            ).first()
            if invalid:
                statement = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    sql.Identifier(name)
                )
                bind.exec_driver_sql(statement.as_string(bind.connection.driver_connection))
    run_sql_file("0002_partial_indexes.upgrade.sql", autocommit=True)


def downgrade() -> None:
    run_sql_file("0002_partial_indexes.downgrade.sql", autocommit=True)
