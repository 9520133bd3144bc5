"""Citus: per-client tables distributed by client_id, shared tables as reference tables (no-op on a plain server).

Revision ID: 0014_citus_distribution
Revises: 0013_model_selection
"""

from pgml_flow.migrate import run_sql_file

revision = "0014_citus_distribution"
down_revision = "0013_model_selection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0014_citus_distribution.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0014_citus_distribution.downgrade.sql")
