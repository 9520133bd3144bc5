"""Generate ``docs/cli.md`` from the commands' own ``--help``.

The reference is generated, never written by hand, and a test fails when it is
stale: run ``python -m cli.reference > docs/cli.md`` after changing a command.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.testing import CliRunner

from cli.app import app

HEADER = """# CLI reference

Generated from `--help` by `python -m cli.reference > docs/cli.md`; a test fails when
this file is stale. Every option can also be set through the environment variable
shown next to it.

Output is for people and for pipes alike:

- on a terminal, tables fit its width: cells wrap between words and no value is cut with
  `…`; a table too wide for that loses its box, then shows each row as a record;
- when stdout is a pipe or a file, tables are plain aligned text (a title line, a header
  line, one line per row, nothing cut), ready for `grep`, `sort` or `column`;
- `--json` (or `PGML_FLOW_JSON=1`) prints JSON on stdout, on every command that prints
  data; `db url` prints only the URL, so that `psql "$(pgml-flow db url)"` works;
- long work (`train`, `retrain`, `seed`, `demo`, `verify isolation`, `bench`) reports its
  progress on stderr: a progress bar on a terminal, one line per step otherwise;
- `pgml-flow --version` prints the version.
"""


def _commands(group: Any, path: list[str]) -> list[list[str]]:
    found = [path]
    subcommands = getattr(group, "commands", {})
    for name in sorted(subcommands):
        found.extend(_commands(subcommands[name], [*path, name]))
    return found


def render() -> str:
    command = typer.main.get_command(app)
    runner = CliRunner()
    parts = [HEADER]
    env = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
    for path in _commands(command, []):
        result = runner.invoke(app, [*path, "--help"], env=env, prog_name="pgml-flow")
        title = " ".join(["pgml-flow", *path])
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        parts.append(f"## `{title}`\n\n```text\n{text.strip(chr(10))}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    print(render(), end="")
