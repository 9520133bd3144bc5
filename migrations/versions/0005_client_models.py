"""Client-scoped models and isolation: BI role map, model registry, baselines, RLS.

Revision ID: 0005_client_models
Revises: 0004_pgml_schema
"""

from pgml_flow.migrate import run_sql_file

revision = "0005_client_models"
down_revision = "0004_pgml_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0005_client_models.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0005_client_models.downgrade.sql")
