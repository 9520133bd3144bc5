"""Materialized training summary per client and model type, refreshable CONCURRENTLY.

Revision ID: 0003_training_summary
Revises: 0002_partial_indexes
"""

from pgml_flow.migrate import run_sql_file

revision = "0003_training_summary"
down_revision = "0002_partial_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0003_training_summary.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0003_training_summary.downgrade.sql")
