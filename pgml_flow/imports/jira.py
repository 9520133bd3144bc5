"""Jira's REST search JSON (``GET /rest/api/2/search`` or ``/rest/api/3/search``): one file
is one response, ``{"issues": [{"key": ..., "fields": {...}}, ...]}`` (a bare array of
issues is taken too). docs/import.md has the field mapping.

Issues belong to their project (``fields.project``, else the key's prefix): one client per
project. With ``expand=changelog`` the status transitions give when work started and ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgml_flow.imports import records as r
from pgml_flow.imports.files import load_json

#: the story-point field of Jira Cloud (team-managed and most company-managed projects)
STORY_POINTS_FIELD = "customfield_10016"
#: the classic Epic Link field of Jira Cloud (Jira Server/Data Center: see the field list)
EPIC_LINK_FIELD = "customfield_10014"
#: fields kept as they are in ``attributes`` (effort in seconds, the due date, Jira's id)
KEPT = ("timeoriginalestimate", "timeestimate", "timespent", "aggregatetimespent", "duedate")


def read(path: Path, label: str, *, story_points_field: str = STORY_POINTS_FIELD,
         epic_link_field: str = EPIC_LINK_FIELD) -> r.Batch:
    reader = r.Reader(label)
    doc = load_json(path)
    issues = doc.get("issues") if isinstance(doc, dict) else doc
    if not isinstance(issues, list):
        raise reader.fail("issues", None, type(doc).__name__,
                          "expected Jira's search response, an object with an issues array")
    batch = r.Batch(label, "issues")
    names = _status_names(issues)
    story_points_seen = False
    for n, issue in enumerate(issues):
        where = f"issues[{n}]"
        if not isinstance(issue, dict) or not isinstance(issue.get("fields"), dict):
            raise reader.fail(where, "fields", issue if not isinstance(issue, dict) else
                              issue.get("fields"), "expected an issue with a fields object")
        story_points_seen |= story_points_field in issue["fields"]
        record, project = _issue(reader, where, issue, names, story_points_field,
                                 epic_link_field)
        batch.add(project, record)
    if issues and not story_points_seen:
        batch.notes.append(f"{label}: no issue has the field {story_points_field} "
                           "(--story-points-field): story points were not imported")
    batch.check_unique()
    return batch


def _issue(reader: r.Reader, where: str, issue: dict[str, Any], names: dict[str, str],
           story_points_field: str, epic_link_field: str) -> tuple[r.Record, r.Project]:
    fields: dict[str, Any] = issue["fields"]
    key = issue.get("key")
    if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
        raise reader.fail(f"{where}.key", "issue_key", key, "expected an issue key like ABC-12")

    def get(name: str, parse: Callable[[Any], Any] = r.text, raw: object = None,
            at: str | None = None) -> Any:
        value = fields.get(name) if raw is None else raw
        return reader.value(f"{where}.fields.{at or name}", name, value, parse)

    def name_of(name: str) -> str | None:
        obj = fields.get(name)
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise reader.fail(f"{where}.fields.{name}", name, obj, "expected an object")
        return get(name, raw=obj.get("name"), at=f"{name}.name")

    record: r.Record = {"_where": f"{reader.label}: {where}", "issue_key": key}
    if "summary" in fields:
        record["title"] = get("summary")
    if "description" in fields:
        description = fields["description"]
        if isinstance(description, dict):  # REST API v3: Atlassian Document Format
            description = _adf_text(description).rstrip("\n")
        record["description"] = get("description", raw=description if description is not None
                                    else "")
    if "issuetype" in fields:
        record["issuetype"] = name_of("issuetype")
        kind = fields.get("issuetype") or {}
        level = kind.get("hierarchyLevel")
        if isinstance(level, int) and level in (-1, 0, 1):
            record["hierarchy_level"] = level
        elif kind.get("subtask") is True:
            record["hierarchy_level"] = -1
    if "priority" in fields:
        record["priority"] = name_of("priority")
    if "status" in fields:
        record["status"] = name_of("status")
        category = ((fields.get("status") or {}).get("statusCategory") or {}).get("key")
        record["status_category"] = (r.CATEGORIES.get(str(category))
                                     or r.status_category(record["status"]))
    if "resolution" in fields:
        record["resolution"] = name_of("resolution")
    if "resolutiondate" in fields:
        record["resolved_at"] = get("resolutiondate", r.timestamp)
    for name, target in (("created", "created"), ("updated", "updated")):
        if name in fields:
            record[target] = get(name, r.timestamp)
    for name in ("components", "labels"):
        if name in fields:
            items = fields[name] or []
            if not isinstance(items, list):
                raise reader.fail(f"{where}.fields.{name}", name, items, "expected an array")
            record[name] = [get(name, raw=(i.get("name") if isinstance(i, dict) else i),
                                at=f"{name}[{k}]") for k, i in enumerate(items)]
    parent = fields.get("parent")
    if "parent" in fields or epic_link_field in fields:
        parent_key = parent.get("key") if isinstance(parent, dict) else None
        record["parent_key"] = get("parent", raw=parent_key, at="parent.key") if parent_key \
            else get(epic_link_field)
    if story_points_field in fields:
        record["story_points"] = get(story_points_field, r.points)
    if "assignee" in fields:
        person = fields.get("assignee") or {}
        ident = person.get("accountId") or person.get("key") or person.get("name")
        record["assignee"] = str(ident) if ident else None
    kept = {name: fields[name] for name in KEPT if fields.get(name) is not None}
    if issue.get("id") is not None:
        kept["id"] = issue["id"]
    record["attributes"] = kept
    changelog = issue.get("changelog")
    if isinstance(changelog, dict):
        record.update(_work_times(reader, f"{where}.changelog", changelog, names,
                                  record.get("status_category")))
    return r.complete_issue(record), _project(fields, key)


def _project(fields: dict[str, Any], key: str) -> r.Project:
    found = fields.get("project")
    project: dict[str, Any] = found if isinstance(found, dict) else {}
    code = str(project.get("key") or key.rsplit("-", 1)[0])
    return r.Project(str(project.get("name") or code), r.slug_for(code))


def _status_names(issues: list[Any]) -> dict[str, str]:
    """Status name -> category, from the statuses of the file's issues, for the changelog."""
    found = dict(r.STATUS_CATEGORIES)
    for issue in issues:
        status = ((issue or {}).get("fields") or {}).get("status") if isinstance(
            issue, dict) else None
        if isinstance(status, dict) and isinstance(status.get("name"), str):
            key = (status.get("statusCategory") or {}).get("key")
            if key in r.CATEGORIES:
                found[status["name"].strip().lower()] = r.CATEGORIES[key]
    return found


