"""The plpython boundary: how an error of the in-database code reaches the SQL client.

Every entry point of :mod:`pgml_flow.server` that a ``sql/pgml`` function calls is wrapped
by :func:`sql_errors`:

* an error of pgml-flow's own classes (:class:`pgml_flow.errors.PgmlFlowError`, with the
  engine's finer ones in :mod:`pgml_flow.engine.errors`) becomes
  ``plpy.error(message, detail=..., hint=..., sqlstate=...)``: the message is the
  exception's, the DETAIL and HINT its ``detail`` / ``hint`` attributes or defaults for its
  class, the SQLSTATE its ``sqlstate`` attribute or the one its class maps to (:func:`_tables`);
* any other Python exception (a bug) becomes ``XX000`` (internal_error) naming the
  exception, with a HINT pointing at the server log;
* PostgreSQL's own errors met on the way (``plpy.SPIError``: a cancel, a statement
  timeout, a permission, an invalid enum value) pass through unchanged, with their SQLSTATE.

The traceback goes to the server log: at ``DEBUG1`` for the caller's mistakes (SQLSTATE
classes 22 and 42), at ``LOG`` (written with the default ``log_min_messages``) for the rest:
a failed fit, a model to retrain, a bug.  PL/Python itself adds it to the error as CONTEXT
and prefixes the message with the exception class (``plpy.Error: ...``): the functions users call
(``pgml.train``, ``pgml.deploy``, ...) are therefore PL/pgSQL that call the plpython3u
``pgml._py_*`` function and raise its error again with only the message (prefix removed),
DETAIL, HINT and SQLSTATE (``sql/pgml/010_api.sql``).  The prediction functions stay
plpython3u on the hot path (a PL/pgSQL exception block is a subtransaction per call, which
also forbids parallel plans): their errors keep PL/Python's CONTEXT.
"""

from __future__ import annotations

import contextlib
import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from pgml_flow import errors

F = TypeVar("F", bound=Callable[..., Any])
Table = tuple[tuple[type[BaseException], str], ...]


@functools.cache
def _tables() -> tuple[Table, Table]:
    """(SQLSTATE, HINT) per error class, the first match in this order winning; an exception's
    own ``sqlstate`` / ``hint`` attribute overrides them.  Imported when first needed:
    ``pgml_flow.engine`` loads numpy, which ``pgml.version()`` has no use for."""
    from pgml_flow.engine import errors as engine

    sqlstates: Table = (
        (engine.InvalidArgument, "22023"),      # invalid_parameter_value
        (engine.DataError, "22000"),            # data_exception
        (engine.IncompatibleModel, "55000"),    # object_not_in_prerequisite_state
        (engine.TrainingFailed, "38000"),       # external_routine_exception
        (errors.ConfigurationError, "22023"),
        (errors.ModelError, "22023"),           # the call cannot be served as given
        (errors.PgmlFlowError, "P0001"),        # raise_exception
    )
    hints: Table = (
        (engine.InvalidArgument, "check the arguments against docs/sql-api.md"),
        (engine.IncompatibleModel, "retrain the model with pgml.train"),
        (engine.TrainingFailed, "try other hyperparams or another algorithm; the server log "
                                "has the details"),
        (engine.DataError, "the message names the column or rows at fault; a view over the "
                           "relation can cast, filter or leave them out"),
    )
    return sqlstates, hints


BUG_HINT = ("this is a bug in pgml-flow; the server log has the traceback (search it for the "
            "message), please report it")
#: SQLSTATE of an unexpected Python exception: internal_error
INTERNAL_ERROR = "XX000"


def sql_errors(function: F) -> F:
    """Wrap an entry point ``function(plpy, ...)``: errors become SQL errors (module doc)."""

    @functools.wraps(function)
    def wrapper(plpy: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(plpy, *args, **kwargs)
        except Exception as exc:
            if _is_postgres_error(plpy, exc):
                raise
            message, detail, hint, sqlstate = describe(exc, function.__name__)
            # the caller's mistakes (classes 22 and 42) at DEBUG1, anything else at LOG
            _log_traceback(plpy, exc, loud=not sqlstate.startswith(("22", "42")))
            plpy.error(message, detail=detail, hint=hint, sqlstate=sqlstate)
            raise  # not reached: plpy.error raises

    return wrapper  # type: ignore[return-value]


def describe(exc: BaseException, entry_point: str) -> tuple[str, str, str, str]:
    """(message, detail, hint, sqlstate) of the SQL error ``exc`` becomes."""
    if not isinstance(exc, errors.PgmlFlowError):
        return (clip(f"pgml.{entry_point} failed: {type(exc).__name__}: {exc}"),
                f"an unexpected {type(exc).__module__}.{type(exc).__qualname__} in "
                f"pgml_flow.server ({entry_point})", BUG_HINT, INTERNAL_ERROR)
    message = str(exc) or type(exc).__name__
    detail = getattr(exc, "detail", None) or _first_line(type(exc).__doc__) or type(exc).__name__
    sqlstates, hints = _tables()
    hint = getattr(exc, "hint", None) or _for_class(exc, hints, "see docs/sql-api.md")
    sqlstate = getattr(exc, "sqlstate", None) or _for_class(exc, sqlstates, "P0001")
    return clip(message), clip(detail), hint, sqlstate


#: longest message or DETAIL an error carries: messages quote what the caller passed, and a
#: megabyte project name or relation would otherwise come back whole, in every log line too
MAX_ERROR_TEXT = 600


def clip(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` at most ``limit`` characters and a note: its head and tail are kept, since the
    head names the argument and the tail usually says what to do."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}…[{len(text) - head - tail} characters left out]…{text[-tail:]}"


def _for_class(exc: BaseException, table: Table, default: str) -> str:
    return next((value for cls, value in table if isinstance(exc, cls)), default)


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def _is_postgres_error(plpy: Any, exc: BaseException) -> bool:
    """An error PostgreSQL raised (via SPI) or that plpy.error already made a SQL error."""
    kinds = tuple(k for k in (getattr(plpy, "SPIError", None), getattr(plpy, "Error", None))
                  if isinstance(k, type))
    return bool(kinds) and isinstance(exc, kinds)


def _log_traceback(plpy: Any, exc: BaseException, *, loud: bool) -> None:
    text = "".join(traceback.format_exception(exc)).rstrip()
    with contextlib.suppress(Exception):  # logging must never hide the error itself
        (plpy.log if loud else plpy.debug)(f"pgml-flow: {type(exc).__name__}: {exc}\n{text}")
