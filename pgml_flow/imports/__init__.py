"""Importing real data: Jira and GitHub JSON, any CSV, the public research datasets.

An import reads every file first (a malformed one stops it, naming the file, the line or
JSON path, the field and the value, before anything is written), then writes each file in
its own transaction (:mod:`pgml_flow.imports.load`), upserting on the natural keys, so that
importing the same files again changes nothing. Rows go to one client per project (made on
first import, not synthetic), or all to ``--client``. docs/import.md documents the formats
and their field mappings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgml_flow.database import error_text
from pgml_flow.errors import DatabaseError
from pgml_flow.imports import csvfile, datasets, github, jira
from pgml_flow.imports.csvfile import CsvOptions
from pgml_flow.imports.files import expand
from pgml_flow.imports.load import ClientReport, Clients, FileReport, pseudonym_key, write
from pgml_flow.imports.records import Batch, Unit, display

__all__ = [
    "ClientReport", "CsvOptions", "CsvSource", "DatasetSource", "FileReport",
    "GithubPullsSource", "ImportReport", "JiraSource", "Source", "run",
]

logger = logging.getLogger(__name__)
JSON_FILES = (".json", ".json.gz")
#: progress(step, total steps): a file read or written
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class JiraSource:
    """Jira REST search responses: files, or folders of ``*.json`` / ``*.json.gz``."""

    paths: Sequence[Path]
    story_points_field: str = jira.STORY_POINTS_FIELD
    epic_link_field: str = jira.EPIC_LINK_FIELD
    kind = "issues"

    def units(self) -> list[Unit]:
        def reader(path: Path) -> Callable[[], Batch]:
            return lambda: jira.read(path, display(path),
                                     story_points_field=self.story_points_field,
                                     epic_link_field=self.epic_link_field)
        return [Unit(display(p), reader(p)) for p in expand(self.paths, JSON_FILES)]


@dataclass(frozen=True)
class GithubPullsSource:
    """GitHub REST pulls responses: files, or folders of ``*.json`` / ``*.json.gz``."""

    paths: Sequence[Path]
    #: owner/name of the repository, for pulls that do not carry base.repo.full_name
    repository: str | None = None
    kind = "pull_requests"

    def units(self) -> list[Unit]:
        def reader(path: Path) -> Callable[[], Batch]:
            return lambda: github.read(path, display(path), repository=self.repository)
        return [Unit(display(p), reader(p)) for p in expand(self.paths, JSON_FILES)]


@dataclass(frozen=True)
class CsvSource:
    """CSV files (or ``.csv.gz``) of issues or pull requests, mapped column by column."""

    paths: Sequence[Path]
    options: CsvOptions

    @property
    def kind(self) -> str:
        return self.options.kind

    def units(self) -> list[Unit]:
        csvfile.check_mapping(self.options)

        def reader(path: Path) -> Callable[[], Batch]:
            return lambda: csvfile.read(path, display(path), self.options)
        return [Unit(display(p), reader(p)) for p in expand(self.paths, (".csv", ".csv.gz"))]


@dataclass(frozen=True)
class DatasetSource:
    """One of the public datasets (``datasets.DATASETS``) in the folder ``path``."""

    name: str
    path: Path
    projects: Sequence[str] = ()
    #: the first N rows of each project only
    limit: int | None = None

    @property
    def kind(self) -> str:
        dataset = datasets.DATASETS.get(self.name)
        return dataset.kind if dataset else "issues"

    def units(self) -> list[Unit]:
        return datasets.units(self.name, self.path, self.projects, self.limit)


Source = JiraSource | GithubPullsSource | CsvSource | DatasetSource


@dataclass(frozen=True)
class ImportReport:
    kind: str
    files: tuple[FileReport, ...]
    clients: tuple[ClientReport, ...]
    seconds: float
    #: what the reader noticed (a story-point field no issue has, say)
    notes: tuple[str, ...] = ()
    #: BI logins made or reused (``bi_logins=True``)
    bi_logins: tuple[str, ...] = field(default=())

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def inserted(self) -> int:
        return sum(f.inserted for f in self.files)

    @property
    def updated(self) -> int:
        return sum(f.updated for f in self.files)

    @property
    def unchanged(self) -> int:
        return sum(f.unchanged for f in self.files)


def run(conn: psycopg.Connection, source: Source, *, client_id: int | None = None,
        bi_logins: bool = False, progress: Progress | None = None) -> ImportReport:
    """Read every file of ``source``, then write each in its own transaction.

    ``client_id``: every row goes to that existing client (otherwise one client per
    project, by slug, made as needed). ``bi_logins``: each client gets a BI login
    (:func:`pgml_flow.isolation.grant_bi_access`). The training summary is refreshed.
    """
    started = time.perf_counter()
    clients = Clients(conn, client_id)
    clients.check()
    units = source.units()
    total = 2 * len(units)
    batches: list[Batch] = []
    for unit in units:
        batch = unit.read()
        batches.append(batch)
        if progress:
            progress(f"read {unit.label}: {batch.rows:,} rows", total)
    clients.check_projects({p for b in batches for p in b.groups})
    conn.commit()  # the checks above opened a transaction; each file gets its own
    key = pseudonym_key(conn)
    files: list[FileReport] = []
    for batch in batches:
        try:
            report = write(conn, batch, clients, key)
        except psycopg.Error as exc:
            before = (f"the files before it were imported: {', '.join(f.file for f in files)}"
                      if files else "nothing was imported")
            raise DatabaseError(f"writing {batch.label} failed: {error_text(exc)}; its rows "
                                f"were rolled back, {before}") from exc
        files.append(report)
        if progress:
            progress(f"wrote {batch.label}: {report.inserted:,} new, {report.updated:,} "
                     f"changed, {report.unchanged:,} unchanged", total)
        logger.info("imported", extra={"action": "import", "file": batch.label,
                                       "rows": report.rows, "inserted": report.inserted,
                                       "updated": report.updated})
    if files:
        conn.execute("SELECT pgml_flow.refresh_training_summary()")
        conn.commit()
    logins: list[str] = []
    if bi_logins:
        from pgml_flow.isolation import grant_bi_access

        logins = [grant_bi_access(conn, c).role for c in sorted(clients.seen)]
    return ImportReport(source.kind, tuple(files), tuple(clients.seen[c] for c in
                                                         sorted(clients.seen)),
                        time.perf_counter() - started,
                        tuple(n for b in batches for n in b.notes), tuple(logins))
