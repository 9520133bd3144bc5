"""Progress of long work, shown the same way by every command (on stderr).

On a terminal: a rich progress bar with the step in hand, steps done and time elapsed,
gone when the work ends.  Otherwise (a pipe, a log file, CI): one line per step, with
the step count and the seconds since the start.  The library never prints; it reports
through callbacks (``progress=`` of train, retrain, seed, the isolation audit and the
benchmarks), which commands turn into calls of a :class:`Steps`::

    with steps("training", total=len(ids) * len(specs)) as step:
        pf.train(names, ids, progress=lambda r: step(f"{r.project}: {r.status}"))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cli.output import err_console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Steps:
    """Call it once per step: ``step(label)``; ``advance=0`` names the step in hand only."""

    def __init__(self, description: str, total: int | None, *, log: bool,
                 bar: tuple[Progress, TaskID] | None) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.log = log
        self._bar = bar
        self._started = time.monotonic()

    def __call__(self, label: str = "", *, advance: int = 1, total: int | None = None) -> None:
        self.done += advance
        if total is not None:
            self.total = total
        if self._bar is not None:
            progress, task = self._bar
            progress.update(task, advance=advance, total=self.total,
                            description=f"{self.description}: {label}" if label
                            else self.description)
            if self.log and label:
                progress.console.print(f"[dim]{label}[/dim]", highlight=False)
            return
        count = f" {self.done}/{self.total}" if advance and self.total else ""
        text = f": {label}" if label else ""
        seconds = time.monotonic() - self._started
        sys.stderr.write(f"{self.description}{count}{text} ({seconds:.1f} s)\n")
        sys.stderr.flush()


@contextmanager
def steps(description: str, total: int | None = None, *, log: bool = False) -> Iterator[Steps]:
    """Progress of one piece of long work; ``log`` also keeps each step's line on a terminal
    (for work that takes minutes, like the benchmarks)."""
    if not err_console.is_terminal:
        yield Steps(description, total, log=log, bar=None)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err_console.console,
                  transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield Steps(description, total, log=log, bar=(progress, task))
