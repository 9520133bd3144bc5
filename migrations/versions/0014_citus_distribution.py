"""Citus: per-client tables distributed by client_id, shared ones as reference tables.

Nothing changes on a plain server (the citus extension is detected in the catalog).

On Citus the objects of ``sql/idempotent`` go first (views, policies, functions: they are
recreated at head): Citus refuses RLS policies with subqueries on a table it distributes,
and views on a converted table would otherwise have to be rebuilt by Citus one by one.

Revision ID: 0014_citus_distribution
Revises: 0013_model_selection
"""

from alembic import op

from pgml_flow import sqlfiles
from pgml_flow.migrate import drop_idempotent, run_sql_file

revision = "0014_citus_distribution"
down_revision = "0013_model_selection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'citus'").first():
        drop_idempotent(bind)
    # on the driver's connection, in Alembic's transaction: the file's format('%I') is
    # PL/pgSQL's, not a placeholder (run_sql_file passes parameters, which parse them)
    bind.connection.driver_connection.execute(
        sqlfiles.read("revisions/0014_citus_distribution.upgrade.sql").encode())


def downgrade() -> None:
    run_sql_file("0014_citus_distribution.downgrade.sql")
