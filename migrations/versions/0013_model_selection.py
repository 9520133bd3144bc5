"""Model selection: candidates chosen on a validation slice, evaluations.

Revision ID: 0013_model_selection
Revises: 0012_pgml_compat
"""

from pgml_flow.migrate import run_sql_file

revision = "0013_model_selection"
down_revision = "0012_pgml_compat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0013_model_selection.upgrade.sql")


def downgrade() -> None:
    run_sql_file("0013_model_selection.downgrade.sql")
