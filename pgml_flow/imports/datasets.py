"""The public research datasets of ../shared/datasets (their README and SOURCE.txt say
what each holds), read at run time from the folder given: one client per project, the
split each ships with kept in ``dataset_split``, logins turned into pseudonyms.

Each project is read and written in one transaction. docs/import.md has the mappings.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgml_flow.errors import ConfigurationError
from pgml_flow.imports import records as r
from pgml_flow.imports.files import csv_records
from pgml_flow.imports.records import display

#: projects not imported unless named: Tawosi et al. (TSE 2023) withheld them "in
#: accordance with GDPR" after Talend's Jira left the public domain (SOURCE.txt)
WITHHELD = {"deepse-storypoints": ("talenddataquality", "talendesb")}
#: issue type names of TAWOS, by their letters only (the one-hot columns spell "Sub-task"
#: as "Sub.task")
TAWOS_TYPES = {re.sub(r"[^a-z]", "", n.lower()): n for n in (
    "Bug", "Build Failure", "Enhancement Request", "Epic", "Improvement", "Incident",
    "New Feature", "Problem Ticket", "Question", "Story", "Sub-task", "Suggestion", "Task",
    "Technical Debt", "Technical task", "Wish", "Documentation")}
#: gousios-pullreqs-2015 columns that are logins: never stored (requester becomes the
#: author's pseudonym)
LOGINS = ("requester", "closer", "merger")


@dataclass(frozen=True)
class Dataset:
    name: str
    #: slug prefix of its clients
    prefix: str
    kind: str
    #: the project files, by project name, under the dataset folder
    projects: Callable[[Path], dict[str, Path]]
    read: Callable[[Path, str, str, Dataset, int | None], r.Batch]
    what: str

    def project(self, name: str) -> r.Project:
        return r.Project(f"{name} ({self.name})", r.slug_for(f"{self.prefix}_{name}"))


def _glob(pattern: str, suffix: str) -> Callable[[Path], dict[str, Path]]:
    def find(root: Path) -> dict[str, Path]:
        return {p.name[: -len(suffix)]: p for p in sorted(root.glob(pattern))}
    return find


def units(name: str, root: Path, projects: Sequence[str] = (),
          limit: int | None = None) -> list[r.Unit]:
    """One unit per project of dataset ``name`` in ``root`` (all but the withheld, or
    ``projects``); ``limit``: the first N rows of each (the split is the full file's)."""
    dataset = DATASETS.get(name)
    if dataset is None:
        raise ConfigurationError(f"no dataset {name!r}; known: {', '.join(DATASETS)}")
    if limit is not None and limit < 1:
        raise ConfigurationError(f"--limit must be a positive number of rows, got {limit}")
    if not root.is_dir():
        raise ConfigurationError(f"{display(root)} is not a folder: give --path the folder "
                                 f"of {name} (../shared/datasets/{name})")
    found = dataset.projects(root)
    if not found:
        raise ConfigurationError(f"{display(root)} does not hold {name}: it has none of "
                                 f"its files ({dataset.what})")
    if projects:
        lookup = {p.lower(): p for p in found}
        unknown = [p for p in projects if p.lower() not in lookup]
        if unknown:
            raise ConfigurationError(f"{name} has no project {', '.join(unknown)}; its "
                                     f"projects: {', '.join(found)}")
        chosen = [lookup[p.lower()] for p in projects]
    else:
        chosen = [p for p in found if p not in WITHHELD.get(name, ())]
    return [r.Unit(display(found[p]), _reader(dataset, root, p, found[p], limit))
            for p in chosen]


def _reader(dataset: Dataset, root: Path, project: str, path: Path,
            limit: int | None) -> Callable[[], r.Batch]:
    def read() -> r.Batch:
        batch = dataset.read(root, project, display(path), dataset, limit)
        batch.check_unique()
        return batch
    return read


def _rows(path: Path, label: str, columns: Sequence[str], delimiter: str = ","
          ) -> Iterator[tuple[str, dict[str, str]]]:
    """(file:line, row by column) of a dataset CSV whose header must hold ``columns``."""
    records = csv_records(path, delimiter)
    try:
        _, header = next(records)
    except StopIteration:
        raise r.load_error(f"{label}:1", None, "", "an empty file") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise r.load_error(f"{label}:1", missing[0], header, "the header lacks this column")
    for line, cells in records:
        if not any(cells):
            continue
        if len(cells) != len(header):
            raise r.load_error(f"{label}:{line}", None, len(cells),
                               f"{len(cells)} fields where the header has {len(header)}")
        yield f"{label}:{line}", dict(zip(header, cells, strict=True))


def _parse(where: str, field: str, raw: object, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(raw)
    except r.Bad as exc:
        raise r.load_error(where, field, raw, str(exc)) from None


def _null(value: str) -> str | None:
    return None if value in ("", "NULL") else value


def _number(value: str) -> int | float | bool | str | None:
    """A cell of a dataset kept in ``attributes``: a number or boolean where it is one."""
    if value in ("", "NULL"):
        return None
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def chronological_split(n: int) -> list[str]:
    """Deep-SE's chronological 60/20/20 split, with its off-by-one: train is the first
    floor(0.6 n) - 1 rows, valid the next floor(0.2 n), test the rest (SOURCE.txt)."""
    train = max(math.floor(0.6 * n) - 1, 0)
    valid = math.floor(0.2 * n)
    return ["train"] * train + ["valid"] * valid + ["test"] * (n - train - valid)


# -- deepse-storypoints ------------------------------------------------------------------------
def _deepse(root: Path, project: str, label: str, dataset: Dataset,
            limit: int | None) -> r.Batch:
    path = root / "data" / f"{project}.csv.gz"
    split_path = root / "splits" / f"{project}_3sets.txt"
    split_label = display(split_path)
    if not split_path.is_file():
        raise ConfigurationError(f"{split_label} is missing: deepse-storypoints ships a split "
                                 "file per project")
    splits = []
    for where, row in _rows(split_path, split_label, ("train", "valid", "test"), "\t"):
        chosen = [s for s in ("train", "valid", "test") if row[s] == "1"]
        if len(chosen) != 1 or any(row[s] not in ("0", "1") for s in ("train", "valid", "test")):
            raise r.load_error(where, "dataset_split", "\t".join(row.values()),
                               "expected one 1 among train, valid and test")
        splits.append(chosen[0])
    batch = r.Batch(label, "issues")
    owner = dataset.project(project)
    rows = list(_rows(path, label, ("issuekey", "title", "description", "storypoint")))
    if len(rows) != len(splits):
        raise r.load_error(split_label, "dataset_split", len(splits),
                           f"{len(splits)} rows where {label} has {len(rows)} issues")
    for n, ((where, row), part) in enumerate(zip(rows, splits, strict=True)):
        if limit is not None and n >= limit:
            break
        batch.add(owner, {
            "_where": where, "issue_key": _key(where, row["issuekey"]),
            "title": _parse(where, "title", row["title"], r.text),
            "description": _parse(where, "description", _null(row["description"]), r.text),
            "story_points": _parse(where, "storypoint", row["storypoint"], r.points),
            "dataset_split": part, "attributes": {"source_row": n}})
    return batch


def _key(where: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+", raw):
        raise r.load_error(where, "issuekey", raw, "expected an issue key like ABC-12")
    return raw


# -- tawos-storypoints-tse2023 -----------------------------------------------------------------
def _tawos_sp(root: Path, project: str, label: str, dataset: Dataset,
              limit: int | None) -> r.Batch:
    path = root / "data" / f"{project}_deep-se.csv.gz"
    rows = list(_rows(path, label, ("issuekey", "created", "title", "description",
                                    "storypoint")))
    parts = chronological_split(len(rows))
    extra = _tawos_one_hot(root / "data" / f"{project}_tfidf-se.csv.gz")
    batch = r.Batch(label, "issues")
    owner = dataset.project(project)
    for n, ((where, row), part) in enumerate(zip(rows, parts, strict=True)):
        if limit is not None and n >= limit:
            break
        key = _key(where, row["issuekey"])
        record: r.Record = {
            "_where": where, "issue_key": key,
            "created": _parse(where, "created", row["created"], _us_timestamp),
            "title": _parse(where, "title", row["title"], r.text),
            "description": _parse(where, "description", _null(row["description"]), r.text),
            "story_points": _parse(where, "storypoint", row["storypoint"], r.points),
            "dataset_split": part, "attributes": {"source_row": n}}
        if extra is not None:
            record["issuetype"], record["components"] = extra.get(key, (None, None))
        batch.add(owner, r.complete_issue(record))
    return batch


_US_TIMESTAMP = re.compile(r"(\d\d)/(\d\d)/(\d{4}) (\d\d):(\d\d):(\d\d)")


def _us_timestamp(value: str) -> dt.datetime:
    """TAWOS's ``mm/dd/yyyy hh:mm:ss`` (UTC); strptime is ten times slower."""
    found = _US_TIMESTAMP.fullmatch(value)
    if found is None:
        raise r.Bad("expected a date and time as mm/dd/yyyy hh:mm:ss")
    month, day, year, hour, minute, second = map(int, found.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as exc:
        raise r.Bad(f"not a date: {exc}") from None


def _tawos_one_hot(path: Path) -> dict[str, tuple[str | None, list[str]]] | None:
    """Issue type and components of each issue, from the t_* and c_* one-hot columns of the
    project's *_tfidf-se file (None: the project has none)."""
    if not path.is_file():
        return None
    label = display(path)
    records = csv_records(path)
    try:
        _, header = next(records)
    except StopIteration:
        raise r.load_error(f"{label}:1", None, "", "an empty file") from None
    if "issuekey" not in header:
        raise r.load_error(f"{label}:1", "issuekey", header, "the header lacks this column")
    key = header.index("issuekey")
    types = [(i, TAWOS_TYPES.get(re.sub(r"[^a-z]", "", c[2:].lower()),
                                 re.sub(r"\.+", " ", c[2:]).strip()))
             for i, c in enumerate(header) if c.startswith("t_")]
    components = [(i, re.sub(r"\.+", " ", c[2:]).strip())
                   for i, c in enumerate(header) if c.startswith("c_")]
    found: dict[str, tuple[str | None, list[str]]] = {}
    for line, cells in records:
        if len(cells) != len(header):
            raise r.load_error(f"{label}:{line}", None, len(cells),
                               f"{len(cells)} fields where the header has {len(header)}")
        named = [name for i, name in types if cells[i] == "1"]
        if len(named) > 1:
            raise r.load_error(f"{label}:{line}", "t_*", ", ".join(named),
                               "more than one issue type")
        found[cells[key]] = (named[0] if named else None,
                             [name for i, name in components if cells[i] == "1"])
    return found


# -- tawos-resolution-time-esem2022 ------------------------------------------------------------
TAWOS_RT_KEPT = ("ID", "Timespent", "In_Progress_Minutes", "Total_Effort_Minutes",
                 "Resolution_Time_Minutes")


def _tawos_rt(root: Path, project: str, label: str, dataset: Dataset,
              limit: int | None) -> r.Batch:
    path = root / "data" / "rq2_rq3" / f"{project}.csv.gz"
    batch = r.Batch(label, "issues")
    owner = dataset.project(project)
    columns = ("Issue_Key", "Type", "Status", "Resolution", "Creation_Date", "Resolution_Date",
               "Story_Point", *TAWOS_RT_KEPT)
    rows = list(_rows(path, label, columns))
    texts = story_point_texts(root.parent, project)
    # no shipped split: the chronological 60/20/20 (the file is in creation order)
    for n, ((where, row), part) in enumerate(zip(rows, chronological_split(len(rows)),
                                                 strict=True)):
        if limit is not None and n >= limit:
            break
        attributes = {c: _number(row[c]) for c in TAWOS_RT_KEPT if _null(row[c]) is not None}
        title, description = texts.get(row["Issue_Key"], (None, None))
        batch.add(owner, r.complete_issue({
            "title": title, "description": description,
            "_where": where, "issue_key": _key(where, row["Issue_Key"]),
            "issuetype": _parse(where, "Type", _null(row["Type"]), r.text),
            "status": _parse(where, "Status", _null(row["Status"]), r.text),
            "resolution": _parse(where, "Resolution", _null(row["Resolution"]), r.text),
            "created": _parse(where, "Creation_Date", _null(row["Creation_Date"]),
                              r.timestamp),
            "resolved_at": _parse(where, "Resolution_Date", _null(row["Resolution_Date"]),
                                  r.timestamp),
            "story_points": _parse(where, "Story_Point", _null(row["Story_Point"]), r.points),
            "dataset_split": part, "attributes": {**attributes, "source_row": n}}))
    return batch


#: the story-point datasets whose titles and descriptions the resolution-time import joins by
#: issue key when they are beside its folder (its SOURCE.txt: 18,846 and 15,792 of their rows
#: join); (folder, file pattern): the first that has an issue's key gives its text
TAWOS_RT_TEXT = (("tawos-storypoints-tse2023", "data/*_deep-se.csv.gz"),
                 ("deepse-storypoints", "data/*.csv.gz"))


def story_point_texts(datasets: Path, project: str
                      ) -> dict[str, tuple[str | None, str | None]]:
    """(title, description) by issue key of the issues of TAWOS project ``project`` that the
    story-point datasets in the folder ``datasets`` hold (``TAWOS_RT_TEXT``); empty when
    neither is there.

    Why: the resolution-time files have no text, but title and description are known when
    an issue is created, and the same issues' texts ship with the story-point datasets.
    Only the files whose first issue key is of the project are read (a Deep-SE file is
    named after the product, not the key), so a project without text costs a glance.
    """
    found: dict[str, tuple[str | None, str | None]] = {}
    for folder, pattern in TAWOS_RT_TEXT:
        for path in sorted((datasets / folder).glob(pattern)):
            label = display(path)
            rows = _rows(path, label, ("issuekey", "title", "description"))
            first = next(rows, None)
            if first is None or first[1]["issuekey"].rsplit("-", 1)[0] != project:
                continue
            for where, row in (first, *rows):
                found.setdefault(row["issuekey"], (
                    _parse(where, "title", _null(row["title"]), r.text),
                    _parse(where, "description", _null(row["description"]), r.text)))
    return found


# -- gousios-pullreqs-2015 ---------------------------------------------------------------------
#: column -> (field, parser) of the columns that have a pull-request column
GOUSIOS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "github_id": ("number", r.integer), "created_at": ("created_at", r.timestamp),
    "merged_at": ("merged_at", r.timestamp), "closed_at": ("closed_at", r.timestamp),
    "num_commits": ("commits", r.count), "num_commits_open": ("commits_at_open", r.count),
    "num_issue_comments": ("comments", r.count), "num_pr_comments": ("review_comments", r.count),
    "files_changed": ("changed_files", r.count),
}


def _gousios(root: Path, project: str, label: str, dataset: Dataset,
             limit: int | None) -> r.Batch:
    path = root / "data" / f"{project}.csv.gz"
    batch = r.Batch(label, "pull_requests")
    expected = project.replace("@", "/", 1)
    owner = dataset.project(expected)
    rows = list(_rows(path, label, (*GOUSIOS, "project_name", "test_churn", "requester")))
    # no shipped split: the chronological 60/20/20 by created_at (the files are newest
    # first); source_row stays the place in the file
    by_time = sorted(range(len(rows)), key=lambda k: (_epoch(rows[k][1]["created_at"]), k))
    parts = dict(zip(by_time, chronological_split(len(rows)), strict=True))
    for n, (where, row) in enumerate(rows):
        if limit is not None and n >= limit:
            break
        record = _gousios_record(where, row, n, expected, GOUSIOS, (*LOGINS, "project_name"))
        record["dataset_split"] = parts[n]
        batch.add(owner, r.complete_pull_request(record))
    return batch


# -- gousios-pullreqs-icse2014 -----------------------------------------------------------------
#: column -> (field, parser) of the ICSE 2014 files (no commits at open, no review comments)
GOUSIOS_2014: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "github_id": ("number", r.integer), "created_at": ("created_at", r.timestamp),
    "merged_at": ("merged_at", r.timestamp), "closed_at": ("closed_at", r.timestamp),
    "num_commits": ("commits", r.count), "num_comments": ("comments", r.count),
    "files_changed": ("changed_files", r.count),
}
#: the one client of gousios-pullreqs-icse2014: the paper pools its 291 projects
ICSE2014_CLIENT = r.Project("all projects (gousios-pullreqs-icse2014)", "gousios_icse2014")


def _gousios_2014(root: Path, project: str, label: str, dataset: Dataset,
                  limit: int | None) -> r.Batch:
    path = root / "data" / f"{project}.csv.gz"
    batch = r.Batch(label, "pull_requests")
    expected = project.replace("@", "/", 1)
    for n, (where, row) in enumerate(_rows(path, label, (*GOUSIOS_2014, "project_name",
                                                         "test_churn", "requester"))):
        if limit is not None and n >= limit:
            break
        record = _gousios_record(where, row, n, expected, GOUSIOS_2014, LOGINS)
        batch.add(ICSE2014_CLIENT, r.complete_pull_request(record))
    return batch


def _gousios_record(where: str, row: dict[str, str], n: int, expected: str,
                    columns: dict[str, tuple[str, Callable[[Any], Any]]],
                    skip: Collection[str]) -> r.Record:
    """One pull request of either Gousios dataset: its ``columns`` parsed into fields, every
    other non-empty cell but those in ``skip`` (logins) kept as attributes."""
    if row["project_name"] != expected:
        raise r.load_error(where, "project_name", row["project_name"],
                           f"a pull request of another project than {expected}")
    record: r.Record = {"_where": where, "repository": expected}
    for column, (target, parse) in columns.items():
        record[target] = _parse(where, column, row[column], parse)
    if record["number"] is None or record["created_at"] is None:
        missing = "github_id" if record["number"] is None else "created_at"
        raise r.load_error(where, missing, row[missing], "every pull request needs one")
    churn = _parse(where, "test_churn", row["test_churn"], r.count)
    record["has_tests"] = None if churn is None else churn > 0
    record["author"] = row["requester"].strip() or None
    record["attributes"] = {c: _number(v) for c, v in row.items()
                            if c not in columns and c not in skip
                            and _null(v) is not None} | {"source_row": n}
    return record


def _epoch(value: str) -> int:
    """Epoch seconds of a cell, for ordering only (a bad cell fails when it is parsed)."""
    return int(value) if value.isdigit() else 0


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("deepse-storypoints", "deepse", "issues", _glob("data/*.csv.gz", ".csv.gz"),
            _deepse, "data/<project>.csv.gz and splits/<project>_3sets.txt"),
    Dataset("tawos-storypoints-tse2023", "tawos_sp", "issues",
            _glob("data/*_deep-se.csv.gz", "_deep-se.csv.gz"), _tawos_sp,
            "data/<KEY>_deep-se.csv.gz, data/<KEY>_tfidf-se.csv.gz"),
    Dataset("tawos-resolution-time-esem2022", "tawos_rt", "issues",
            _glob("data/rq2_rq3/*.csv.gz", ".csv.gz"), _tawos_rt,
            "data/rq2_rq3/<KEY>.csv.gz"),
    Dataset("gousios-pullreqs-2015", "gousios", "pull_requests",
            _glob("data/*.csv.gz", ".csv.gz"), _gousios, "data/<owner>@<repo>.csv.gz"),
    Dataset("gousios-pullreqs-icse2014", "gousios_icse2014", "pull_requests",
            _glob("data/*.csv.gz", ".csv.gz"), _gousios_2014, "data/<owner>@<repo>.csv.gz"),
)}
