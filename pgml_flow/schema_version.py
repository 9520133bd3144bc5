"""Which schema revision a database is at, and which this pgml-flow needs: without Alembic.

Nearly every command checks the revision first (:meth:`pgml_flow.app.PgmlFlow.
require_current_schema`), and Alembic with SQLAlchemy costs a third of a second to import.
So the check reads Alembic's ``alembic_version`` table with psycopg and finds the head
among the revision files (their ``revision`` and ``down_revision``); migrating is left to
:mod:`pgml_flow.migrate`, which uses Alembic itself (a test checks that both name the same
head).
"""

from __future__ import annotations

import ast
import functools
from typing import TYPE_CHECKING, Any

from pgml_flow import sqlfiles
from pgml_flow.errors import SchemaOutdated

if TYPE_CHECKING:
    import psycopg


@functools.cache
def head() -> str:
    """The newest revision of ``migrations/versions`` (Alembic's head)."""
    parents: dict[str, Any] = {}
    for path in sorted((sqlfiles.data_dir("migrations") / "versions").glob("*.py")):
        found = _assignments(path.read_text(), ("revision", "down_revision"))
        if isinstance(found.get("revision"), str):
            parents[found["revision"]] = found.get("down_revision")
    below: set[str] = set()
    for down in parents.values():
        below.update(down if isinstance(down, tuple | list) else [down])
    heads = [revision for revision in parents if revision not in below]
    if len(heads) != 1:  # branches or something this reader does not know: ask Alembic
        from pgml_flow import migrate

        return migrate.head_revision()
    return heads[0]


def current(conn: psycopg.Connection) -> str | None:
    """The revision the database is at; None when Alembic never migrated it."""
    row = conn.execute(sqlfiles.query("alembic_version_exists")).fetchone()
    if not row or not row[0]:
        return None
    versions = [r[0] for r in conn.execute(sqlfiles.query("alembic_versions")).fetchall()]
    return ",".join(versions) or None


def check(conn: psycopg.Connection) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at the head revision."""
    at, needed = current(conn), head()
    if at != needed:
        where = "has no pgml-flow schema" if at is None else f"is at revision {at}"
        raise SchemaOutdated(
            f"the database {where} but this pgml-flow needs {needed}; run `pgml-flow db upgrade`"
        )


def _assignments(source: str, names: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(value)
    return found
