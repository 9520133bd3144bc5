"""Any CSV file of issues or pull requests: ``--map column=field`` says which column holds
which field (docs/import.md lists them); a column named like a field maps itself. A column
mapped to ``attributes.NAME`` is kept as text under NAME in ``attributes``. Empty cells are
NULL: the source does not say.

Issues belong to the project their key names (``ABC`` of ``ABC-12``), pull requests to
their repository: one client each, unless ``--client`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgml_flow.errors import ConfigurationError
from pgml_flow.imports import records as r
from pgml_flow.imports.files import csv_records

ATTRIBUTE = "attributes."
#: fields a file must map, per kind
REQUIRED = {"issues": ("issue_key",), "pull_requests": ("number", "created_at")}


@dataclass(frozen=True)
class CsvOptions:
    kind: str  # issues | pull_requests
    #: column -> field; columns named like a field need no entry
    mapping: Mapping[str, str] = field(default_factory=dict)
    delimiter: str = ","
    list_separator: str = ";"
    #: strptime format of the dates (default: ISO 8601 or epoch seconds)
    date_format: str | None = None
    #: the repository of every pull request of the file (instead of a repository column)
    repository: str | None = None


def check_mapping(options: CsvOptions) -> None:
    """Refuse a mapping to an unknown field before any file is read."""
    fields = r.KINDS[options.kind]
    for column, target in options.mapping.items():
        if target not in fields and not (target.startswith(ATTRIBUTE) and
                                         len(target) > len(ATTRIBUTE)):
            raise ConfigurationError(
                f"--map {column}={target}: no {options.kind.replace('_', ' ')} field "
                f"{target!r}; fields: {', '.join(sorted(fields))}, or attributes.NAME")
        if target == "attributes":
            raise ConfigurationError(f"--map {column}=attributes: name the attribute, as "
                                     f"--map {column}=attributes.{column}")


def read(path: Path, label: str, options: CsvOptions) -> r.Batch:
    check_mapping(options)
    fields = r.KINDS[options.kind]
    rows = csv_records(path, options.delimiter)
    try:
        _, header = next(rows)
    except StopIteration:
        raise r.load_error(f"{label}:1", None, "", "an empty file: expected a header "
                           "line naming the columns") from None
    mapping = {c: c for c in header if c in fields and c != "attributes"}
    for column, target in options.mapping.items():
        if column not in header:
            raise ConfigurationError(f"--map {column}={target}: {label} has no column "
                                     f"{column!r}; its columns: {', '.join(header)}")
        mapping[column] = target
    mapped = set(mapping.values())
    missing = [f for f in REQUIRED[options.kind] if f not in mapped]
    if options.kind == "pull_requests" and "repository" not in mapped and not options.repository:
        missing.append("repository (or --repository)")
    if missing:
        raise ConfigurationError(
            f"{label}: no column for {', '.join(missing)}; map one with --map COLUMN=FIELD "
            f"(its columns: {', '.join(header)})")
    index = {column: header.index(column) for column in mapping}
    batch = r.Batch(label, options.kind)
    for line, cells in rows:
        if not any(cells):
            continue  # a blank line
        where = f"{label}:{line}"
        if len(cells) != len(header):
            raise r.load_error(where, None, len(cells),
                               f"{len(cells)} fields where the header has {len(header)}")
        record: r.Record = {"_where": where}
        attributes: dict[str, Any] = {}
        for column, target in mapping.items():
            raw = cells[index[column]]
            if target.startswith(ATTRIBUTE):
                if raw != "":
                    attributes[target[len(ATTRIBUTE):]] = raw
                continue
            record[target] = _value(where, column, target, fields[target], raw, options)
        if any(t.startswith(ATTRIBUTE) for t in mapping.values()):
            record["attributes"] = attributes
        if options.kind == "issues":
            if not record.get("issue_key"):
                raise r.load_error(where, "issue_key", cells[header.index(_column_of(
                    mapping, "issue_key"))], "every issue needs a key")
            record = r.complete_issue(record)
            project = r.Project.named(str(record["issue_key"]).rsplit("-", 1)[0])
        else:
            record.setdefault("repository", options.repository)
            for name in ("number", "created_at", "repository"):
                if record.get(name) is None:
                    raise r.load_error(where, name, "", "every pull request needs one")
            record = r.complete_pull_request(record)
            project = r.Project.named(str(record["repository"]))
        batch.add(project, record)
    batch.check_unique()
    return batch


def _column_of(mapping: Mapping[str, str], target: str) -> str:
    return next(c for c, t in mapping.items() if t == target)


def _value(where: str, column: str, target: str, kind: str, raw: str,
           options: CsvOptions) -> Any:
    value: str | None = None if raw == "" else raw
    try:
        if kind == "timestamp":
            return r.timestamp(value, options.date_format)
        if kind == "list":
            return r.text_list(value, options.list_separator)
        return r.PARSERS[kind](value)
    except r.Bad as exc:
        name = target if column == target else f"{target} (column {column})"
        raise r.load_error(where, name, raw, str(exc)) from None
