"""Rollout: kill switch, shadow and split tests.

Revision ID: 0011_rollout
Revises: 0010_monitoring
"""

from pgml_flow.migrate import run_sql_file

revision = "0011_rollout"
down_revision = "0010_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0011_rollout.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0011_rollout.downgrade.sql")
