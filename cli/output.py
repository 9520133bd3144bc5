"""What every command module shares: the consoles, the library facade, JSON output."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.console import Console

from pgml_flow.app import PgmlFlow

console = Console()
err_console = Console(stderr=True)


def flow() -> PgmlFlow:
    return PgmlFlow()


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def cell(value: Any, spec: str = "") -> str:
    """A table cell: empty for None, minutes for times, else ``format(value, spec)``."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return format(value, spec)
