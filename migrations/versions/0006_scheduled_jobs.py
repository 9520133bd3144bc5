"""Scheduled jobs: claim rows (exactly once across replicas), events linked to job runs.

Revision ID: 0006_scheduled_jobs
Revises: 0005_client_models
"""

from pgml_flow.migrate import run_sql_file

revision = "0006_scheduled_jobs"
down_revision = "0005_client_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0006_scheduled_jobs.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0006_scheduled_jobs.downgrade.sql")
