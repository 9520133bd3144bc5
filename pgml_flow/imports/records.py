"""What an import writes: the fields of an issue and a pull request, their values, and the
errors that name where a file is wrong.

Every reader (Jira, GitHub, CSV, the public datasets) turns its file into :class:`Batch`es
of records: plain dicts from field name to a Python value, holding only the fields the
source carries. A field the source does not carry is left alone in rows that exist and is
NULL in new ones (docs/import.md: NULL means "the source does not say"). The value
parsers raise :class:`Bad`, which the reader turns into :class:`~pgml_flow.errors.MalformedFile`
naming the file, the line or JSON path, the field and the value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pgml_flow.errors import MalformedFile

Record = dict[str, Any]

#: issue fields (docs/import.md) and what each value must be
ISSUE_FIELDS: dict[str, str] = {
    "issue_key": "text", "issuetype": "text", "hierarchy_level": "hierarchy",
    "parent_key": "text", "story_points": "points", "created": "timestamp",
    "updated": "timestamp", "resolved_at": "timestamp", "work_first_started_at": "timestamp",
    "work_last_completed_at": "timestamp", "total_lead_time_seconds": "bigint",
    "status": "text", "status_category": "category", "resolution": "text", "priority": "text",
    "components": "list", "labels": "list", "assignee": "text", "title": "text",
    "description": "text", "dataset_split": "split", "attributes": "attributes",
}
#: pull-request fields (docs/import.md) and what each value must be
PULL_REQUEST_FIELDS: dict[str, str] = {
    "repository": "text", "default_branch": "text", "repository_created_at": "timestamp",
    "number": "int", "title": "text", "author": "text", "created_at": "timestamp",
    "first_review_at": "timestamp", "merged_at": "timestamp", "closed_at": "timestamp",
    "state": "state", "issue_key": "text", "additions": "int", "deletions": "int",
    "changed_files": "int", "commits": "int", "commits_at_open": "int",
    "rework_commit_count": "int", "comments": "int", "review_comments": "int",
    "reviewers": "int", "review_cycles": "int", "has_tests": "bool", "dataset_split": "split",
    "attributes": "attributes",
}
KINDS = {"issues": ISSUE_FIELDS, "pull_requests": PULL_REQUEST_FIELDS}

#: Jira status category keys and names, and pgml-flow's own, to todo / in_progress / done
CATEGORIES = {
    "todo": "todo", "to do": "todo", "new": "todo", "to_do": "todo",
    "in_progress": "in_progress", "in progress": "in_progress", "indeterminate": "in_progress",
    "done": "done", "complete": "done",
}
#: common status names whose category is plain when the source gives none
STATUS_CATEGORIES = {
    **{s: "todo" for s in ("open", "to do", "todo", "new", "backlog", "reopened",
                           "selected for development", "triage", "waiting")},
    **{s: "in_progress" for s in ("in progress", "in review", "in development", "review",
                                  "code review", "in qa", "in testing", "testing",
                                  "reviewable", "patch available", "active")},
    **{s: "done" for s in ("done", "closed", "resolved", "complete", "completed", "fixed",
                           "won't fix", "invalid", "duplicate", "cannot reproduce",
                           "released", "verified")},
}
#: issue type names that are epics (1) or sub-tasks (-1); every other type is 0
TYPE_LEVELS = {"epic": 1, "sub-task": -1, "subtask": -1, "sub task": -1,
               "technical task": -1}
SPLITS = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid",
          "test": "test"}
STATES = ("open", "merged", "closed")
INT32 = 2**31 - 1
INT64 = 2**63 - 1


class Bad(ValueError):
    """A value that does not fit its field; the message says what was expected."""


def load_error(where: str, field_name: str | None, value: object, problem: str) -> MalformedFile:
    """The error of one bad value: file and line or JSON path, field, value, what is wrong."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    what = f"field {field_name!r}: " if field_name else ""
    return MalformedFile(f"{where}: {what}{problem}: {shown}; nothing was imported (fix the "
                         "file, or leave the field out, and import again; docs/import.md)")


