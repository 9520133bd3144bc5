"""GitHub's REST pulls JSON: one file is an array of pull requests as ``GET
/repos/{owner}/{repo}/pulls?state=all`` returns them (or one pull request, as ``GET
.../pulls/{number}`` does, with its counts). A pull request may carry its sub-resources,
embedded under their own names: ``commits`` (``GET .../pulls/{n}/commits``), ``reviews``
(``.../reviews``), ``review_comments`` (``.../comments``) and ``files`` (``.../files``).
docs/import.md has the field mapping.

Pull requests belong to their repository (``base.repo.full_name``, or ``--repository``): one
client per repository. Logins are never stored: the author becomes a pseudonym.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgml_flow.imports import records as r
from pgml_flow.imports.files import load_json

#: a Jira-style issue key in a title or branch name (ABC-123)
ISSUE_KEY = re.compile(r"(?<![A-Za-z0-9])([A-Z][A-Z0-9_]+-[1-9][0-9]*)(?![0-9])")
#: paths of test code
TEST_PATH = re.compile(r"(^|/)(tests?|spec|specs|__tests__)/|(^|/)test_[^/]*$|_test\.\w+$|"
                       r"_spec\.\w+$|\.(test|spec)\.\w+$|Tests?\.\w+$")


def read(path: Path, label: str, *, repository: str | None = None) -> r.Batch:
    reader = r.Reader(label)
    doc = load_json(path)
    pulls = [doc] if isinstance(doc, dict) and "number" in doc else doc
    if not isinstance(pulls, list):
        raise reader.fail("$", None, type(doc).__name__,
                          "expected an array of pull requests (GitHub's pulls response)")
    batch = r.Batch(label, "pull_requests")
    for n, pull in enumerate(pulls):
        where = f"[{n}]"
        if not isinstance(pull, dict):
            raise reader.fail(where, None, pull, "expected a pull request object")
        record, project = _pull(reader, where, pull, repository)
        batch.add(project, record)
    batch.check_unique()
    return batch


def _pull(reader: r.Reader, where: str, pull: dict[str, Any],
          repository: str | None) -> tuple[r.Record, r.Project]:
    def get(name: str, parse: Callable[[Any], Any] = r.text, *, raw: object = None,
            field: str | None = None) -> Any:
        value = _path(pull, name) if raw is None else raw
        return reader.value(f"{where}.{name}", field or name, value, parse)

    repo = _path(pull, "base.repo") or {}
    full_name = repository or get("base.repo.full_name", field="repository")
    if not full_name:
        raise reader.fail(f"{where}.base.repo.full_name", "repository", None,
                          "no repository: give the pulls of one repository with --repository")
    number = get("number", r.integer)
    if number is None or number < 1:
        raise reader.fail(f"{where}.number", "number", pull.get("number"),
                          "expected the pull request's number")
    created = get("created_at", r.timestamp)
    if created is None:
        raise reader.fail(f"{where}.created_at", "created_at", None,
                          "expected when the pull request was opened")
    record: r.Record = {"_where": f"{reader.label}: {where}", "repository": full_name,
                        "number": number, "created_at": created,
                        "title": get("title"), "merged_at": get("merged_at", r.timestamp),
                        "closed_at": get("closed_at", r.timestamp)}
    author = _path(pull, "user.login")
    record["author"] = author if isinstance(author, str) and author else None
    if isinstance(repo, dict):
        if "default_branch" in repo:
            record["default_branch"] = get("base.repo.default_branch", field="default_branch")
        if "created_at" in repo:
            record["repository_created_at"] = get("base.repo.created_at", r.timestamp,
                                                  field="repository_created_at")
    state = pull.get("state")
    if record["merged_at"] is None and state in ("open", "closed"):
        record["state"] = state
    for name in ("additions", "deletions", "changed_files", "comments"):
        if name in pull:
            record[name] = get(name, r.count)
    for name in ("commits", "review_comments"):
        if name in pull and not isinstance(pull[name], list):
            record[name] = get(name, r.count)
    key = _issue_key(pull)
    record["issue_key"] = key
    attributes: dict[str, Any] = {}
    for name in ("id", "draft", "author_association"):
        if pull.get(name) is not None:
            attributes[name] = pull[name]
    labels = [label.get("name") for label in pull.get("labels") or [] if isinstance(label, dict)]
    if labels:
        attributes["labels"] = labels
    record["attributes"] = attributes
    _commits(reader, where, pull, record)
    _reviews(reader, where, pull, record, author)
    _files(reader, where, pull, record)
    name = str(full_name)
    return r.complete_pull_request(record), r.Project.named(name)


def _path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _issue_key(pull: dict[str, Any]) -> str | None:
    for text in (pull.get("title"), _path(pull, "head.ref")):
        found = ISSUE_KEY.search(text) if isinstance(text, str) else None
        if found:
            return found.group(1)
    return None


def _list(reader: r.Reader, where: str, pull: dict[str, Any], name: str) -> list[Any] | None:
    items = pull.get(name)
    if items is None or isinstance(items, int):
        return None
    if not isinstance(items, list):
        raise reader.fail(f"{where}.{name}", name, items, "expected an array or a count")
    return items


def _commits(reader: r.Reader, where: str, pull: dict[str, Any], record: r.Record) -> None:
    """From embedded commits: how many, and how many were there when the PR was opened."""
    commits = _list(reader, where, pull, "commits")
    if commits is None:
        return
    at_open = 0
    for k, commit in enumerate(commits):
        at = f"{where}.commits[{k}].commit.author.date"
        raw = _path(commit, "commit.author.date") or _path(commit, "commit.committer.date")
        when = reader.value(at, "commits", raw, r.timestamp)
        if when is None:
            raise reader.fail(at, "commits", raw, "expected the commit's date")
        at_open += when <= record["created_at"]
    record["commits"] = len(commits)
    record["commits_at_open"] = at_open


def _reviews(reader: r.Reader, where: str, pull: dict[str, Any], record: r.Record,
             author: object) -> None:
    """From embedded reviews and review comments: the first review by someone else, the
    reviewers, the rounds of requested changes, the number of review comments."""
    reviews = _list(reader, where, pull, "reviews")
    comments = _list(reader, where, pull, "review_comments")
    if reviews is None and comments is None:
        return
    first: dt.datetime | None = None
    people: set[str] = set()
    changes = 0
    for name, items, stamp in (("reviews", reviews, "submitted_at"),
                               ("review_comments", comments, "created_at")):
        for k, item in enumerate(items or []):
            login = _path(item, "user.login")
            when = reader.value(f"{where}.{name}[{k}].{stamp}", name,
                                _path(item, stamp), r.timestamp)
            if login == author:
                continue
            if isinstance(login, str):
                people.add(login.lower())
            if when is not None and (first is None or when < first):
                first = when
            if name == "reviews" and _path(item, "state") == "CHANGES_REQUESTED":
                changes += 1
    record["first_review_at"] = first
    if reviews is not None:
        record["reviewers"] = len(people)
        record["review_cycles"] = changes
    if comments is not None:
        record["review_comments"] = len(comments)


def _files(reader: r.Reader, where: str, pull: dict[str, Any], record: r.Record) -> None:
    """From embedded files: whether tests changed, and the sizes when the counts are absent."""
    files = _list(reader, where, pull, "files")
    if files is None:
        return
    names = [reader.value(f"{where}.files[{k}].filename", "files", _path(f, "filename"), r.text)
             for k, f in enumerate(files)]
    record["has_tests"] = any(TEST_PATH.search(n or "") for n in names)
    for name in ("additions", "deletions"):
        if name not in record:
            record[name] = sum(reader.value(f"{where}.files[{k}].{name}", name,
                                            _path(f, name), r.count) or 0
                               for k, f in enumerate(files))
    record.setdefault("changed_files", len(files))
