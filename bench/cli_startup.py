"""How long ``pgml-flow`` takes to start: import time and wall time per command.

Run from the repository root (``status`` and ``db url`` read the database pgml-flow is
configured for, so the embedded cluster should be running)::

    .venv/bin/python bench/cli_startup.py --repeat 7
    .venv/bin/python bench/cli_startup.py --json -- status --client 1

Each command runs in a fresh interpreter under ``python -X importtime``; the import time
is the sum of the top-level imports it reports (everything the process imported, the
interpreter's own start-up included), the wall time that of the whole process. The
figures are medians of ``--repeat`` runs. ``heavy`` lists the expensive packages the
command imported: ``--help``, ``db url`` and ``status`` should import none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: commands measured by default, as argv after ``pgml-flow``
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",), ("--version",), ("db", "url"), ("status",), ("db", "status"),
    ("models", "list"),
)
#: packages that cost tens of milliseconds or more to import
HEAVY = ("alembic", "sqlalchemy", "numpy", "scipy", "sklearn", "xgboost", "lightgbm",
         "apscheduler", "prometheus_client", "psycopg_pool")
TARGET_MS = 300.0
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
_RUN = "import sys; sys.argv[0] = 'pgml-flow'; from cli.app import main; main()"


@dataclass
class Startup:
    command: str
    import_ms: float
    wall_ms: float
    exit_code: int
    heavy: list[str]


def measure(args: tuple[str, ...], repeat: int) -> Startup:
    imports: list[float] = []
    walls: list[float] = []
    heavy: set[str] = set()
    code = 0
    env = {**os.environ, "COLUMNS": "100"}
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", _RUN, *args],
                              capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        walls.append((time.perf_counter() - start) * 1000)
        code = done.returncode
        total = 0
        for line in done.stderr.splitlines():
            match = _LINE.match(line)
            if not match:
                continue
            name = match.group(4)
            if len(match.group(3)) == 1:  # top level: one space after the bar
                total += int(match.group(2))
            if name.split(".")[0] in HEAVY:
                heavy.add(name.split(".")[0])
        imports.append(total / 1000)
    return Startup(" ".join(("pgml-flow", *args)), statistics.median(imports),
                   statistics.median(walls), code, sorted(heavy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("command", nargs="*", help="one command to measure (after --)")
    options = parser.parse_args()
    commands = [tuple(options.command)] if options.command else list(COMMANDS)
    figures = [measure(args, options.repeat) for args in commands]
    if options.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
        return
    width = max(len(f.command) for f in figures)
    print(f"{'command':<{width}}  {'import ms':>9}  {'wall ms':>7}  exit  heavy imports")
    for f in figures:
        flag = "" if f.import_ms <= TARGET_MS else "  (over 300 ms)"
        print(f"{f.command:<{width}}  {f.import_ms:>9.0f}  {f.wall_ms:>7.0f}  {f.exit_code:>4}  "
              f"{', '.join(f.heavy) or '-'}{flag}")


if __name__ == "__main__":
    main()
