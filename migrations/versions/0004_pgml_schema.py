"""The pgml API's schema: the real PostgresML extension when the server has it, else ours.

Revision ID: 0004_pgml_schema
Revises: 0003_training_summary
"""

from alembic import op

from pgml_flow.migrate import drop_schema_contents, run_sql_file

revision = "0004_pgml_schema"
down_revision = "0003_training_summary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    run_sql_file("0004_pgml_backend.sql")
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pgml'"
    ).first()
    if available:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgml")
        backend = "postgresml"
    else:
        run_sql_file("0004_pgml_schema.upgrade.sql")
        backend = "pgml-flow"
    bind.exec_driver_sql(
        "INSERT INTO pgml_flow_settings (name, value) VALUES ('pgml_backend', %(backend)s)",
        {"backend": backend},
    )


def downgrade() -> None:
    # Schema pgml and everything in it are the pgml API's (the real extension's objects or
    # ours, pgml_native, the tables pgml.load_dataset and snapshots made), dropped kind by
    # kind and never with CASCADE: an object elsewhere that depends on one (a view of the
    # user's on pgml.models, say) makes the downgrade fail, naming it.
    bind = op.get_bind()
    backend = bind.exec_driver_sql(
        "SELECT value FROM pgml_flow_settings WHERE name = 'pgml_backend'"
    ).scalar()
    drop_schema_contents(bind, ["pgml"])
    if backend == "postgresml":
        bind.exec_driver_sql("DROP EXTENSION IF EXISTS pgml")
    run_sql_file("0004_pgml_schema.downgrade.sql")
