"""Many clients: what parallel retraining of hundreds of clients needs.

Revision ID: 0015_many_clients
Revises: 0014_citus_distribution
"""

from pgml_flow.migrate import run_sql_file

revision = "0015_many_clients"
down_revision = "0014_citus_distribution"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0015_many_clients.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0015_many_clients.downgrade.sql")
