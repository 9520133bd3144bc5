"""Bounded prediction logging: a unique prediction key, per-client limits, usage counters.

Revision ID: 0007_prediction_log_retention
Revises: 0006_scheduled_jobs
"""

from pgml_flow.migrate import drop_invalid_index, run_sql_file

revision = "0007_prediction_log_retention"
down_revision = "0006_scheduled_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_invalid_index("ml_prediction_log_prediction_key")
    run_sql_file("0007_prediction_log_retention.upgrade.sql", autocommit=True)


def downgrade() -> None:
    run_sql_file("0007_prediction_log_retention.downgrade.sql")
