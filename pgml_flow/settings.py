"""Settings read from the environment, in one place.

Every knob pgml-flow has is an environment variable, so the CLI, the scheduler, the
tests and a container all configure it the same way.  The CLI exposes the same
values as options (``envvar=`` on each Typer option).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: environment variables that make libpq (and so psycopg) target an external server
LIBPQ_TARGET_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one pgml-flow process."""

    #: directory holding the embedded cluster, its logs and the server-side venv
    home: Path
    #: an external server; ``None`` means "use the embedded cluster"
    database_url: str | None
    #: directory with ``initdb``/``pg_ctl``/``postgres``; ``None`` means "search"
    pg_bin: Path | None
    #: TCP port of the embedded cluster; ``None`` means "pick a free one at initdb, and again
    #: at start when another process holds it" (a port set here is never changed)
    port: int | None
    #: virtualenv the in-database Python uses (``pgml.venv``); ``None`` means automatic
    server_venv: Path | None
    #: may pgml-flow install missing Debian packages itself (needs root)?
    auto_install: bool
    #: database name inside the embedded cluster
    database: str = "pgmlflow"
    #: a read replica for read-only work (status, monitoring); ``None`` means "the same
    #: database as everything else"
    read_url: str | None = None

    @property
    def external(self) -> bool:
        """True when a DATABASE_URL or PG* variables point at a server we do not manage."""
        return self.database_url is not None

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get("DATABASE_URL") or None
        if url is None and any(env.get(var) for var in LIBPQ_TARGET_VARS):
            # An empty conninfo makes libpq read PGHOST, PGPORT, ... itself.
            url = ""
        home = Path(env.get("PGML_FLOW_HOME") or Path.cwd() / ".pgml-flow").resolve()
        port_text = env.get("PGML_FLOW_PORT")
        pg_bin = env.get("PGML_FLOW_PG_BIN")
        venv = env.get("PGML_FLOW_SERVER_VENV")
        auto = env.get("PGML_FLOW_AUTO_INSTALL")
        if auto is None:
            auto_install = os.geteuid() == 0
        else:
            auto_install = auto.strip().lower() in ("1", "true", "yes", "on")
        return cls(
            home=home,
            database_url=url,
            pg_bin=Path(pg_bin) if pg_bin else None,
            port=_parse_port(port_text),
            server_venv=Path(venv).resolve() if venv else None,
            auto_install=auto_install,
            database=env.get("PGML_FLOW_DATABASE") or "pgmlflow",
            read_url=env.get("DATABASE_READ_URL") or None,
        )


def _parse_port(text: str | None) -> int | None:
    from pgml_flow.errors import ConfigurationError

    if not text:
        return None
    try:
        port = int(text)
    except ValueError:
        raise ConfigurationError(
            f"PGML_FLOW_PORT={text!r} is not a number; set it to a free TCP port such as 54329"
        ) from None
    if not 1024 <= port <= 65535:
        raise ConfigurationError(f"PGML_FLOW_PORT={port} is outside 1024-65535; pick a free port")
    return port
