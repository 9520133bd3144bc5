"""Synthetic clients: clients.synthetic marks the clients `pgml-flow seed` generated.

Revision ID: 0008_synthetic_clients
Revises: 0007_prediction_log_retention
"""

from pgml_flow.migrate import run_sql_file

revision = "0008_synthetic_clients"
down_revision = "0007_prediction_log_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_synthetic_clients.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0008_synthetic_clients.downgrade.sql")
