"""One exception hierarchy for all of pgml-flow.

Every error a user can cause or meet derives from :class:`PgmlFlowError`.  The CLI
turns any of them into one line on stderr and a non-zero exit code, so the message
must say what went wrong *and what to do about it*.  The class docstring is the
default message, so raising the bare class still tells the user something useful.
"""

from __future__ import annotations


class PgmlFlowError(Exception):
    """pgml-flow failed."""

    #: process exit code the CLI uses for this kind of failure
    exit_code: int = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class ConfigurationError(PgmlFlowError):
    """A setting is missing or invalid."""

    exit_code = 2


class PostgresNotFound(PgmlFlowError):
    """No PostgreSQL server binaries were found."""

    exit_code = 3


class ClusterError(PgmlFlowError):
    """The embedded PostgreSQL cluster could not be managed."""

    exit_code = 3


class DatabaseUnreachable(PgmlFlowError):
    """The database server could not be reached."""

    exit_code = 4


class DatabaseError(PgmlFlowError):
    """The database refused a statement; the message says why."""


class SchemaOutdated(PgmlFlowError):
    """The database schema is older than this version of pgml-flow; run `pgml-flow db upgrade`."""

    exit_code = 5


class MigrationError(PgmlFlowError):
    """A schema migration failed."""

    exit_code = 5


class ModelError(PgmlFlowError):
    """A model could not be trained, deployed or used."""

    exit_code = 6


class SpecError(ConfigurationError):
    """A model spec is invalid; fix the spec file (see docs/models.md)."""


class ReplaceRefused(ConfigurationError):
    """Seeding would delete existing clients' data; pass --replace to confirm."""


class MalformedFile(ConfigurationError):
    """A file to import is malformed; nothing was imported (see docs/import.md)."""


class ClientNotFound(PgmlFlowError):
    """No such client; list clients with `SELECT client_id, name FROM clients`."""

    exit_code = 2


class IsolationBreach(PgmlFlowError):
    """The isolation audit found a tenant role reading another client's rows or pgml internals."""

    exit_code = 7


class JobFailed(PgmlFlowError):
    """A scheduled job failed; `pgml-flow scheduler runs` and `pgml-flow events` say why."""


class Interrupted(PgmlFlowError):
    """Stopped by SIGTERM or SIGINT after finishing the work in hand; the next run resumes."""

    exit_code = 8