# -- values ----------------------------------------------------------------------------------
class Reader:
    """Parses one file's values, turning a bad one into :class:`MalformedFile` with its place."""

    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, where: str, field: str | None, value: object, problem: str) -> Exception:
        return load_error(f"{self.label}: {where}", field, value, problem)

    def value(self, where: str, field: str, raw: object, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(raw)
        except Bad as exc:
            raise self.fail(where, field, raw, str(exc)) from None


def text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | dict | list):
        raise Bad("expected text")
    out = str(value)
    if "\x00" in out:
        raise Bad("text with a NUL character, which PostgreSQL cannot store")
    return out


def integer(value: object, limit: int = INT32) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Bad("expected a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise Bad("expected a whole number")
        value = int(value)
    try:
        out = int(str(value).strip())
    except ValueError:
        raise Bad("expected a whole number") from None
    if not -limit - 1 <= out <= limit:
        raise Bad(f"out of range (at most {limit})")
    return out


def count(value: object) -> int | None:
    out = integer(value)
    if out is not None and out < 0:
        raise Bad("expected a count (0 or more)")
    return out


def points(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool | dict | list):
        raise Bad("expected a number of story points")
    try:
        out = Decimal(str(value).strip())
    except InvalidOperation:
        raise Bad("expected a number of story points") from None
    if not out.is_finite() or not 0 <= out < 10_000:
        raise Bad("story points must be a number from 0 to 9999.99")
    return out


def timestamp(value: object, fmt: str | None = None) -> dt.datetime | None:
    """ISO 8601 (Jira's ``+0000`` too), or epoch seconds, or ``fmt`` (strptime); naive is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool | dict | list):
        raise Bad("expected a date and time")
    raw = str(value).strip()
    try:
        if fmt is not None:
            out = dt.datetime.strptime(raw, fmt)
        elif raw[:1].isdigit() and raw.replace(".", "", 1).isdigit():  # epoch seconds
            out = dt.datetime.fromtimestamp(float(raw), dt.UTC)
        else:
            out = dt.datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        expected = f"format {fmt!r}" if fmt else "ISO 8601 or epoch seconds"
        raise Bad(f"expected a date and time ({expected})") from None
    if not 1900 <= out.year <= 2200:
        raise Bad("a date before 1900 or after 2200")
    return out if out.tzinfo is not None else out.replace(tzinfo=dt.UTC)


def boolean(value: object) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "t", "yes", "y", "1"):
        return True
    if word in ("false", "f", "no", "n", "0"):
        return False
    raise Bad("expected true or false")


def category(value: object) -> str | None:
    if value is None or value == "":
        return None
    found = CATEGORIES.get(str(value).strip().lower())
    if found is None:
        raise Bad("expected a status category: todo, in_progress or done")
    return found


def split(value: object) -> str | None:
    if value is None or value == "":
        return None
    found = SPLITS.get(str(value).strip().lower())
    if found is None:
        raise Bad("expected a split: train, valid or test")
    return found


def hierarchy(value: object) -> int | None:
    out = integer(value)
    if out is not None and out not in (-1, 0, 1):
        raise Bad("expected a hierarchy level: 1 (epic), 0 (standard) or -1 (sub-task)")
    return out


def state(value: object) -> str | None:
    if value is None or value == "":
        return None
    word = str(value).strip().lower()
    if word not in STATES:
        raise Bad("expected a state: open, merged or closed")
    return word


def text_list(value: object, separator: str = ";") -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items: Iterable[object] = [v.strip() for v in value.split(separator)] if value else []
    elif isinstance(value, list):
        items = value
    else:
        raise Bad("expected a list of names")
    out = []
    for item in items:
        name = text(item)
        if name:
            out.append(name)
    return out


PARSERS: dict[str, Callable[[Any], Any]] = {
    "text": text, "int": count, "bigint": lambda v: integer(v, INT64), "points": points,
    "timestamp": timestamp, "bool": boolean, "category": category, "split": split,
    "hierarchy": hierarchy, "state": state, "list": text_list,
}


# -- what a record derives -----------------------------------------------------------------
def type_level(name: str | None) -> int:
    return TYPE_LEVELS.get((name or "").strip().lower(), 0)


def status_category(status: str | None) -> str | None:
    return STATUS_CATEGORIES.get((status or "").strip().lower())


def complete_issue(record: Record) -> Record:
    """Fill what follows from the fields given: the type's level, the status category,
    the lead time. Only from values present: nothing is made up."""
    if record.get("issuetype") is not None and record.get("hierarchy_level") is None:
        record["hierarchy_level"] = type_level(record["issuetype"])
    if "status_category" not in record and "status" in record:
        found = status_category(record["status"])
        if found is None and record.get("resolved_at") is not None:
            found = "done"
        record["status_category"] = found
    if "total_lead_time_seconds" not in record and "work_last_completed_at" in record:
        start, end = record.get("work_first_started_at"), record.get("work_last_completed_at")
        record["total_lead_time_seconds"] = (
            round((end - start).total_seconds()) if start and end and end >= start else None)
    return record


def complete_pull_request(record: Record) -> Record:
    """The state from the dates, the commits pushed after opening from the commit counts."""
    if record.get("state") is None:
        record["state"] = ("merged" if record.get("merged_at") else
                           "closed" if record.get("closed_at") else "open")
    commits, at_open = record.get("commits"), record.get("commits_at_open")
    if "rework_commit_count" not in record and "commits_at_open" in record:
        record["rework_commit_count"] = (commits - at_open if commits is not None
                                         and at_open is not None and commits >= at_open
                                         else None)
    elif "commits_at_open" not in record and record.get("rework_commit_count") is not None \
            and commits is not None:
        record["commits_at_open"] = max(commits - record["rework_commit_count"], 0)
    return record


# -- batches -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Project:
    """Whom rows belong to when no --client is given: the client with this slug, made (and
    named ``name``) on first import."""

    name: str
    slug: str

    @classmethod
    def named(cls, name: str) -> Project:
        return cls(name, slug_for(name))


def slug_for(name: str) -> str:
    """A client slug (``^[a-z0-9_]{1,40}$``) for a project name, the same every time."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if len(slug) > 40 or not slug:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        slug = f"{slug[:31].rstrip('_')}_{digest}".lstrip("_")
    return slug


@dataclass
class Batch:
    """One file's (or one dataset project's) records, written in one transaction."""

    label: str
    kind: str  # issues | pull_requests
    #: records by the project (client) they belong to
    groups: dict[Project, list[Record]] = field(default_factory=dict)
    #: where each record came from (file:line or JSON path), for duplicate keys
    notes: list[str] = field(default_factory=list)

    def add(self, project: Project, record: Record) -> None:
        self.groups.setdefault(project, []).append(record)

    @property
    def rows(self) -> int:
        return sum(len(r) for r in self.groups.values())

    def fields(self) -> tuple[set[str], set[str]]:
        """The fields this batch carries: those any of its records has, and those all have.

        A row that exists gets the fields its own record carries, and keeps the others."""
        found: set[str] = set()
        every: set[str] | None = None
        for records in self.groups.values():
            for record in records:
                found.update(record)
                every = set(record) if every is None else every & record.keys()
        return found - {"_where"}, (every or set()) - {"_where"}

    def check_unique(self) -> None:
        """Refuse a key given twice: the second would silently win."""
        seen: dict[tuple[Project, str], str] = {}
        for project, records in self.groups.items():
            for record in records:
                if self.kind == "issues":
                    name, value = "issue_key", str(record.get("issue_key"))
                else:
                    name = "number"
                    value = f"{record.get('repository')}#{record.get('number')}"
                key = (project, value)
                where = str(record.get("_where", self.label))
                if key in seen:
                    first = seen[key]
                    if first.startswith(f"{self.label}: "):  # a JSON path of the same file
                        first = first[len(self.label) + 2:]
                    elif first.startswith(f"{self.label}:"):  # a line of the same file
                        first = f"line {first[len(self.label) + 1:]}"
                    raise load_error(where, name, value, f"given twice (first at {first})")
                seen[key] = where


@dataclass(frozen=True)
class Unit:
    """What is read and then written in one transaction: a file, or a dataset's project."""

    label: str
    read: Callable[[], Batch]


def display(path: Path) -> str:
    """A path as messages show it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
