"""The embedded PostgreSQL cluster: pgml-flow's default database.

``pgml-flow db start`` must work on a fresh machine with nothing but the Debian
server binaries installed, so this module owns the whole life cycle of a private
cluster under ``$PGML_FLOW_HOME`` (default ``./.pgml-flow``):

* ``data/``   the PGDATA directory (initdb on first use),
* ``run/``    the unix socket directory (we connect through it, no password),
* ``log/postgresql.log`` the server log,
* ``cluster.json`` what we chose at initdb time (port, OS user, superuser name); the
  port is chosen again at start when another process holds it, unless PGML_FLOW_PORT
  set it.

PostgreSQL refuses to run as root, so when invoked as root the server runs as
the ``postgres`` OS user (created by the Debian packages) or, failing that, a
``pgmlflow`` system user we create.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pgml_flow.errors import ClusterError
from pgml_flow.postgres import Installation, ensure_debian_package, find_installation
from pgml_flow.settings import Settings

logger = logging.getLogger(__name__)

SUPERUSER = "pgmlflow"
_FIRST_PORT = 54329
_CONF_NAME = "pgml_flow.conf"


@dataclass(frozen=True)
class ClusterState:
    """What was chosen when the cluster was created; stored in ``cluster.json``."""

    port: int
    os_user: str
    superuser: str
    major: int


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    log_file: Path
    initialized: bool


class Cluster:
    """One embedded cluster rooted at ``settings.home``."""

    def __init__(self, settings: Settings, installation: Installation | None = None) -> None:
        self.settings = settings
        self.home = settings.home
        self._installation = installation

    # -- paths ---------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgresql.log"

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def installation(self) -> Installation:
        if self._installation is None:
            self._installation = find_installation(self.settings.pg_bin)
        return self._installation

    # -- state ---------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and self.state_file.exists()

    def state(self) -> ClusterState:
        try:
            return ClusterState(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            raise ClusterError(
                f"no embedded cluster in {self.home}; create and start it with `pgml-flow db start`"
            ) from None

    def url(self, database: str | None = None) -> str:
        """libpq URL of the cluster: unix socket, superuser, no password."""
        state = self.state()
        db = database or self.settings.database
        return f"postgresql://{state.superuser}@/{db}?host={self.socket_dir}&port={state.port}"

    def status(self) -> Status:
        pid = self._postmaster_pid()
        port = None
        with contextlib.suppress(ClusterError):
            port = self.state().port
        return Status(
            running=pid is not None,
            pid=pid,
            port=port,
            data_dir=self.data_dir,
            log_file=self.log_file,
            initialized=self.initialized,
        )

    def server_user(self) -> str:
        """The OS user the server runs (or will run) as."""
        return self.state().os_user if self.initialized else self._os_user().pw_name

    # -- life cycle ------------------------------------------------------------------------
    def start(self, *, server_venv: Path | None = None) -> Status:
        """Create the cluster if needed and start it; idempotent."""
        self._ensure_plpython()
        if not self.initialized:
            self._initdb()
        state = self.state()
        if self.settings.port is not None and self.settings.port != state.port:
            state = self._record_port(state, self.settings.port)
        self._check_ownership(state)
        if self._postmaster_pid() is None:
            state = self._claim_port(state)
        preload_changed = self._write_conf(state, server_venv)
        stale = self._stale_preloaded_library()
        if (preload_changed or stale) and self._postmaster_pid() is not None:
            # shared_preload_libraries is read at server start only: a newly listed or newly
            # built pgml_native (which makes pgml.venv superuser-only and scores models)
            # counts only after a restart.
            logger.warning("restarting the embedded cluster: "
                           + (f"{stale} was rebuilt since the server started" if stale
                              else "shared_preload_libraries changed"),
                           extra={"action": "restart"})
            self._pg_ctl(["restart", "-w", "-t", "60", "-m", "fast", "-l", str(self.log_file)],
                         state, failure="restarting the embedded PostgreSQL server failed")
        elif self._postmaster_pid() is None:
            self._pg_ctl(
                ["start", "-w", "-t", "60", "-l", str(self.log_file)],
                state,
                failure="the embedded PostgreSQL server did not start",
            )
        else:
            # Already running: make it pick up a changed pgml.venv without a restart.
            self._pg_ctl(["reload"], state, failure="reloading the configuration failed")
        self._ensure_database(state)
        return self.status()

    def stop(self) -> Status:
        if self.initialized and self._postmaster_pid() is not None:
            self._pg_ctl(
                ["stop", "-w", "-t", "60", "-m", "fast"], self.state(), failure="stopping failed"
            )
        return self.status()

    # -- internals -----------------------------------------------------------------------
    def _ensure_plpython(self) -> None:
        inst = self.installation
        if not inst.has_extension_library("plpython3"):
            ensure_debian_package(
                inst.plpython_package,
                allowed=self.settings.auto_install,
                why="pgml-flow runs its models in PL/Python (plpython3u)",
            )

    def _os_user(self) -> pwd.struct_passwd:
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid())
        for name in ("postgres", "pgmlflow"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgmlflow"],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam("pgmlflow")

    def _initdb(self) -> None:
        user = self._os_user()
        port = self.settings.port or _free_port(_FIRST_PORT)
        for directory in (self.home, self.data_dir, self.socket_dir, self.log_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (self.data_dir, self.socket_dir, self.log_file.parent):
            os.chown(directory, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        self.socket_dir.chmod(0o700)
        self._check_reachable(user)
        state = ClusterState(
            port=port, os_user=user.pw_name, superuser=SUPERUSER, major=self.installation.major
        )
        self._run_as(
            [
                str(self.installation.tool("initdb")),
                "-D", str(self.data_dir),
                "-U", SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            state,
            failure=f"initdb in {self.data_dir} failed",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# settings managed by pgml-flow\ninclude_if_exists = '{_CONF_NAME}'\n")
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")
        logger.info("initialized embedded cluster", extra={"action": "initdb", "port": port})

    def _write_conf(self, state: ClusterState, server_venv: Path | None) -> bool:
        """Write pgml-flow's configuration; True when shared_preload_libraries changed.

        pgml_native is preloaded because it defines pgml.venv and
        pgml_flow.loopback_conninfo as superuser-only settings (ext/pgml_native/settings.c):
        defined before any session starts, no session can ever SET them.
        """
        preload = self._preload_libraries()
        lines = [
            f"port = {state.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "max_connections = 200",
            "shared_buffers = '256MB'",
            # a development cluster: durability traded for speed, documented in docs/operations.md
            "synchronous_commit = off",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] %q%u@%d '",
        ]
        if preload:
            lines.append(f"shared_preload_libraries = '{','.join(preload)}'")
            lines.append(f"cron.database_name = '{self.settings.database}'")
        if server_venv is not None:
            lines.append(f"pgml.venv = '{server_venv}'")
        lines.extend(self._extra_conf_lines())
        conf = self.data_dir / _CONF_NAME
        text = "\n".join(lines) + "\n"
        old = conf.read_text() if conf.exists() else ""
        if old != text:
            conf.write_text(text)
            user = pwd.getpwnam(state.os_user)
            os.chown(conf, user.pw_uid, user.pw_gid)
        return _preload_line(old) != _preload_line(text)

    def _preload_libraries(self) -> list[str]:
        """``shared_preload_libraries`` of this cluster (a Citus node puts citus first)."""
        return [lib for lib in ("pg_cron", "pgml_native")
                if self.installation.has_extension_library(lib)]

    def _extra_conf_lines(self) -> list[str]:
        """Settings a kind of cluster adds to pgml-flow's (a Citus node: its own)."""
        return []

    def _ensure_database(self, state: ClusterState) -> None:
        import psycopg

        admin = self.url("postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.settings.database,)
            ).fetchone()
            if not exists:
                from psycopg import sql

                conn.execute(sql.SQL("CREATE DATABASE {}").format(
                    sql.Identifier(self.settings.database)
                ))

    def _stale_preloaded_library(self) -> str | None:
        """A preloaded library installed after the running server started, if any."""
        try:
            started = (self.data_dir / "postmaster.pid").stat().st_mtime
        except (FileNotFoundError, PermissionError):
            return None
        for lib in ("pgml_native",):
            path = self.installation.pkglibdir / f"{lib}.so"
            if path.exists() and path.stat().st_mtime > started:
                return lib
        return None

    def _check_ownership(self, state: ClusterState) -> None:
        owner = self.data_dir.stat().st_uid
        expected = pwd.getpwnam(state.os_user).pw_uid
        if os.geteuid() != 0 and owner != os.geteuid():
            raise ClusterError(
                f"the data directory {self.data_dir} belongs to "
                f"{_user_name(owner)}, not to you ({_user_name(os.geteuid())}); run pgml-flow as "
                f"{_user_name(owner)}, or point PGML_FLOW_HOME at a directory of your own"
            )
        if os.geteuid() == 0 and owner != expected:
            raise ClusterError(
                f"the data directory {self.data_dir} belongs to {_user_name(owner)} but the "
                f"server runs as {state.os_user}; fix it with "
                f"`chown -R {state.os_user} {self.data_dir}` or use another PGML_FLOW_HOME"
            )

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        """The server user must be able to reach the data directory through its parents."""
        if os.geteuid() != 0:
            return
        probe = subprocess.run(
            ["test", "-w", str(self.data_dir)],
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], check=False,
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"the server runs as the OS user {user.pw_name}, who cannot reach "
                f"{self.data_dir} (a parent directory is not searchable); "
                "set PGML_FLOW_HOME to a directory outside /root, e.g. /var/lib/pgml-flow"
            )

    def _claim_port(self, state: ClusterState) -> ClusterState:
        """The port to start on: the recorded one when free.

        When another process holds it, a port the user chose (PGML_FLOW_PORT) is an error
        that says so; a port pgml-flow chose is chosen again (a free one, recorded in
        ``cluster.json``), so that a busy port never stops the embedded server for good.
        """
        if _port_free(state.port):
            return state
        if self.settings.port is not None:
            raise ClusterError(
                f"port {state.port} on 127.0.0.1 (PGML_FLOW_PORT) is in use by another "
                "process, so the embedded server cannot start; stop that process, choose "
                "another port with PGML_FLOW_PORT, or unset it to let pgml-flow pick a free one"
            )
        port = _free_port(_FIRST_PORT)
        logger.warning("port %s on 127.0.0.1 is in use by another process; the embedded "
                       "server moves to port %s (recorded in %s)", state.port, port,
                       self.state_file, extra={"action": "port_moved", "port": port})
        return self._record_port(state, port)

    def _record_port(self, state: ClusterState, port: int) -> ClusterState:
        state = ClusterState(**{**asdict(state), "port": port})
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")
        return state

    def _postmaster_pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError, PermissionError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def _pg_ctl(self, args: Sequence[str], state: ClusterState, *, failure: str) -> None:
        self._run_as(
            [str(self.installation.tool("pg_ctl")), "-D", str(self.data_dir), *args],
            state,
            failure=failure,
        )

    def _run_as(self, argv: Sequence[str], state: ClusterState, *, failure: str) -> None:
        user = pwd.getpwnam(state.os_user)
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {
            "PATH": f"{self.installation.bindir}:/usr/bin:/bin",
            "HOME": user.pw_dir,
            "LANG": "C.UTF-8",
        }
        result = subprocess.run(
            list(argv),
            cwd=str(self.data_dir),
            env=env,
            capture_output=True,
            text=True,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            log_tail = _tail(self.log_file, 15)
            raise ClusterError(
                f"{failure}: {detail}" + (f"\nlast lines of {self.log_file}:\n{log_tail}"
                                         if log_tail else "")
            )


def wait_until_accepting(url: str, timeout: float = 30.0) -> None:
    """Block until a server answers, for callers that start one asynchronously."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(first: int) -> int:
    for port in range(first, first + 200):
        if _port_free(port):
            return port
    raise ClusterError(f"no free TCP port in {first}-{first + 199}; set PGML_FLOW_PORT")


def _preload_line(conf: str) -> str:
    return next((line for line in conf.splitlines()
                 if line.startswith("shared_preload_libraries")), "")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except (FileNotFoundError, PermissionError):
        return ""
