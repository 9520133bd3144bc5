"""Published numbers of a dataset's ``published_results.csv`` (read at run time)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from pgml_flow.errors import ConfigurationError


def read(root: Path, pick: Callable[[dict[str, str]], str | None],
         column: str = "MAE") -> dict[str, dict[str, float]]:
    """``{method label: {project: value}}`` of the rows of ``published_results.csv`` that
    ``pick`` names a label for (None: not compared with)."""
    path = root / "published_results.csv"
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing: give --path the dataset's folder "
                                 "(it ships published_results.csv)")
    found: dict[str, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = pick(row)
            if label is None or not row.get(column):
                continue
            found.setdefault(label, {})[row["project"]] = float(row[column])
    return found
