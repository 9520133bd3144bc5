"""A local Citus cluster: a coordinator and N workers as embedded PostgreSQL instances.

When tenants outgrow one server, pgml-flow runs on Citus, PostgreSQL's own engine for
tables distributed by a tenant column (``client_id``).  ``pgml-flow db cluster start
--workers 2`` makes one on this machine for development, tests and benchmarks: each node is
an embedded cluster (:class:`pgml_flow.cluster.Cluster`, the same life cycle as ``db
start``) under ``$PGML_FLOW_HOME/citus/<node>`` with its own loopback port, run by the same
unprivileged OS user, with ``shared_preload_libraries`` = citus first (Citus requires it),
then pgml_native, and the server venv as ``pgml.venv`` on every node (a worker runs the
pgml API's Python when a query for a tenant's shard lands there).

The nodes reach each other through their unix sockets (``citus_add_node('<socket dir>',
port)``): the socket directories are private to the server's OS user, connections through
them are trusted like the embedded cluster's own, and no password has to be stored
anywhere.  Citus is built from the vendored source when the server lacks it
(:mod:`pgml_flow.citus_build`).

An existing Citus cluster given by ``DATABASE_URL`` is used as it is: :func:`is_citus`
detects it in the catalog and nothing local is started.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgml_flow.cluster import Cluster, _free_port, _port_free
from pgml_flow.errors import ClusterError, ConfigurationError
from pgml_flow.postgres import Installation, find_installation
from pgml_flow.settings import Settings

logger = logging.getLogger(__name__)
#: starts of a node whose port another process took between the check and the bind
_START_ATTEMPTS = 3

#: where the local Citus cluster lives, under ``$PGML_FLOW_HOME``
CITUS_DIR = "citus"
#: first port tried for the coordinator; the workers take the next free ones
FIRST_PORT = 54400
#: shards per distributed table on the local cluster (Citus's default, 32, is meant for
#: many cores; on a development machine 8 keeps DDL and migrations quick)
LOCAL_SHARD_COUNT = 8


@dataclass(frozen=True)
class NodeStatus:
    """One node as ``db cluster status`` shows it."""

    name: str
    role: str  # coordinator | worker
    running: bool
    port: int | None
    #: registered in the coordinator's ``pg_dist_node`` and active there
    active: bool | None
    data_dir: Path | None


@dataclass(frozen=True)
class CitusStatus:
    """The cluster: where to connect and its nodes."""

    url: str | None
    local: bool
    citus_version: str | None
    nodes: list[NodeStatus]

    @property
    def active_workers(self) -> int:
        return sum(1 for n in self.nodes if n.role == "worker" and n.active)


class CitusNode(Cluster):
    """One node of the local Citus cluster: an embedded cluster with citus preloaded."""

    def __init__(self, settings: Settings, installation: Installation, name: str) -> None:
        super().__init__(settings, installation)
        self.name = name

    def _preload_libraries(self) -> list[str]:
        # citus must come first in shared_preload_libraries (it refuses to load otherwise);
        # pg_cron stays on the single-server cluster: the scheduler targets the coordinator
        return ["citus"] + [lib for lib in ("pgml_native",)
                            if self.installation.has_extension_library(lib)]

    def _extra_conf_lines(self) -> list[str]:
        return [
            f"citus.shard_count = {LOCAL_SHARD_COUNT}",
            # the coordinator's connections to itself go through its socket, like the others
            f"citus.local_hostname = '{self.socket_dir}'",
            # three servers on a small machine share its cores and memory
            "max_worker_processes = 32",
        ]


class CitusCluster:
    """The local coordinator and workers under ``settings.home / "citus"``."""

    def __init__(self, settings: Settings, installation: Installation | None = None) -> None:
        self.settings = settings
        self.home = settings.home / CITUS_DIR
        self._installation = installation

    # -- nodes ---------------------------------------------------------------------------
    @property
    def installation(self) -> Installation:
        if self._installation is None:
            self._installation = find_installation(self.settings.pg_bin)
        return self._installation

    @property
    def state_file(self) -> Path:
        return self.home / "citus.json"

    def worker_count(self) -> int:
        """Workers recorded by the last ``start`` (0: never started)."""
        try:
            return int(json.loads(self.state_file.read_text())["workers"])
        except (FileNotFoundError, KeyError, ValueError):
            return 0

    def node(self, name: str) -> CitusNode:
        settings = dataclasses.replace(self.settings, home=self.home / name, port=None,
                                       database_url=None)
        return CitusNode(settings, self.installation, name)

    @property
    def coordinator(self) -> CitusNode:
        return self.node("coordinator")

    def workers(self, count: int | None = None) -> list[CitusNode]:
        n = self.worker_count() if count is None else count
        return [self.node(f"worker{i}") for i in range(1, n + 1)]

    def url(self, database: str | None = None) -> str:
        """The coordinator's URL: where applications, BI tools and migrations connect."""
        if self.settings.external:
            return self.settings.database_url or ""
        if not self.coordinator.initialized:
            raise ClusterError("no local Citus cluster yet; create it with "
                               "`pgml-flow db cluster start --workers 2`")
        return self.coordinator.url(database)

    # -- life cycle ------------------------------------------------------------------------
    def start(self, workers: int | None = None, *, server_venv: Path | None = None
              ) -> CitusStatus:
        """Create (first time), start and join the coordinator and ``workers`` workers.

        Idempotent: a running cluster stays as it is, a stopped one restarts with its
        nodes.  More workers than recorded adds the new ones (:meth:`add_worker`); fewer is
        refused (removing a worker moves its shards: ``citus_drain_node`` first).
        """
        if self.settings.external:
            return self._external_status(require=True)
        count = self.worker_count() if workers is None else workers
        if count < 1:
            count = 2 if self.worker_count() == 0 else self.worker_count()
        if count < self.worker_count():
            raise ConfigurationError(
                f"the local Citus cluster has {self.worker_count()} workers; --workers {count} "
                "would remove some, which this command does not do (drain a worker with "
                "citus_drain_node, then remove it with citus_remove_node)")
        self._ensure_citus()
        if server_venv is None:
            # every start names the venv: the nodes' configuration is rewritten each time,
            # and a node without pgml.venv could not run the pgml API's Python. The one the
            # cluster was made with is kept (checking a venv imports numpy, scikit-learn...
            # in a subprocess: seconds) unless PGML_FLOW_SERVER_VENV names one
            server_venv = self._recorded_venv()
            if server_venv is None or self.settings.server_venv is not None:
                from pgml_flow import server_venv as venvs

                server_venv = venvs.resolve(self.settings.home, self.settings.server_venv,
                                            self.coordinator.server_user())
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)
        nodes = [self.coordinator, *self.workers(count)]
        # ports first, one by one (each new node past the ones already taken), then the
        # nodes in parallel: initdb, start and CREATE EXTENSION mostly wait on disk
        taken = {n.state().port for n in self._siblings() if n.initialized}
        for node in nodes:
            if not node.initialized:
                port = FIRST_PORT
                while port in taken or _free_port(port) != port:
                    port += 1
                taken.add(port)
                node.settings = dataclasses.replace(node.settings, port=port)
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            for done in [pool.submit(self._start_node, node, server_venv) for node in nodes]:
                done.result()
        self.state_file.write_text(json.dumps({"workers": count}, indent=2) + "\n")
        with self._connect() as conn:
            self._register(conn, nodes[1:])
        return self.status()

    def add_worker(self, *, server_venv: Path | None = None) -> NodeStatus:
        """Start one more worker and join it (its shards come with the rebalancer)."""
        status = self.start(self.worker_count() + 1, server_venv=server_venv)
        return [n for n in status.nodes if n.role == "worker"][-1]

    def stop(self, *, immediate: bool = False) -> CitusStatus:
        """Stop every local node; their data stays.

        ``immediate`` skips the shutdown checkpoint (the next start recovers from the WAL):
        for a cluster whose files are deleted next, such as the test suite's.
        """
        if self.settings.external:
            raise ConfigurationError("DATABASE_URL names an existing Citus cluster, which "
                                     "pgml-flow does not stop; stop it the way it was started")
        mode = "immediate" if immediate else "fast"
        # every node directory, not only the recorded workers: a start that failed half-way
        # (before recording its worker count) leaves none running
        running = [n for n in self._siblings() if n.initialized and n.status().running]
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            for done in [pool.submit(n._pg_ctl, ["stop", "-w", "-t", "60", "-m", mode],
                                     n.state(), failure=f"stopping {n.name} failed")
                         for n in running]:
                done.result()
        return self.status()

    def status(self) -> CitusStatus:
        if self.settings.external:
            return self._external_status(require=False)
        local = [self.coordinator, *self.workers()]
        registered: dict[int, bool] = {}
        version = None
        if self.coordinator.initialized and self.coordinator.status().running:
            try:
                with self._connect() as conn:
                    version = _citus_version(conn)
                    registered = {port: active for _, port, active in _dist_nodes(conn)}
            except psycopg.Error as exc:
                logger.info("reading pg_dist_node failed: %s", exc)
        nodes = []
        for node in local:
            st = node.status()
            is_coord = node.name == "coordinator"
            nodes.append(NodeStatus(node.name, "coordinator" if is_coord else "worker",
                                    st.running, st.port,
                                    None if is_coord else registered.get(st.port or -1, False),
                                    st.data_dir))
        url = self.coordinator.url() if self.coordinator.initialized else None
        return CitusStatus(url, True, version, nodes)

    # -- internals -----------------------------------------------------------------------
    def _ensure_citus(self) -> None:
        from pgml_flow import citus_build

        citus_build.ensure(self.installation, home=self.settings.home,
                           auto_install=self.settings.auto_install)

    def _start_node(self, node: CitusNode, server_venv: Path | None) -> None:
        node.home.mkdir(parents=True, exist_ok=True)
        if not node.initialized:
            node._initdb()  # on the port chosen for it (recorded in its cluster.json)
        # from here the port is pgml-flow's choice, not the user's: when another process
        # took it meanwhile, start picks another one instead of failing
        node.settings = dataclasses.replace(node.settings, port=None)
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                node.start(server_venv=server_venv)
                break
            except ClusterError:
                # the port was free when start checked it, and taken before the server
                # bound it (another session's cluster starting at the same moment): the
                # next start sees it taken and moves to the next free port
                if attempt == _START_ATTEMPTS or node._postmaster_pid() is not None \
                        or _port_free(node.state().port):
                    raise
                logger.warning("port %s of the Citus node %s was taken as it started; "
                               "retrying on another", node.state().port, node.home.name,
                               extra={"action": "citus_port_retry"})
        with psycopg.connect(node.url(), autocommit=True) as conn:
            # Citus on every node (a worker needs the extension before citus_add_node), and
            # plpython3u: the pgml API's functions propagate to the workers and run there.
            # Only the missing ones: a joined worker refuses DDL on distributed objects,
            # even CREATE EXTENSION IF NOT EXISTS of one it has.
            present = {name for (name,) in conn.execute("SELECT extname FROM pg_extension")}
            for extension in ("citus", "plpython3u"):
                if extension not in present:
                    conn.execute(sql.SQL("CREATE EXTENSION {}").format(
                        sql.Identifier(extension)))

    def _recorded_venv(self) -> Path | None:
        """The ``pgml.venv`` in the coordinator's configuration, if it still exists."""
        conf = self.coordinator.data_dir / "pgml_flow.conf"
        try:
            lines = conf.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        for line in lines:
            if line.startswith("pgml.venv = '"):
                venv = Path(line.split("'")[1])
                return venv if (venv / "bin" / "python").exists() else None
        return None

    def _siblings(self) -> list[CitusNode]:
        names = sorted(p.name for p in self.home.iterdir() if p.is_dir()) \
            if self.home.exists() else []
        return [self.node(name) for name in names]

    def _register(self, conn: psycopg.Connection, workers: list[CitusNode]) -> None:
        """Record the coordinator's address and join each worker (idempotent).

        A node whose port changed since it joined (the old one was taken when it
        restarted) is updated in place with ``citus_update_node``.
        """
        coordinator = self.coordinator
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)",
                     (str(coordinator.socket_dir), coordinator.state().port))
        known = {name: (nodeid, port) for nodeid, name, port in conn.execute(
            "SELECT nodeid, nodename, nodeport FROM pg_dist_node WHERE groupid <> 0"
        ).fetchall()}
        for worker in workers:
            host, port = str(worker.socket_dir), worker.state().port
            if host not in known:
                conn.execute("SELECT citus_add_node(%s, %s)", (host, port))
                logger.info("joined worker %s", worker.name, extra={"action": "citus_add_node"})
            elif known[host][1] != port:
                conn.execute("SELECT citus_update_node(%s, %s, %s)", (known[host][0], host, port))

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.coordinator.url(), autocommit=True)

    def _external_status(self, *, require: bool) -> CitusStatus:
        url = self.settings.database_url or ""
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                version = _citus_version(conn)
                if version is None:
                    if require:
                        raise ConfigurationError(
                            "DATABASE_URL names a server without the citus extension; "
                            "install Citus there (docs/scale-out.md) or unset DATABASE_URL to "
                            "start a local cluster")
                    return CitusStatus(url, False, None, [])
                rows = conn.execute(
                    "SELECT nodename, nodeport, isactive, groupid = 0 FROM pg_dist_node "
                    "ORDER BY groupid, nodeid").fetchall()
        except psycopg.OperationalError as exc:
            raise ClusterError(f"cannot reach DATABASE_URL: {exc}") from exc
        nodes = [NodeStatus(f"{name}:{port}", "coordinator" if coord else "worker", True,
                            port, None if coord else bool(active), None)
                 for name, port, active, coord in rows]
        return CitusStatus(url, False, version, nodes)


def is_citus(conn: psycopg.Connection[Any]) -> bool:
    """True when the database has the citus extension: the migrations distribute tables."""
    return _citus_version(conn) is not None


def _citus_version(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
    return str(row[0]) if row else None


def _dist_nodes(conn: psycopg.Connection[Any]) -> list[tuple[str, int, bool]]:
    return [(str(n), int(p), bool(a)) for n, p, a in conn.execute(
        "SELECT nodename, nodeport, isactive FROM pg_dist_node WHERE groupid <> 0").fetchall()]
