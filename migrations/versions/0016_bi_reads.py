"""BI reads: a partial index on open issues (the feature views' is_open), built CONCURRENTLY.

Revision ID: 0016_bi_reads
Revises: 0015_many_clients
"""

from pgml_flow.migrate import drop_invalid_index, run_sql_file

revision = "0016_bi_reads"
down_revision = "0015_many_clients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_invalid_index("issues_open_idx")
    run_sql_file("0016_bi_reads.upgrade.sql", autocommit=True)


def downgrade() -> None:
    run_sql_file("0016_bi_reads.downgrade.sql", autocommit=True)
