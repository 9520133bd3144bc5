"""A local hot standby of the embedded cluster: read replicas for tests and demos.

Prediction reads scale out across PostgreSQL's own read replicas, with nothing of ours in
between: a standby made by ``pg_basebackup -R`` from the primary receives models, deployments
and the pgml-flow schema by ordinary streaming replication, and serves ``pgml.predict``, the
``analytics`` views and the monitoring views from them.  ``pgml-flow db replica start``
makes one under ``$PGML_FLOW_HOME/replica`` (data, socket, log, its own port), as the same
unprivileged OS user as the primary; on a real deployment, the operator's usual standby
(pg_basebackup, Patroni, a cloud read replica) does the same job and pgml-flow needs nothing
from it but a URL (``DATABASE_READ_URL``).

What a standby cannot do is write: a BI read there logs no predictions
(``pgml_flow.log_predictions`` returns 0 in a read-only transaction, never an error).  That
is "kept for later", not lost: the log records each distinct (item, model, prediction) once,
predictions are deterministic for a deployed model, and the primary's next read of the same
items (a dashboard, the scheduler's refresh) logs exactly the rows the standby served.  Only
the standby's response times are not recorded (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgml_flow.cluster import SUPERUSER, Cluster, ClusterState, Status, _free_port, _tail
from pgml_flow.errors import ClusterError

#: where a replica lives, under the primary's home
REPLICA_DIR = "replica"


@dataclass(frozen=True)
class ReplicaStatus:
    """What ``db replica status`` shows."""

    running: bool
    pid: int | None
    port: int | None
    url: str | None
    data_dir: Path
    log_file: Path
    #: bytes of WAL the standby has received but not replayed yet, or is behind the primary
    replay_lag_bytes: int | None = None
    #: the standby answered ``pg_is_in_recovery()``
    in_recovery: bool | None = None


class Replica(Cluster):
    """A hot standby of ``primary``, in ``primary.home / "replica"``."""

    def __init__(self, primary: Cluster) -> None:
        settings = dataclasses.replace(primary.settings, home=primary.home / REPLICA_DIR,
                                       port=None)
        super().__init__(settings, primary.installation)
        self.primary = primary

    def start(self, *, server_venv: Path | None = None) -> Status:
        """Clone the running primary (first time) and start the standby; idempotent."""
        if not self.primary.status().running:
            raise ClusterError("the primary embedded cluster is not running; start it with "
                               "`pgml-flow db start` before `pgml-flow db replica start`")
        if not self.initialized:
            self._base_backup()
        state = self.state()
        if self._postmaster_pid() is None:
            state = self._claim_port(state)
        # the primary's pgml_flow.conf came with the copy: this one names our port and socket
        self._write_conf(state, server_venv)
        if self._postmaster_pid() is None:
            self._pg_ctl(["start", "-w", "-t", "180", "-l", str(self.log_file)], state,
                         failure="the standby did not start")
        return self.status()

    def _write_conf(self, state: ClusterState, server_venv: Path | None) -> bool:
        """The primary's settings with this standby's port and socket, plus one line.

        The first start after pg_basebackup recovers from the backup label and would fsync
        every file of the copy one by one (over a minute for a busy development cluster on a
        slow disk); ``syncfs`` syncs the file system in one call instead (PostgreSQL 14+).
        """
        changed = super()._write_conf(state, server_venv)
        conf = self.data_dir / "pgml_flow.conf"
        text = conf.read_text()
        if "recovery_init_sync_method" not in text:
            conf.write_text(text + "recovery_init_sync_method = syncfs\n")
        return changed

    def remove(self) -> None:
        """Stop the standby and delete its files (the primary is untouched)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def replica_status(self) -> ReplicaStatus:
        status = self.status()
        url = self.url() if self.initialized else None
        lag: int | None = None
        in_recovery: bool | None = None
        if status.running and url is not None:
            with contextlib.suppress(Exception):
                lag, in_recovery = self._lag(url)
        return ReplicaStatus(status.running, status.pid, status.port, url, status.data_dir,
                             status.log_file, lag, in_recovery)

    def wait_for_replay(self, timeout: float = 120.0) -> float:
        """Block until the standby has replayed everything the primary wrote until now.

        Returns the seconds it took; the caller's next read on the standby sees every
        transaction the primary had committed when this was called.
        """
        import psycopg

        started = time.monotonic()
        with psycopg.connect(self.primary.url("postgres"), autocommit=True) as conn:
            # the insert position: with synchronous_commit = off a commit's record may not be
            # written yet (the WAL writer sends it within wal_writer_delay)
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        target = row[0] if row else None
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
                if done and done[0]:
                    return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    raise ClusterError(
                        f"the standby did not replay the primary's WAL up to {target} in "
                        f"{timeout:.0f} s; last lines of {self.log_file}:\n"
                        + _tail(self.log_file, 15))
                time.sleep(0.05)

    # -- internals -----------------------------------------------------------------------
    def _base_backup(self) -> None:
        primary = self.primary.state()
        user = self._os_user_of(primary)
        if self.home.exists():
            shutil.rmtree(self.home)  # a half-made copy from an interrupted start
        # pg_basebackup fills an empty data directory of ours (and runs in it)
        for directory in (self.home, self.data_dir, self.socket_dir, self.log_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, user[0], user[1])
        self.data_dir.chmod(0o700)
        self.socket_dir.chmod(0o700)
        state = ClusterState(port=_free_port(primary.port + 1), os_user=primary.os_user,
                             superuser=SUPERUSER, major=primary.major)
        # -R writes primary_conninfo and standby.signal: a standby from its first start;
        # -X stream copies the WAL written meanwhile, -c fast does not wait for a checkpoint
        self._run_as([str(self.installation.tool("pg_basebackup")),
                      "-D", str(self.data_dir), "-R", "-X", "stream", "-c", "fast",
                      "--no-sync",  # the standby's first start syncs it (syncfs)
                      "-h", str(self.primary.socket_dir), "-p", str(primary.port),
                      "-U", primary.superuser],
                     state, failure="pg_basebackup from the primary failed")
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    @staticmethod
    def _os_user_of(state: ClusterState) -> tuple[int, int]:
        import pwd

        entry = pwd.getpwnam(state.os_user)
        return entry.pw_uid, entry.pw_gid

    def _lag(self, url: str) -> tuple[int | None, bool]:
        import psycopg

        with psycopg.connect(self.primary.url("postgres"), autocommit=True,
                             connect_timeout=3) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        primary_lsn = row[0] if row else None
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            got: Any = conn.execute(
                "SELECT pg_is_in_recovery(), "
                "pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::bigint",
                (primary_lsn,)).fetchone()
        return (max(0, int(got[1])) if got[1] is not None else None), bool(got[0])
