"""Connections: where the database is and how we talk to it.

Everything that reaches PostgreSQL goes through :func:`connect`, which is where
driver errors become :class:`~pgml_flow.errors.DatabaseUnreachable` with a message
that says what to do, instead of a libpq traceback.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgml_flow.cluster import Cluster
from pgml_flow.errors import ConfigurationError, DatabaseError, DatabaseUnreachable, PgmlFlowError
from pgml_flow.settings import Settings


def resolve_url(settings: Settings) -> str:
    """DATABASE_URL (or PG* variables) if set, else the embedded cluster's socket URL."""
    if settings.database_url is not None:
        return settings.database_url
    return Cluster(settings).url()


def with_dbname(url: str, dbname: str) -> str:
    """The same server and credentials as ``url``, another database."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo("", **params)


def recreate_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """Drop ``name`` if it exists (closing its sessions) and create it afresh.

    For scratch databases (tests, benchmarks); ``admin_url`` is a connection to another
    database of the same server with CREATEDB.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        _drop_in(conn, name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name`` if it exists, closing its sessions."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        _drop_in(conn, name)


def _drop_in(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def describe(url: str) -> str:
    """A password-free rendering of a URL for messages."""
    if not url:
        return "the server named by the PG* environment variables"
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured DATABASE_URL"
    info.pop("password", None)
    host = info.get("host", "localhost")
    return f"{info.get('user', '')}@{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def check_url(url: str) -> None:
    """Refuse a malformed URL (or conninfo string) with a message, before libpq tries it."""
    if not url:
        return  # libpq reads the PG* variables
    example = ("expected postgresql://user:password@host:5432/dbname or "
               "'host=... port=... dbname=... user=...'")
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(
            f"the database URL (DATABASE_URL) is not a valid PostgreSQL URL: {reason}; "
            f"{example}") from None
    port = str(info.get("port") or "")
    if any(part and not part.isdigit() for part in port.split(",")):
        raise ConfigurationError(
            f"the database URL (DATABASE_URL) has the port {port!r}, which is not a number; "
            f"{example}")


def connect(url: str, *, autocommit: bool = False, **kwargs: object) -> psycopg.Connection:
    """Open a connection, turning "cannot connect" into an actionable error."""
    check_url(url)
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        hint = (
            "start the embedded server with `pgml-flow db start`"
            if "host=/" in url or "@/" in url
            else "check DATABASE_URL / PG* variables and that the server is running"
        )
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise DatabaseUnreachable(
            f"cannot connect to {describe(url)}: {first_line}; {hint}"
        ) from exc


_PLPY_PREFIX = re.compile(r"^(?:(?:plpy\.Error|spiexceptions\.\w+): )+")


def server_message(text: str) -> str:
    """A server error's message without the class names PL/Python prefixes it with, once per
    PL/Python level it passed through (``spiexceptions.DiskFull: spiexceptions.DiskFull: ...``)."""
    return _PLPY_PREFIX.sub("", text)


def error_text(exc: psycopg.Error) -> str:
    """The server's message of a driver error with its DETAIL and HINT, on one line."""
    diag = exc.diag
    lines = str(exc).strip().splitlines()
    text = server_message(diag.message_primary or (lines[0] if lines else
                                                   type(exc).__name__))
    if diag.message_detail:
        text += f" ({diag.message_detail})"
    if diag.message_hint:
        text += f"; {diag.message_hint}"
    return text


def translate_error(exc: BaseException) -> PgmlFlowError | None:
    """A pgml-flow error for a driver error that reached the top unhandled, else None.

    The CLI's last resort (cli.app.main): a connection lost midway or a server that went
    away becomes DatabaseUnreachable, any other error of the server a DatabaseError with its
    message, DETAIL and HINT; SQLAlchemy's wrappers (migrations) are looked through.
    """
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError
    if isinstance(orig, BaseException) and not isinstance(exc, psycopg.Error):
        return translate_error(orig)
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate in (None, "57P01", "57P02",
                                                                      "57P03"):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DatabaseUnreachable(
            f"lost the connection to the database: {first}; check that the server is running "
            "(`pgml-flow db status`) and run the command again")
    if isinstance(exc, psycopg.Error):
        code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
        return DatabaseError(f"the database refused: {error_text(exc)}{code}")
    return None


#: SQLSTATEs of a server going away: admin_shutdown, crash_shutdown, cannot_connect_now
_SERVER_GONE = ("57P01", "57P02", "57P03")


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the server went away (restart, crash, network), so that the same
    work on a new connection may succeed: that is what retries with backoff are for.

    psycopg files a statement timeout (57014), a full disk (53100) and out of memory (53200)
    under ``OperationalError`` too, but those failed on a live connection and would fail the
    same way again: they are the statement's failure, recorded as such, never retried.
    """
    if isinstance(exc, DatabaseUnreachable):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    code = exc.sqlstate
    return code is None or code.startswith("08") or code in _SERVER_GONE


@contextlib.contextmanager
def session(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A connection that is closed (and rolled back unless committed) on exit."""
    conn = connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def dict_cursor(conn: psycopg.Connection) -> psycopg.Cursor[dict[str, object]]:
    return conn.cursor(row_factory=dict_row)
