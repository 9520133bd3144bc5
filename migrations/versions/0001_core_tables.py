"""Tenant tables (clients, issue types, repositories, issues, pull requests) and ML logs.

Revision ID: 0001_core_tables
Revises:
"""

from pgml_flow.migrate import run_sql_file

revision = "0001_core_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0001_core_tables.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0001_core_tables.downgrade.sql")
