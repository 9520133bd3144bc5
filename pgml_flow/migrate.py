"""Schema migrations: Alembic revisions plus idempotent SQL re-applied at head.

Tables and indexes change through Alembic revisions that run once (their SQL is in
``sql/revisions``).  Functions, views and grants are in ``sql/idempotent`` and are
re-applied after every upgrade, so fixing a function never needs a revision.  Those
objects live in their own schemas (:data:`IDEMPOTENT_SCHEMAS`), which a downgrade
drops first: they describe the head schema only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Engine, create_engine, pool

from pgml_flow import sqlfiles
from pgml_flow.database import connect
from pgml_flow.errors import MigrationError, SchemaOutdated

logger = logging.getLogger(__name__)

#: schemas whose objects come from ``sql/idempotent`` (and, for ``pgml_flow_training``, from
#: training, which recreates its views); a downgrade drops them, with the RLS policies
IDEMPOTENT_SCHEMAS = ("analytics", "pgml_flow_training", "pgml_flow")


def run_sql_file(name: str, *, autocommit: bool = False) -> None:
    """Execute one file of ``sql/revisions`` from inside an Alembic revision.

    ``autocommit`` runs it outside Alembic's transaction, which ``CREATE INDEX
    CONCURRENTLY`` requires; statements are then sent one at a time.
    """
    from alembic import op

    text = sqlfiles.read(f"revisions/{name}")
    bind = op.get_bind()
    if not autocommit:
        bind.exec_driver_sql(text)
        return
    with op.get_context().autocommit_block():
        for statement in split_statements(text):
            bind.exec_driver_sql(statement)


def split_statements(text: str) -> list[str]:
    """Split a file of simple statements (no dollar-quoted bodies) on semicolons."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(sqlfiles.data_dir("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    def creator() -> psycopg.Connection:
        return connect(url)

    engine = create_engine("postgresql+psycopg://", creator=creator, poolclass=pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def head_revision() -> str:
    with _engine("") as engine:
        head = ScriptDirectory.from_config(_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    with _engine(url) as engine, engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_current(url: str) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at the head revision."""
    current = current_revision(url)
    head = head_revision()
    if current != head:
        where = "has no pgml-flow schema" if current is None else f"is at revision {current}"
        raise SchemaOutdated(
            f"the database {where} but this pgml-flow needs {head}; run `pgml-flow db upgrade`"
        )


def upgrade(url: str, revision: str = "head") -> str | None:
    """Apply revisions up to ``revision``; at head, re-apply the idempotent SQL."""
    _alembic(url, "upgrade", revision)
    current = current_revision(url)
    if current == head_revision():
        apply_idempotent(url)
    return current


def downgrade(url: str, revision: str = "base") -> str | None:
    """Drop the idempotent objects, then undo revisions down to ``revision``."""
    with connect(url) as conn:
        for schema in IDEMPOTENT_SCHEMAS:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.commit()
    _alembic(url, "downgrade", revision)
    return current_revision(url)


def pgml_backend(conn: psycopg.Connection) -> str | None:
    """Which pgml implementation the database uses: ``pgml-flow``, ``postgresml`` or None."""
    exists = conn.execute("SELECT to_regclass('public.pgml_flow_settings')").fetchone()
    if not exists or exists[0] is None:
        return None
    row = conn.execute(
        "SELECT value FROM pgml_flow_settings WHERE name = 'pgml_backend'"
    ).fetchone()
    return row[0] if row else None


def apply_idempotent(url: str) -> None:
    """Re-run the idempotent SQL in one transaction: all or nothing.

    ``sql/pgml`` (our pgml API) first, and only where the real extension is absent;
    then ``sql/idempotent``, which may build on it.
    """
    with connect(url) as conn:
        # Bodies may refer to functions a later file defines (as in pg_dump output).
        conn.execute("SET LOCAL check_function_bodies = off")
        files = sqlfiles.idempotent_files()
        if pgml_backend(conn) == "pgml-flow":
            files = sqlfiles.idempotent_files("pgml") + files
        for path in files:
            try:
                conn.execute(path.read_text().encode())
            except psycopg.Error as exc:
                raise MigrationError(f"applying {path.name} failed: {exc}") from exc
        conn.commit()


def _alembic(url: str, action: str, revision: str) -> None:
    with _engine(url) as engine, engine.connect() as conn:
        cfg = _config(engine)
        cfg.attributes["connection"] = conn
        try:
            getattr(command, action)(cfg, revision)
        except psycopg.Error as exc:
            raise MigrationError(f"{action} to {revision} failed: {exc}") from exc
        except Exception as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, psycopg.Error) or "sqlalchemy" in type(exc).__module__:
                raise MigrationError(f"{action} to {revision} failed: {exc}") from exc
            raise
