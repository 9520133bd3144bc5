"""Alembic environment: run revisions on the connection pgml-flow hands over.

pgml-flow drives Alembic from :mod:`pgml_flow.migrate` rather than from an
``alembic.ini``, so the URL rules (embedded cluster, DATABASE_URL) live in one place.
An upgrade runs each revision in its own transaction (a revision may leave it for
``CONCURRENTLY``); a downgrade hands over a connection already in a transaction, so Alembic
opens none of its own and every revision's downgrade runs in that one.
"""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url", ""), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("pgml-flow migrations run online only: use `pgml-flow db upgrade`")
run_migrations_online()