def _work_times(reader: r.Reader, where: str, changelog: dict[str, Any], names: dict[str, str],
                current: str | None) -> r.Record:
    """First move into an in-progress status, last move into a done one (if still done)."""
    started: dt.datetime | None = None
    completed: dt.datetime | None = None
    histories = changelog.get("histories") or []
    for k, history in enumerate(histories if isinstance(histories, list) else []):
        items = history.get("items") or [] if isinstance(history, dict) else []
        moves = [i for i in items if isinstance(i, dict) and i.get("field") == "status"]
        if not moves:
            continue
        at = reader.value(f"{where}.histories[{k}].created", "changelog", history.get("created"),
                          r.timestamp)
        for move in moves:
            category = names.get(str(move.get("toString") or "").strip().lower())
            if category == "in_progress" and at is not None and (started is None or at < started):
                started = at
            if category == "done" and at is not None and (completed is None or at > completed):
                completed = at
    if current != "done":
        completed = None
    return {"work_first_started_at": started, "work_last_completed_at": completed}


def _adf_text(node: Any) -> str:
    """The text of an Atlassian Document Format description (REST API v3): paragraphs and
    other blocks on their own lines."""
    if isinstance(node, list):
        return "".join(_adf_text(n) for n in node)
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text") or "")
    if node.get("type") == "hardBreak":
        return "\n"
    inner = _adf_text(node.get("content") or [])
    block = node.get("type") in ("paragraph", "heading", "codeBlock", "blockquote",
                                 "listItem", "rule", "tableRow")
    return inner + "\n" if block and inner else inner
