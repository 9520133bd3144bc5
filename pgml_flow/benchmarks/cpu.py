"""CPU seconds of a server process, read from ``/proc``: what benchmarks on a shared
machine report beside wall time, since other work on the cores stretches the wall clock
but not the core-seconds a process spends."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgml_flow import sqlfiles

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User and system time of process ``pid`` and of its reaped children (a backend's
    training child and search workers), in seconds: fields 14-17 of ``/proc/<pid>/stat``
    (utime, stime, cutime, cstime; proc(5)).

    Raises FileNotFoundError when the process has ended, another OSError when it cannot be
    read (a server on another machine, or another user's process under a hardened /proc).
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # the name (field 2) may hold spaces and parentheses: split after its last ')'
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / _TICKS


@dataclass(frozen=True)
class Node:
    """A server whose backends' CPU is read: a label and a superuser URL of the database."""

    label: str
    url: str


class BackendCpu:
    """Core-seconds used by a database's backends on each node while a block runs.

    A thread lists each node's backends of the database (pg_stat_activity) every
    ``interval`` and reads ``/proc/<pid>/stat``: user and system time of the process and
    of its reaped children (the training child and its search workers).  A backend's last
    reading stands for its total, so at most ``interval`` of a backend's work is missed
    when it ends.  ``seconds`` is None when a node's processes cannot be read (a server on
    another machine).
    """

    def __init__(self, nodes: Sequence[Node], interval: float = 0.2) -> None:
        self.nodes = list(nodes)
        self.interval = interval
        self.seen: dict[tuple[str, int], float] = {}
        self.start: dict[tuple[str, int], float] = {}
        self.readable = bool(self.nodes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="backend-cpu")
        self._conns: dict[str, psycopg.Connection[Any]] = {}

    def __enter__(self) -> BackendCpu:
        if self.readable:
            self._sample()
            self.start = dict(self.seen)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.readable:
            self._stop.set()
            self._thread.join()
        for conn in self._conns.values():
            conn.close()

    @property
    def seconds(self) -> dict[str, float] | None:
        if not self.readable:
            return None
        out = {node.label: 0.0 for node in self.nodes}
        for (label, pid), value in self.seen.items():
            out[label] += value - self.start.get((label, pid), 0.0)
        return out

    @property
    def total(self) -> float | None:
        """The core-seconds of every node together (None: not readable)."""
        seconds = self.seconds
        return None if seconds is None else sum(seconds.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
        self._sample()

    def _sample(self) -> None:
        for node in self.nodes:
            try:
                conn = self._conns.get(node.label)
                if conn is None or conn.closed:
                    conn = self._conns[node.label] = psycopg.connect(node.url, autocommit=True)
                database = conninfo_to_dict(node.url).get("dbname")
                pids = [int(r[0]) for r in conn.execute(sqlfiles.query("backends", "bench"),
                                                        {"database": database}).fetchall()]
            except psycopg.Error:
                continue  # a restart, say: the next sample reads again
            for pid in pids:
                try:
                    self.seen[(node.label, pid)] = process_cpu_seconds(pid)
                except FileNotFoundError:
                    continue  # ended since
                except OSError:
                    self.readable = False
                    return
