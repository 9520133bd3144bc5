"""SQL lives in ``.sql`` files, loaded by name.

Keeping SQL out of Python strings lets it be read, linted and diffed as SQL.  The
``sql/`` directory sits at the repository root (the layout the project asked for);
in a wheel it is shipped as ``pgml_flow/_data/sql``.

* ``sql/revisions/NNNN_name.{upgrade,downgrade}.sql`` run once, from Alembic revisions;
* ``sql/idempotent/*.sql`` are re-applied, in name order, after every upgrade
  (``CREATE OR REPLACE`` functions and views, grants last);
* ``sql/queries.sql`` holds the queries the Python code runs, each under a
  ``-- name: query_name`` header; ``sql/pgml_queries.sql`` the same for the code
  that runs inside PostgreSQL (``pgml_flow.server``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pgml_flow.errors import ConfigurationError

_PACKAGE_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def data_dir(name: str) -> Path:
    """Find ``sql`` or ``migrations`` in a wheel install or a source checkout."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigurationError(f"pgml-flow's {name}/ directory is missing; reinstall pgml-flow")


def sql_dir() -> Path:
    return data_dir("sql")


def read(relative: str) -> str:
    """The text of one SQL file under ``sql/``."""
    path = sql_dir() / relative
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigurationError(f"SQL file {path} is missing; reinstall pgml-flow") from None


def idempotent_files(group: str = "idempotent") -> list[Path]:
    return sorted((sql_dir() / group).glob("*.sql"))


@functools.cache
def queries(source: str = "queries") -> dict[str, str]:
    """All named queries of ``sql/<source>.sql``."""
    return parse_queries(read(f"{source}.sql"))


def parse_queries(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = body.strip().rstrip(";").strip()
    return found


def query(name: str, source: str = "queries") -> str:
    try:
        return queries(source)[name]
    except KeyError:
        raise ConfigurationError(f"no query named {name!r} in sql/{source}.sql") from None
