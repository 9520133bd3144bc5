"""Reading the files of an import: gzip or not, JSON with its error position, CSV with the
line each record starts on, directories expanded to the files they hold."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from pgml_flow.errors import ConfigurationError, MalformedFile
from pgml_flow.imports.records import display


def open_text(path: Path) -> IO[str]:
    """The file as text (UTF-8; ``.gz`` decompressed), with universal newlines off for CSV."""
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {display(path)}: {exc.strerror or exc}") from None


def load_json(path: Path) -> Any:
    """A JSON document; a syntax error names the line and column."""
    try:
        with open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise MalformedFile(f"{display(path)}:{exc.lineno}:{exc.colno}: not valid JSON: "
                            f"{exc.msg}; nothing was imported") from None
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"{display(path)}: not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start}); nothing was imported") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise MalformedFile(f"{display(path)}: cannot be read: {exc}; nothing was "
                            "imported") from None


def csv_records(path: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells) of every record, the header first."""
    csv.field_size_limit(sys.maxsize)  # descriptions of real issues exceed the 128 KiB default
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        line = 1
        try:
            for row in reader:
                yield line, row
                line = reader.line_num + 1
        except csv.Error as exc:
            raise MalformedFile(f"{display(path)}:{line}: not valid CSV: {exc}; nothing was "
                                "imported") from None
        except UnicodeDecodeError as exc:
            raise MalformedFile(f"{display(path)}:{line}: not UTF-8 text ({exc.reason}); "
                                "nothing was imported") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise MalformedFile(f"{display(path)}: cannot be read: {exc}; nothing was "
                                "imported") from None


def expand(paths: Sequence[Path], suffixes: Sequence[str]) -> list[Path]:
    """Each file as given, each directory as its files with one of ``suffixes``, by name."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir()
                            if p.is_file() and any(p.name.endswith(s) for s in suffixes))
            if not inside:
                raise ConfigurationError(f"{display(path)} holds no {' or '.join(suffixes)} "
                                         "files to import")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigurationError(f"{display(path)} does not exist")
    return found
