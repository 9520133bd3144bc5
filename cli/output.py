"""What every command module shares: the consoles, the library facade, JSON output."""

from __future__ import annotations

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
