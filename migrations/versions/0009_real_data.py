"""Real data: the columns imports fill, NOT NULLs relaxed where real data has no value.

Revision ID: 0009_real_data
Revises: 0008_synthetic_clients
"""

from pgml_flow.migrate import drop_invalid_index, run_sql_file

revision = "0009_real_data"
down_revision = "0008_synthetic_clients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_invalid_index("repositories_name_key")
    run_sql_file("0009_real_data.upgrade.sql", autocommit=True)


def downgrade() -> None:
    run_sql_file("0009_real_data.downgrade.sql")
