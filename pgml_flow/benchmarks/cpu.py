"""CPU seconds of a server process, read from ``/proc``: what benchmarks on a shared
machine report beside wall time, since other work on the cores stretches the wall clock
but not the core-seconds a process spends."""

from __future__ import annotations

import os

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
