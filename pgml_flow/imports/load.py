"""Writing what was read: each batch in one transaction, at COPY speed.

The batch's records are COPYed into a temporary staging table, then one ``INSERT ... ON
CONFLICT DO UPDATE`` upserts them on their natural key (sql/imports.sql). A new row gets
every column, NULL where the source does not say; a row that exists gets only the columns
the source carries, and is not touched when they hold the same values, so that importing
the same file again changes nothing. Logins become pseudonyms here: a keyed hash, the key
made once per database and readable by its owner only (``pgml_flow_secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgml_flow import sqlfiles
from pgml_flow.errors import ClientNotFound, ConfigurationError
from pgml_flow.imports.records import Batch, Project, Record

SOURCE = "imports"

#: staging columns and their types, in COPY order (after ord and client_id), as
#: sql/imports.sql creates them
ISSUE_TYPES = {
    "issue_key": "text", "issuetype": "text", "hierarchy_level": "int4", "parent_key": "text",
    "story_points": "numeric", "created": "timestamptz", "updated": "timestamptz",
    "resolved_at": "timestamptz", "work_first_started_at": "timestamptz",
    "work_last_completed_at": "timestamptz", "total_lead_time_seconds": "int8",
    "status": "text", "status_category": "text", "resolution": "text", "priority": "text",
    "components": "text[]", "labels": "text[]", "assignee_id": "int8", "title": "text",
    "description": "text", "dataset_split": "text", "attributes": "jsonb", "carried": "text[]",
}
PULL_REQUEST_TYPES = {
    "repository": "text", "default_branch": "text", "repository_created_at": "timestamptz",
    "number": "int4", "title": "text", "author_id": "int8", "created_at": "timestamptz",
    "first_review_at": "timestamptz", "merged_at": "timestamptz", "closed_at": "timestamptz",
    "state": "text", "issue_key": "text", "additions": "int4", "deletions": "int4",
    "changed_files": "int4", "commits": "int4", "commits_at_open": "int4",
    "rework_commit_count": "int4", "comments": "int4", "review_comments": "int4",
    "reviewers": "int4", "review_cycles": "int4", "has_tests": "bool", "dataset_split": "text",
    "attributes": "jsonb", "carried": "text[]",
}
ISSUE_STAGE = tuple(c for c in ISSUE_TYPES if c != "carried")
PULL_REQUEST_STAGE = tuple(c for c in PULL_REQUEST_TYPES if c != "carried")
#: memory for the upsert's sorts and hashes (a transaction's own; the default 4 MB spills
#: a project of 16,000 issues to disk)
WORK_MEM = "64MB"
#: table column -> (value for a new row, from staging row s and the joins; the fields that
#: carry it). Columns not named here are the staged column of the same name.
_ISSUE_SPECIAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "issuetype_id": ("it.issuetype_id", ("issuetype",)),
    "parent_issue_id": ("p.issue_id", ("parent_key",)),
    "assignee_id": ("s.assignee_id", ("assignee",)),
}
_PULL_REQUEST_SPECIAL: dict[str, tuple[str, tuple[str, ...]]] = {
    "issue_id": ("i.issue_id", ("issue_key",)),
    "author_id": ("s.author_id", ("author",)),
}
_ISSUE_PLAIN = tuple(c for c in ISSUE_STAGE
                     if c not in ("issue_key", "issuetype", "hierarchy_level", "assignee_id"))
_PULL_REQUEST_PLAIN = tuple(c for c in PULL_REQUEST_STAGE
                            if c not in ("repository", "default_branch",
                                         "repository_created_at", "number", "author_id"))


@dataclass(frozen=True)
class ClientReport:
    client_id: int
    name: str
    slug: str | None
    #: made by this import
    created: bool


@dataclass(frozen=True)
class FileReport:
    """What one file (or dataset project) did: its rows new, changed and unchanged."""

    file: str
    kind: str
    clients: tuple[int, ...]
    rows: int
    inserted: int
    updated: int
    unchanged: int
    seconds: float


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


# -- clients -----------------------------------------------------------------------------------
class Clients:
    """Which client each project's rows go to: ``client_id`` for all, or the client whose
    slug is the project's, made on first import (named after the project, not synthetic)."""

    def __init__(self, conn: psycopg.Connection, client_id: int | None) -> None:
        self.conn = conn
        self.client_id = client_id
        self.seen: dict[int, ClientReport] = {}

    def check(self) -> None:
        """Refuse an unknown --client before any file is read."""
        if self.client_id is None:
            return
        if self.conn.execute(_query("client_by_id"),
                             {"client_id": self.client_id}).fetchone() is None:
            raise ClientNotFound(f"client {self.client_id} does not exist (--client); leave "
                                 "--client out to make one per project")

    def check_projects(self, projects: Iterable[Project]) -> None:
        """Refuse, before anything is written, a project whose slug is a synthetic client's."""
        if self.client_id is not None:
            return
        for project in sorted(projects, key=lambda p: p.slug):
            row = self.conn.execute(_query("client_by_slug"), {"slug": project.slug}).fetchone()
            if row is not None and row[2]:
                raise ConfigurationError(
                    f"client {row[0]} {row[1]!r} has the slug {project.slug!r} of project "
                    f"{project.name!r} but is synthetic (made by `pgml-flow seed`, which "
                    f"replaces it): import into it with --client {row[0]} (it then stops "
                    "being synthetic), or change its slug; nothing was imported")

    def resolve(self, project: Project) -> int:
        """The client of a project's rows, inside the file's transaction."""
        if self.client_id is not None:
            row = self.conn.execute(_query("client_by_id"),
                                    {"client_id": self.client_id}).fetchone()
            if row is None:
                raise ClientNotFound(f"client {self.client_id} does not exist (--client)")
            self.conn.execute(_query("mark_real"), {"client_id": self.client_id})
            self.seen.setdefault(self.client_id,
                                 ClientReport(self.client_id, str(row[1]), None, False))
            return self.client_id
        self.conn.execute(_query("lock_clients"))
        row = self.conn.execute(_query("client_by_slug"), {"slug": project.slug}).fetchone()
        if row is not None:
            client_id, name = int(row[0]), str(row[1])
            if row[2]:  # synthetic since check_projects
                self.check_projects([project])
            self.seen.setdefault(client_id, ClientReport(client_id, name, project.slug, False))
            return client_id
        made = self.conn.execute(_query("insert_client"),
                                 {"name": project.name, "slug": project.slug}).fetchone()
        assert made is not None
        client_id = int(made[0])
        self.seen[client_id] = ClientReport(client_id, project.name, project.slug, True)
        return client_id


