"""PostgresML compatibility: the rest of the catalogue.

Revision ID: 0012_pgml_compat
Revises: 0011_rollout
"""

from pgml_flow.migrate import run_sql_file

revision = "0012_pgml_compat"
down_revision = "0011_rollout"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0012_pgml_compat.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0012_pgml_compat.downgrade.sql")
