"""Monitoring: drift statistics, monitoring views' tables.

Revision ID: 0010_monitoring
Revises: 0009_real_data
"""

from pgml_flow.migrate import run_sql_file

revision = "0010_monitoring"
down_revision = "0009_real_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_monitoring.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0010_monitoring.downgrade.sql")
