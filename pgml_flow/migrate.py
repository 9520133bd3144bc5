"""Schema migrations: Alembic revisions plus idempotent SQL re-applied at head.

Tables and indexes change through Alembic revisions that run once (their SQL is in
``sql/revisions``).  Functions, views and grants are in ``sql/idempotent`` and are
re-applied after every upgrade, so fixing a function never needs a revision.  Those
objects live in their own schemas (:data:`IDEMPOTENT_SCHEMAS`), which a downgrade
drops first: they describe the head schema only.

A downgrade is one transaction (the idempotent objects and every revision's downgrade),
its target checked before anything runs, and it never drops with CASCADE: an object
pgml-flow does not own that depends on one it drops makes it fail and roll back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine, pool
from sqlalchemy.exc import DBAPIError

from pgml_flow import sqlfiles
from pgml_flow.database import connect, error_text
from pgml_flow.errors import ConfigurationError, MigrationError, SchemaOutdated

logger = logging.getLogger(__name__)
SOURCE = "migrate"

#: schemas whose objects come from ``sql/idempotent`` (and, for ``pgml_flow_training``, from
#: training, which recreates its views); a downgrade drops them, with the RLS policies
IDEMPOTENT_SCHEMAS = ("analytics", "monitoring", "pgml_flow_training", "pgml_flow")
#: the RLS policies ``sql/idempotent/800_policies.sql`` puts on the tenant tables
PRODUCT_POLICIES = ("tenant_isolation", "ml_admin")
#: Alembic config attribute: the revisions run in the caller's one transaction (downgrade)
SINGLE_TRANSACTION = "pgml_flow_single_transaction"


def drop_invalid_index(name: str) -> None:
    """Drop index ``name`` if an interrupted ``CREATE INDEX CONCURRENTLY`` left it INVALID.

    ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` would keep such an index as it is, so a
    revision that builds one calls this first (inside an Alembic revision).
    """
    from alembic import op
    from psycopg import sql as psql

    with op.get_context().autocommit_block():
        bind = op.get_bind()
        invalid = bind.exec_driver_sql(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %(name)s AND NOT i.indisvalid", {"name": name}).first()
        if invalid:
            statement = psql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                psql.Identifier(name))
            bind.exec_driver_sql(statement.as_string(bind.connection.driver_connection))


def run_sql_file(name: str, *, autocommit: bool = False) -> None:
    """Execute one file of ``sql/revisions`` from inside an Alembic revision.

    ``autocommit`` runs it outside Alembic's transaction, which ``CREATE INDEX
    CONCURRENTLY`` requires; statements are then sent one at a time.  A downgrade is one
    transaction (:func:`downgrade`), where that cannot be: there, the statements run in the
    transaction, their index builds and drops without ``CONCURRENTLY`` (a plain ``DROP
    INDEX`` locks its table only briefly).
    """
    from alembic import op

    text = sqlfiles.read(f"revisions/{name}")
    bind = op.get_bind()
    if not autocommit:
        bind.exec_driver_sql(text)
        return
    config = op.get_context().config
    if config is not None and config.attributes.get(SINGLE_TRANSACTION):
        for statement in split_statements(text):
            bind.exec_driver_sql(_CONCURRENTLY.sub(r"\1", statement))
        return
    with op.get_context().autocommit_block():
        for statement in split_statements(text):
            bind.exec_driver_sql(statement)


#: the CONCURRENTLY of an index build or drop (the statement's own, at its start)
_CONCURRENTLY = re.compile(r"^((?:CREATE\s+(?:UNIQUE\s+)?|DROP\s+)INDEX)\s+CONCURRENTLY\b",
                           re.IGNORECASE)


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
    """Apply revisions up to ``revision``; at head, re-apply the idempotent SQL.

    ``revision`` (``head``, a revision id or a unique prefix of one) is checked first: an
    unknown one, or one below the current revision, is refused before anything runs.
    """
    with _engine(url) as engine:
        script = ScriptDirectory.from_config(_config(engine))
        revision = resolve_upgrade_target(script, current_revision(url), revision)
    _alembic(url, "upgrade", revision)
    current = current_revision(url)
    if current == head_revision():
        for message in pgml_damage(url):
            logger.warning(message)
        apply_idempotent(url)
    return current


def pgml_damage(url: str) -> list[str]:
    """What :func:`apply_idempotent` is about to recreate in a damaged ``pgml`` schema, and
    which data that loses, one message each (empty for a sound schema or the real extension).

    PostgresML's test scripts reset with ``DROP SCHEMA pgml CASCADE``; a database left so
    (or with some of the tables dropped) is repaired by the next upgrade, since
    ``sql/pgml/0000_schema.sql`` creates whatever is missing. The data in what was dropped
    is gone: these messages say so, and what to do about it.
    """
    with connect(url) as conn:
        if pgml_backend(conn) != "pgml-flow":
            return []
        row = conn.execute(sqlfiles.query("pgml_damage", SOURCE)).fetchone()
    assert row is not None
    schema_exists, missing, orphaned = row
    retrain = ("retrain the models (`pgml-flow train`, or pgml.train for projects of your "
               "own); tables pgml.load_dataset made must be loaded again")
    if not schema_exists:
        return ["schema pgml was dropped: recreating it (types, tables, functions, views); "
                "every pgml project, snapshot, model, deployment and model file in it is "
                f"lost: {retrain}"]
    out = []
    if missing:
        tables = ", ".join(f"pgml.{t}" for t in missing)
        out.append(f"{tables} {'was' if len(missing) == 1 else 'were'} dropped: recreating "
                   f"{'it' if len(missing) == 1 else 'them'} empty; the rows in "
                   f"{'it' if len(missing) == 1 else 'them'} are lost: {retrain}")
    if orphaned:
        tables = ", ".join(f"pgml.{t}" for t in orphaned)
        out.append(f"rows of {tables} that reference projects or models that no longer "
                   "exist are deleted, so that their foreign keys can be restored")
    return out


def downgrade(url: str, revision: str = "base") -> str | None:
    """Undo revisions down to ``revision``, in one transaction: all or nothing.

    ``revision`` is a revision id (or a unique prefix of one), ``base`` or ``-N`` (N
    revisions below the current one); it is checked before any SQL runs, and must be below
    the current revision.  The idempotent objects go first (they describe the head schema
    only), then each revision's downgrade runs.  Nothing is dropped with CASCADE: an
    object that is not pgml-flow's (a view of yours on an ``analytics`` view or a ``pgml``
    table, say) makes the downgrade fail, naming it, and the database stays as it was.
    """
    with _engine(url) as engine, engine.connect() as conn:
        script = ScriptDirectory.from_config(_config(engine))
        with conn.begin():
            current = MigrationContext.configure(conn).get_current_revision()
            target = resolve_downgrade_target(script, current, revision)
            assert current is not None
            cfg = _config(engine)
            cfg.attributes["connection"] = conn
            cfg.attributes[SINGLE_TRANSACTION] = True
            try:
                drop_idempotent(conn)
                command.downgrade(cfg, target or "base")
            except (DBAPIError, psycopg.Error) as exc:
                raise _downgrade_failed(exc, current, target) from exc
    return current_revision(url)


def _downgrade_failed(exc: Exception, current: str, target: str | None) -> MigrationError:
    """The error of a downgrade the database refused (rolled back: nothing changed)."""
    where = target or "base"
    unchanged = f"nothing was changed: the schema is still at {current}"
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(cause, psycopg.errors.DependentObjectsStillExist):
        detail = "; ".join((cause.diag.message_detail or "").splitlines())
        return MigrationError(
            f"downgrade to {where} refused: {cause.diag.message_primary} ({detail}). Those "
            "objects are not pgml-flow's and a downgrade never drops them: drop them, or make "
            f"them stop depending on pgml-flow's objects, then run it again; {unchanged}"
        )
    return MigrationError(f"downgrade to {where} failed: {cause or exc}; {unchanged}")


def _chain(script: ScriptDirectory, revision: str) -> list[str]:
    """``revision`` and every revision below it, newest first."""
    out: list[str] = []
    step = script.get_revision(revision)
    while step is not None:
        out.append(step.revision)
        down = step.down_revision
        if down is None:
            break
        if not isinstance(down, str):
            raise MigrationError(f"revision {step.revision} merges branches; pgml-flow's "
                                 "migrations are one line: downgrade it with alembic itself")
        step = script.get_revision(down)
    return out


def revisions() -> list[str]:
    """Every revision of this pgml-flow, newest first."""
    with _engine("") as engine:
        return _chain(ScriptDirectory.from_config(_config(engine)), head_revision())


def _known(script: ScriptDirectory, current: str) -> list[str]:
    try:
        return _chain(script, current)
    except (CommandError, RevisionError):
        raise MigrationError(
            f"the database is at revision {current}, which this pgml-flow does not know (a "
            f"newer pgml-flow migrated it; this one knows up to {head_revision()}): "
            "migrate it with that pgml-flow (or a newer one)"
        ) from None


def _lookup(script: ScriptDirectory, revision: str) -> str | None:
    """The full id of a revision id or unique prefix (``head`` too); None if there is none."""
    try:
        found = script.get_revision(revision)
    except (CommandError, RevisionError):
        return None
    return found.revision if found is not None else None


def resolve_downgrade_target(script: ScriptDirectory, current: str | None,
                             revision: str) -> str | None:
    """The revision a downgrade from ``current`` to ``revision`` ends at (None: base).

    Raises :class:`ConfigurationError`, before anything ran, for a target that is unknown,
    the current revision itself, or above it.
    """
    revision = revision.strip()
    if current is None:
        raise ConfigurationError("the database has no pgml-flow schema: there is nothing to "
                                 "downgrade (`pgml-flow db status` shows the revision)")
    below = _known(script, current)[1:]
    valid = ", ".join([*below, "base"]) + (f", or -1 to -{len(below) + 1}" if below else ", or -1")
    if revision == "base":
        return None
    steps = re.fullmatch(r"-(\d+)", revision)
    if steps:
        count = int(steps.group(1))
        if not 1 <= count <= len(below) + 1:
            raise ConfigurationError(
                f"cannot downgrade {revision} from {current}: there are {len(below) + 1} "
                f"revision(s) to undo; valid targets: {valid}")
        return below[count - 1] if count <= len(below) else None
    target = _lookup(script, revision) if revision else None
    if target is None:
        raise ConfigurationError(
            f"unknown revision {revision!r}; the database is at {current}, valid downgrade "
            f"targets: {valid} (nothing was changed)")
    if target == current:
        raise ConfigurationError(
            f"the database is already at {current}: downgrading to {revision} would do "
            f"nothing, so it is refused; valid downgrade targets: {valid}")
    if target not in below:
        raise ConfigurationError(
            f"{target} is above the current revision {current}: that is an upgrade, run "
            f"`pgml-flow db upgrade {target}`; valid downgrade targets: {valid}")
    return target


def resolve_upgrade_target(script: ScriptDirectory, current: str | None, revision: str) -> str:
    """The revision an upgrade goes to, checked before anything runs.

    ``head``, a revision id (or unique prefix) at or above ``current``, or ``+N`` (N
    revisions above it); :class:`ConfigurationError` for an unknown one or one below the
    current revision.
    """
    revision = revision.strip()
    order = list(reversed(_chain(script, head_revision())))  # oldest first
    valid = f"head, {', '.join(order)}, or +N"
    steps = re.fullmatch(r"\+(\d+)", revision)
    if steps:
        start = order.index(current) + 1 if current in order else 0
        above = order[start:]
        count = int(steps.group(1))
        if not 1 <= count <= len(above):
            raise ConfigurationError(
                f"cannot upgrade {revision} from {current or 'base'}: there are {len(above)} "
                f"revision(s) above it; valid upgrade targets: {valid}")
        return above[count - 1]
    target = _lookup(script, revision) if revision else None
    if target is None:
        raise ConfigurationError(
            f"unknown revision {revision!r}; valid upgrade targets: {valid} (nothing was changed)")
    if current is not None and target != current and target in _known(script, current):
        raise ConfigurationError(
            f"{target} is below the current revision {current}: that is a downgrade, run "
            f"`pgml-flow db downgrade {target}`")
    return target


def drop_idempotent(bind: Connection) -> None:
    """Drop the objects of ``sql/idempotent``: its RLS policies, its schemas and their contents.

    Without CASCADE: an object outside these schemas that depends on one inside (a user's
    view or policy, say) makes a statement fail, naming it.
    """
    citus = bind.exec_driver_sql(sqlfiles.query("has_citus", "citus_tenants")).scalar()
    for node, port, success, result in bind.exec_driver_sql(
            sqlfiles.query("drop_worker_training_views", SOURCE)).fetchall() if citus else ():
        if not success:
            raise MigrationError(
                f"dropping the training views on Citus worker {node}:{port} failed: {result}; "
                "the schema is unchanged")
    policies = bind.exec_driver_sql(
        sqlfiles.query("product_policies", SOURCE), {"names": list(PRODUCT_POLICIES)}
    ).fetchall()
    for schema, table, name in policies:
        _execute(bind, sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(name),
                                                              sql.Identifier(schema, table)))
    drop_schema_contents(bind, IDEMPOTENT_SCHEMAS)
    _execute(bind, sql.SQL("DROP SCHEMA IF EXISTS {}").format(
        sql.SQL(", ").join(sql.Identifier(s) for s in IDEMPOTENT_SCHEMAS)))


def drop_schema_contents(bind: Connection, schemas: Sequence[str]) -> None:
    """Drop everything in ``schemas``, which are pgml-flow's own, without CASCADE.

    One statement per kind, in an order where each kind only depends on kinds dropped after
    it (views, routines, tables, sequences, types, extensions): the objects of one
    statement may depend on each other, but when an object elsewhere depends on one of
    them, PostgreSQL refuses and names it.
    """
    def names(query: str, **params: Any) -> list[Any]:
        rows = bind.exec_driver_sql(sqlfiles.query(query, SOURCE),
                                    {"schemas": list(schemas), **params})
        return list(rows.fetchall())

    def relations(*kinds: str) -> list[sql.Composable]:
        return [sql.Identifier(s, n) for s, n in names("schema_relations", kinds=list(kinds))]

    def drop(kind: str, objects: list[sql.Composable]) -> None:
        if objects:
            _execute(bind, sql.SQL("DROP {} {}").format(sql.SQL(kind),
                                                        sql.SQL(", ").join(objects)))

    drop("VIEW", relations("v"))
    drop("MATERIALIZED VIEW", relations("m"))
    # the argument list comes from pg_get_function_identity_arguments (quoted by PostgreSQL)
    drop("ROUTINE", [sql.SQL("{}({})").format(sql.Identifier(s, n), sql.SQL(args))
                     for s, n, args in names("schema_routines")])
    drop("TABLE", relations("r", "p"))
    drop("FOREIGN TABLE", relations("f"))
    drop("SEQUENCE", relations("S"))
    types = names("schema_types")
    drop("DOMAIN", [sql.Identifier(s, n) for s, n, kind in types if kind == "d"])
    drop("TYPE", [sql.Identifier(s, n) for s, n, kind in types if kind != "d"])
    # last: the objects above that are not members may sit in a schema an extension owns
    drop("EXTENSION", [sql.Identifier(e) for (e,) in names("schema_extensions")])


def _execute(bind: Connection, statement: sql.Composable) -> None:
    bind.exec_driver_sql(statement.as_string(bind.connection.driver_connection))


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
                raise MigrationError(
                    f"applying {path.name} failed: {error_text(exc)}") from exc
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