# -- pseudonyms --------------------------------------------------------------------------------
def pseudonym_key(conn: psycopg.Connection) -> bytes:
    """The database's pseudonym key, made (and committed) on first use."""
    conn.execute(_query("pseudonym_key"), {"value": secrets.token_bytes(32)})
    row = conn.execute(_query("read_pseudonym_key")).fetchone()
    conn.commit()
    assert row is not None
    return bytes(row[0])


def pseudonym(key: bytes, login: str | None) -> int | None:
    """A stable 63-bit id for a login (case-insensitive, as GitHub's are): HMAC-SHA256 under
    the database's key. The login is never stored; without the key, the id cannot be tied
    back to it. The same login gets the same id from every source and in every client."""
    if not login:
        return None
    digest = hmac.new(key, login.strip().lower().encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# -- writing a batch ---------------------------------------------------------------------------
def write(conn: psycopg.Connection, batch: Batch, clients: Clients, key: bytes) -> FileReport:
    """Write one batch in one transaction (the caller's connection, not in a transaction)."""
    started = time.perf_counter()
    with conn.transaction():
        ids = {project: clients.resolve(project) for project in batch.groups}
        for client_id in sorted(set(ids.values())):
            conn.execute(_query("lock_client"), {"client_id": client_id})
        fields, always = batch.fields()
        partly = sorted(fields - always)
        conn.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))
        if batch.kind == "issues":
            conn.execute(_query("stage_issues"))
            _copy(conn, "import_issues", ISSUE_TYPES,
                  _staged(batch, ids, ISSUE_STAGE, key, partly))
            conn.execute(_query("insert_issuetypes"))
            flags = _upsert(conn, "upsert_issues", _ISSUE_PLAIN, _ISSUE_SPECIAL, fields, always)
            conn.execute(_query("link_parents"), {"client_ids": sorted(set(ids.values()))})
        else:
            conn.execute(_query("stage_pull_requests"))
            _copy(conn, "import_pull_requests", PULL_REQUEST_TYPES,
                  _staged(batch, ids, PULL_REQUEST_STAGE, key, partly))
            conn.execute(_query("insert_repositories"))
            conn.execute(_query("update_repositories"))
            flags = _upsert(conn, "upsert_pull_requests", _PULL_REQUEST_PLAIN,
                            _PULL_REQUEST_SPECIAL, fields, always)
        conn.execute(_query("link_pull_requests"), {"client_ids": sorted(set(ids.values()))})
    inserted = sum(flags)
    return FileReport(batch.label, batch.kind, tuple(sorted(set(ids.values()))), batch.rows,
                      inserted, len(flags) - inserted, batch.rows - len(flags),
                      time.perf_counter() - started)


def _staged(batch: Batch, ids: dict[Project, int], columns: Sequence[str], key: bytes,
            partly: Sequence[str]) -> Iterable[tuple[Any, ...]]:
    """Staging rows: order, client, the columns, and the ``partly`` carried fields the
    record has (None when every record carries the same fields)."""
    order = 0
    for project, records in batch.groups.items():
        client_id = ids[project]
        for record in records:
            order += 1
            carried = [f for f in partly if f in record] if partly else None
            yield (order, client_id, *(_value(record, c, key) for c in columns), carried)


def _value(record: Record, column: str, key: bytes) -> Any:
    if column == "attributes":
        value = record.get("attributes")
        return Jsonb(value) if value is not None else None
    if column == "assignee_id":
        return pseudonym(key, record.get("assignee"))
    if column == "author_id":
        return pseudonym(key, record.get("author"))
    return record.get(column)


def _copy(conn: psycopg.Connection, table: str, types: dict[str, str],
          rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY (binary) into the staging table, then ANALYZE it for the upsert's plan."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, ("ord", "client_id", *types))))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(["int4", "int8", *types.values()])
        for row in rows:
            copy.write_row(row)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def _upsert(conn: psycopg.Connection, name: str, plain: Sequence[str],
            special: dict[str, tuple[str, tuple[str, ...]]], fields: set[str],
            always: set[str]) -> list[bool]:
    """Run an upsert of sql/imports.sql: every column for new rows; for rows that exist,
    the columns their record carries (``fields``: some record has them, ``always``: every
    record has them; a row whose record lacks one keeps its value, ``o``)."""
    columns: list[str] = [*plain, *special]

    def sources(c: str) -> tuple[str, ...]:
        return special[c][1] if c in special else (c,)

    def value(c: str) -> sql.Composable:
        if c == "attributes":  # merged into the row's attributes: nothing to keep
            return sql.SQL("coalesce(s.attributes, '{}')")
        new = sql.SQL(special[c][0]) if c in special else sql.SQL("s.{}").format(
            sql.Identifier(c))
        if not any(f in fields for f in sources(c)) or all(f in always for f in sources(c)):
            return new
        return sql.SQL("CASE WHEN s.carried && {} THEN {} ELSE o.{} END").format(
            sql.Literal(list(sources(c))), new, sql.Identifier(c))

    values = [value(c) for c in columns]
    carried = [c for c in columns if any(f in fields for f in sources(c))]

    def ids(names: Sequence[str], prefix: str = "") -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n))
                                  for n in names)

    def updated(c: str) -> sql.Composable:
        if c == "attributes":
            return sql.SQL("t.attributes || EXCLUDED.attributes")
        return sql.SQL("EXCLUDED.{}").format(sql.Identifier(c))

    # a file of keys only updates nothing; SET needs a column all the same
    set_columns = carried or [columns[0]]
    new_values = (sql.SQL(", ").join(updated(c) for c in carried) if carried
                  else ids(set_columns, "t."))
    statement = sql.SQL(_query(name)).format(
        columns=ids(columns), values=sql.SQL(", ").join(values),
        set_columns=ids(set_columns), current=ids(set_columns, "t."), updated=new_values)
    rows = conn.execute(statement).fetchall()
    return [bool(r[0]) for r in rows]
