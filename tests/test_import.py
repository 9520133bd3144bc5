"""Importing real data: slices of the public datasets, and Jira, GitHub and CSV files the tests
write from them. Re-importing changes nothing; a malformed file changes nothing and names the
file, the line or JSON path, the field and the value.

The datasets are read from ../shared/datasets (see tests.conftest.shared_datasets).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.errors import (
    ClientNotFound,
    ConfigurationError,
    MalformedFile,
    MigrationError,
    ReplaceRefused,
)
from pgml_flow.imports import (
    CsvOptions,
    CsvSource,
    DatasetSource,
    GithubPullsSource,
    ImportReport,
    JiraSource,
    datasets,
)
from tests.conftest import shared_datasets

ROOT = Path(__file__).resolve().parent.parent
DATASETS = shared_datasets()
pytestmark = pytest.mark.skipif(not DATASETS.is_dir(),
                                reason=f"the public datasets are not in {DATASETS}")
csv.field_size_limit(sys.maxsize)

#: per table: row count and a digest of every row's xmin (a row updated gets a new one)
STATE = " UNION ALL ".join(
    f"SELECT '{t}', count(*), md5(string_agg(xmin::text, ',' ORDER BY ctid)) FROM {t}"
    for t in ("clients", "issuetypes", "repositories", "issues", "pull_requests",
              "client_bi_roles", "pgml_flow_secrets"))


def state(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    rows = conn.execute(STATE).fetchall()
    conn.rollback()
    return rows


def dataset_rows(relative: str) -> list[dict[str, str]]:
    with gzip.open(DATASETS / relative, "rt", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def iso(moment: dt.datetime) -> str:
    """Jira's timestamp format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def assert_no_op(flow: PgmlFlow, conn: psycopg.Connection, report: ImportReport, source: Any,
                 **options: Any) -> None:
    """Importing the same thing again: every row unchanged, no row of any table touched."""
    before = state(conn)
    again = flow.import_data(source, **options)
    assert (again.rows, again.inserted, again.updated, again.unchanged) == (
        report.rows, 0, 0, report.rows)
    assert not any(c.created for c in again.clients)
    assert state(conn) == before


# -- the public datasets -----------------------------------------------------------------------
def test_dataset_slices_import_with_their_splits(flow: PgmlFlow, conn: psycopg.Connection
                                                 ) -> None:
    slices = [("deepse-storypoints", ("jirasoftware",), None),
              ("deepse-storypoints", ("mesos",), 40),
              ("tawos-storypoints-tse2023", ("STL",), None),
              ("tawos-resolution-time-esem2022", ("CXX", "APIKIT", "CLOV"), 60),
              ("gousios-pullreqs-2015", ("pika@pika",), 40)]
    reports = []
    for name, projects, limit in slices:
        source = DatasetSource(name, DATASETS / name, projects, limit)
        reports.append((source, flow.import_data(source)))
    clients: dict[str, str] = dict(
        conn.execute("SELECT slug, name FROM clients WHERE NOT synthetic").fetchall())
    assert clients == {
        "deepse_jirasoftware": "jirasoftware (deepse-storypoints)",
        "deepse_mesos": "mesos (deepse-storypoints)",
        "tawos_sp_stl": "STL (tawos-storypoints-tse2023)",
        "tawos_rt_cxx": "CXX (tawos-resolution-time-esem2022)",
        "tawos_rt_apikit": "APIKIT (tawos-resolution-time-esem2022)",
        "tawos_rt_clov": "CLOV (tawos-resolution-time-esem2022)",
        "gousios_pika_pika": "pika/pika (gousios-pullreqs-2015)"}

    def count(slug: str, table: str = "issues") -> int:
        return conn.execute(f"SELECT count(*) FROM {table} JOIN clients USING (client_id) "
                            "WHERE slug = %s", (slug,)).fetchone()[0]

    assert (count("deepse_jirasoftware"), count("deepse_mesos"), count("tawos_sp_stl"),
            count("tawos_rt_cxx"), count("gousios_pika_pika", "pull_requests")) == (
        352, 40, 206, 60, 40)

    # deepse: the shipped split file, row for row
    lines = (DATASETS / "deepse-storypoints/splits/jirasoftware_3sets.txt").read_text().split()
    shipped = ["train", "valid", "test"]
    expected = [shipped[row.index("1")] for row in zip(*[iter(lines[3:])] * 3, strict=True)]
    data = dataset_rows("deepse-storypoints/data/jirasoftware.csv.gz")
    got: dict[str, str] = dict(conn.execute(
        "SELECT issue_key, dataset_split FROM issues JOIN clients USING (client_id) "
        "WHERE slug = 'deepse_jirasoftware'").fetchall())
    assert [got[r["issuekey"]] for r in data] == expected
    first = conn.execute(
        "SELECT title, description, story_points, created, issuetype_id, status_category, "
        "components, attributes FROM issues WHERE issue_key = %s", (data[0]["issuekey"],)
    ).fetchone()
    description = data[0]["description"]
    assert first[:3] == (data[0]["title"], None if description == "NULL" else description,
                         int(data[0]["storypoint"])), "the literal NULL of deepse is NULL"
    assert first[3:] == (None, None, None, None, {"source_row": 0}), \
        "what deepse does not say stays NULL"

    # tawos storypoints: Deep-SE's chronological split (train = floor(0.6 n) - 1), types
    splits: dict[str, int] = dict(conn.execute(
        "SELECT dataset_split, count(*) FROM issues JOIN clients USING (client_id) "
        "WHERE slug = 'tawos_sp_stl' GROUP BY 1").fetchall())
    assert splits == {"train": 122, "valid": 41, "test": 43}
    types = {r[0] for r in conn.execute(
        "SELECT t.original_name FROM issuetypes t JOIN clients USING (client_id) "
        "WHERE slug = 'tawos_sp_stl'").fetchall()}
    assert types and types <= set(datasets.TAWOS_TYPES.values())

    # tawos resolution time: status, resolution, dates; epics are hierarchy level 1
    rt = dataset_rows("tawos-resolution-time-esem2022/data/rq2_rq3/CXX.csv.gz")[0]
    row = conn.execute(
        "SELECT t.original_name, i.status, i.status_category, i.resolution, i.created, "
        "i.resolved_at, i.story_points, i.attributes->>'Resolution_Time_Minutes' "
        "FROM issues i JOIN issuetypes t USING (client_id, issuetype_id) "
        "WHERE i.issue_key = %s", (rt["Issue_Key"],)).fetchone()
    assert row == (rt["Type"], rt["Status"], "done", rt["Resolution"],
                   utc(rt["Creation_Date"]), utc(rt["Resolution_Date"]),
                   float(rt["Story_Point"]), rt["Resolution_Time_Minutes"])
    # ... and the title and description of the story-point datasets beside it, joined by
    # key: TAWOS's first, Deep-SE's where TAWOS lacks the issue, none for CXX (in neither)
    tawos = {d["issuekey"]: d for d in dataset_rows(
        "tawos-storypoints-tse2023/data/CLOV_deep-se.csv.gz")}
    deepse = {d["issuekey"]: d for d in dataset_rows("deepse-storypoints/data/clover.csv.gz")}
    texts: dict[str, tuple[str | None, str | None]] = dict(conn.execute(
        "SELECT issue_key, (title, description) FROM issues JOIN clients USING (client_id) "
        "WHERE slug IN ('tawos_rt_clov', 'tawos_rt_cxx')").fetchall())
    sources = [tawos.get(key) or deepse.get(key) for key in texts]
    assert sum(k in tawos for k in texts) == 53 and sum(s is not None for s in sources) == 60
    assert [texts[k] for k in texts] == [
        (s["title"], s["description"] if s["description"] not in ("", "NULL") else None)
        if s else (None, None) for s in sources]
    assert datasets.story_point_texts(DATASETS / "gousios-pullreqs-2015", "CLOV") == {}, \
        "no text when the story-point datasets are not beside the folder"

    # gousios: commits at open and after, review comments, tests; no login anywhere
    prs = dataset_rows("gousios-pullreqs-2015/data/pika@pika.csv.gz")[:40]
    got_prs = {r[0]: r[1:] for r in conn.execute(
        "SELECT number, commits, commits_at_open, rework_commit_count, review_comments, "
        "has_tests, state, author_id IS NOT NULL FROM pull_requests").fetchall()}
    for pr in prs:
        commits, at_open = int(pr["num_commits"]), int(pr["num_commits_open"])
        assert got_prs[int(pr["github_id"])] == (
            commits, at_open, commits - at_open, int(pr["num_pr_comments"]),
            int(pr["test_churn"]) > 0, "merged" if pr["merged_at"] else "closed", True)
    logins = {pr[c] for pr in prs for c in datasets.LOGINS if len(pr[c]) >= 5}
    stored = conn.execute("SELECT string_agg(p::text, ' ') FROM pull_requests p").fetchone()[0]
    assert logins and not [login for login in logins if login in stored]

    for source, report in reports:
        assert_no_op(flow, conn, report, source)


def test_dataset_projects_and_the_withheld_ones() -> None:
    name = "deepse-storypoints"
    labels = [u.label for u in datasets.units(name, DATASETS / name)]
    assert len(labels) == 14 and not [p for p in labels if "talend" in p]
    assert len(datasets.units(name, DATASETS / name, ["talendesb"])) == 1
    with pytest.raises(ConfigurationError, match="no project nope; its projects: "):
        datasets.units(name, DATASETS / name, ["nope"])
    with pytest.raises(ConfigurationError, match="does not hold deepse-storypoints"):
        datasets.units(name, DATASETS / "gousios-pullreqs-2015" / "data")
    with pytest.raises(ConfigurationError, match="no dataset 'typo'"):
        datasets.units("typo", DATASETS)


# -- Jira ----------------------------------------------------------------------------------------
def jira_issues(n: int = 50) -> list[dict[str, Any]]:
    """Jira search-response issues built from TAWOS's Clover issues: text and points
    (storypoints), type and components (its one-hot file), status, resolution and dates
    (resolution time). The datasets have no links: three issues get a parent, an epic link
    and a parent that is not imported; one a changelog, one a REST v3 (ADF) description."""
    base = "tawos-storypoints-tse2023/data/CLOV"
    text = dataset_rows(f"{base}_deep-se.csv.gz")
    one_hot = {r["issuekey"]: r for r in dataset_rows(f"{base}_tfidf-se.csv.gz")}
    times = {r["Issue_Key"]: r for r in dataset_rows(
        "tawos-resolution-time-esem2022/data/rq2_rq3/CLOV.csv.gz")}
    issues = []
    for row in [r for r in text if r["issuekey"] in times][:n]:
        rt, hot = times[row["issuekey"]], one_hot[row["issuekey"]]
        kind = next(c[2:].replace(".", "-") for c, v in hot.items() if c[:2] == "t_" and v == "1")
        created = utc(rt["Creation_Date"])
        resolved = utc(rt["Resolution_Date"]) if rt["Resolution_Date"] != "NULL" else None
        issues.append({"id": rt["ID"], "key": row["issuekey"], "fields": {
            "project": {"key": "CLOV", "name": "Clover"},
            "summary": row["title"], "description": row["description"],
            "issuetype": {"name": kind, "subtask": kind == "Sub-task"},
            "status": {"name": rt["Status"], "statusCategory": {"key": "done", "name": "Done"}},
            "resolution": {"name": rt["Resolution"]}, "priority": None,
            "created": iso(created), "updated": iso(resolved or created),
            "resolutiondate": iso(resolved) if resolved else None,
            "components": [{"name": c[2:].replace(".", " ")} for c, v in hot.items()
                           if c[:2] == "c_" and v == "1"],
            "labels": ["tawos"], "customfield_10016": float(row["storypoint"]),
            "parent": None}})
    parent = issues[0]["key"]
    issues[1]["fields"]["parent"] = {"key": parent}
    issues[2]["fields"]["customfield_10014"] = parent
    issues[3]["fields"]["parent"] = {"key": "CLOV-999999"}
    created = utc(issues[4]["fields"]["created"][:19])
    issues[4]["changelog"] = {"histories": [
        {"created": iso(created + dt.timedelta(days=d)),
         "items": [{"field": "status", "toString": status}]}
        for d, status in ((1, "In Progress"), (2, "Open"), (3, "In Progress"), (5, "Closed"))]}
    issues[5]["fields"]["description"] = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "first"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "second"}]}]}
    return issues


def write_jira(folder: Path, issues: list[dict[str, Any]]) -> Path:
    """Two pages, the parent on the second: page-1.json and page-2.json.gz."""
    folder.mkdir()
    pages = [issues[1:26], [issues[0], *issues[26:]]]
    for k, page in enumerate(pages, start=1):
        doc = json.dumps({"startAt": 0, "maxResults": 50, "total": len(issues), "issues": page})
        if k == 1:
            (folder / "page-1.json").write_text(doc)
        else:
            (folder / "page-2.json.gz").write_bytes(gzip.compress(doc.encode()))
    return folder


def test_jira_search_json(flow: PgmlFlow, conn: psycopg.Connection, tmp_path: Path) -> None:
    issues = jira_issues()
    source = JiraSource([write_jira(tmp_path / "jira", issues)])
    report = flow.import_data(source)
    assert (report.rows, report.inserted, len(report.files)) == (50, 50, 2)
    assert [(c.name, c.slug, c.created) for c in report.clients] == [("Clover", "clov", True)]

    def issue(key: str) -> dict[str, Any]:
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            found = cur.execute("SELECT i.*, t.original_name, t.hierarchy_level, "
                                "p.issue_key AS parent FROM issues i "
                                "LEFT JOIN issuetypes t USING (client_id, issuetype_id) "
                                "LEFT JOIN issues p ON p.client_id = i.client_id "
                                "AND p.issue_id = i.parent_issue_id WHERE i.issue_key = %s",
                                (key,)).fetchone()
        assert found is not None
        return found

    for given in issues[6:]:
        fields, got = given["fields"], issue(given["key"])
        assert (got["title"], got["description"], float(got["story_points"])) == (
            fields["summary"], fields["description"], fields["customfield_10016"])
        assert (got["original_name"], got["status"], got["status_category"],
                got["resolution"], got["priority"]) == (
            fields["issuetype"]["name"], fields["status"]["name"], "done",
            fields["resolution"]["name"], None)
        assert got["hierarchy_level"] == (-1 if fields["issuetype"]["name"] == "Sub-task"
                                          else 1 if fields["issuetype"]["name"] == "Epic" else 0)
        assert got["created"] == utc(fields["created"][:19])
        assert got["resolved_at"] == (utc(fields["resolutiondate"][:19])
                                      if fields["resolutiondate"] else None)
        assert (got["components"], got["labels"]) == (
            [c["name"] for c in fields["components"]], ["tawos"])
        assert got["attributes"] == {"id": given["id"]}
    parent = issues[0]["key"]
    assert (issue(issues[1]["key"])["parent"], issue(issues[1]["key"])["parent_key"]) == (
        parent, parent), "the parent, imported after its child (the next file)"
    assert issue(issues[2]["key"])["parent"] == parent, "the epic link"
    orphan = issue(issues[3]["key"])
    assert (orphan["parent_key"], orphan["parent_issue_id"]) == ("CLOV-999999", None)
    worked = issue(issues[4]["key"])
    assert (worked["work_last_completed_at"] - worked["work_first_started_at"]).days == 4
    assert worked["total_lead_time_seconds"] == 4 * 86400
    assert issue(issues[5]["key"])["description"] == "first\nsecond"

    assert_no_op(flow, conn, report, source)
    # a story-point field no issue has: said, and the points imported before stay
    before = state(conn)
    other = flow.import_data(JiraSource(source.paths, story_points_field="customfield_99"))
    assert other.unchanged == 50 and state(conn) == before
    assert "no issue has the field customfield_99" in other.notes[0]


# -- GitHub --------------------------------------------------------------------------------------
def github_pulls(rows: list[dict[str, str]], keys: list[str]) -> list[dict[str, Any]]:
    """GitHub pulls (with embedded commits, reviews, review comments and files) built from
    gousios rows: commits at open before the opening, the others after; one review comment
    per inline comment; a review requesting changes when commits came after opening; a
    test file when test code changed. Titles name ``keys``, one per pull request."""
    def at(seconds: float) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    pulls = []
    for k, row in enumerate(rows):
        opened = int(row["created_at"])
        commits, at_open = int(row["num_commits"]), int(row["num_commits_open"])
        files = int(row["files_changed"])
        pulls.append({
            "number": int(row["github_id"]), "state": "closed",
            "title": f"{keys[k % len(keys)]}: change {row['github_id']}",
            "user": {"login": row["requester"]}, "created_at": at(opened),
            "merged_at": at(int(row["merged_at"])) if row["merged_at"] else None,
            "closed_at": at(int(row["closed_at"])),
            "base": {"ref": "master", "repo": {"full_name": row["project_name"],
                                               "default_branch": "master",
                                               "created_at": "2009-01-01T00:00:00Z"}},
            "head": {"ref": f"change-{k}"}, "comments": int(row["num_issue_comments"]),
            "commits": [{"sha": f"{k}-{j}", "commit": {"author": {
                "date": at(opened - 3600 if j < at_open else opened + 3600 * (j + 1))}}}
                for j in range(commits)],
            "reviews": [{"user": {"login": "reviewer-b"}, "submitted_at": at(opened + 1800),
                         "state": "CHANGES_REQUESTED" if commits > at_open else "APPROVED"}],
            "review_comments": [{"user": {"login": "reviewer-a"}, "created_at": at(opened + 600)}
                                for _ in range(int(row["num_pr_comments"]))],
            "files": [{"filename": "tests/test_it.py" if j == 0 and int(row["test_churn"])
                       else f"lib/part_{j}.py", "additions": 2, "deletions": 1}
                      for j in range(files)]})
    return pulls


def test_github_pulls_json_linked_to_jira_issues(flow: PgmlFlow, conn: psycopg.Connection,
                                                tmp_path: Path) -> None:
    issues = jira_issues(10)
    jira = flow.import_data(JiraSource([write_jira(tmp_path / "jira", issues)]))
    client = jira.clients[0].client_id
    rows = dataset_rows("gousios-pullreqs-2015/data/pika@pika.csv.gz")[:30]
    keys = [i["key"] for i in issues[:3]]
    path = tmp_path / "pulls.json"
    path.write_text(json.dumps(github_pulls(rows, keys)))
    source = GithubPullsSource([path])
    report = flow.import_data(source, client_id=client)
    assert (report.rows, report.inserted, [c.client_id for c in report.clients]) == (
        30, 30, [client])
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        got = {r["number"]: r for r in cur.execute(
            "SELECT p.*, i.issue_key AS linked, r.name AS repository, r.default_branch "
            "FROM pull_requests p JOIN repositories r USING (client_id, repository_id) "
            "LEFT JOIN issues i ON i.client_id = p.client_id AND i.issue_id = p.issue_id")}
    for k, row in enumerate(rows):
        pr = got[int(row["github_id"])]
        commits, at_open = int(row["num_commits"]), int(row["num_commits_open"])
        opened = dt.datetime.fromtimestamp(int(row["created_at"]), dt.UTC)
        comments = int(row["num_pr_comments"])
        assert (pr["commits"], pr["commits_at_open"], pr["rework_commit_count"]) == (
            commits, at_open, commits - at_open)
        assert (pr["review_comments"], pr["reviewers"], pr["review_cycles"]) == (
            comments, 2 if comments else 1, int(commits > at_open))
        assert pr["first_review_at"] == opened + dt.timedelta(seconds=600 if comments else 1800)
        assert pr["has_tests"] == (int(row["test_churn"]) > 0 and int(row["files_changed"]) > 0)
        assert (pr["changed_files"], pr["additions"], pr["comments"]) == (
            int(row["files_changed"]), 2 * int(row["files_changed"]),
            int(row["num_issue_comments"]))
        assert (pr["state"], pr["created_at"]) == (
            "merged" if row["merged_at"] else "closed", opened)
        assert (pr["issue_key"], pr["linked"]) == (keys[k % 3], keys[k % 3])
        assert (pr["repository"], pr["default_branch"]) == ("pika/pika", "master")
    assert_no_op(flow, conn, report, source, client_id=client)

    # a later export embeds the sub-resources of some pull requests only: the others keep
    # what the first import gave them
    pulls = github_pulls(rows, keys)
    for pull in pulls[5:]:
        for name in ("commits", "reviews", "review_comments", "files", "comments"):
            del pull[name]
    pulls[0]["title"] = "SHOP-9: renamed"
    path.write_text(json.dumps(pulls))
    before = conn.execute("SELECT number, commits, review_comments, has_tests, issue_key "
                          "FROM pull_requests ORDER BY number").fetchall()
    conn.rollback()
    partial = flow.import_data(source, client_id=client)
    assert (partial.updated, partial.unchanged) == (1, 29)
    after = conn.execute("SELECT number, commits, review_comments, has_tests, issue_key "
                         "FROM pull_requests ORDER BY number").fetchall()
    changed = int(rows[0]["github_id"])
    assert [r for r in after if r[0] != changed] == [r for r in before if r[0] != changed]
    assert [r[4] for r in after if r[0] == changed] == ["SHOP-9"]

    # the same person has the same pseudonym in the dataset's own client
    flow.import_data(DatasetSource("gousios-pullreqs-2015", DATASETS / "gousios-pullreqs-2015",
                                   ["pika@pika"], 30))
    pairs = conn.execute(
        "SELECT a.author_id = b.author_id FROM pull_requests a JOIN pull_requests b "
        "ON a.number = b.number AND a.client_id < b.client_id").fetchall()
    assert len(pairs) == 30 and all(p[0] for p in pairs)


# -- CSV -----------------------------------------------------------------------------------------
def test_csv_issues_and_pull_requests(flow: PgmlFlow, conn: psycopg.Connection,
                                      tmp_path: Path) -> None:
    rows = dataset_rows("tawos-resolution-time-esem2022/data/rq2_rq3/DAEMON.csv.gz")[:20]
    issues = tmp_path / "issues.csv"
    with issues.open("w", newline="") as handle:
        out = csv.writer(handle, delimiter=";")
        out.writerow(["key", "type", "state", "opened", "points", "tags", "team", "ignored"])
        for k, row in enumerate(rows):
            opened = utc(row["Creation_Date"]).strftime("%d.%m.%Y %H:%M")
            out.writerow([row["Issue_Key"], row["Type"], row["Status"], opened,
                          row["Story_Point"], "a|b" if k % 2 else "", "core", "x"])
    options = CsvOptions("issues", {"key": "issue_key", "type": "issuetype", "state": "status",
                                    "opened": "created", "points": "story_points",
                                    "tags": "labels", "team": "attributes.team"},
                         delimiter=";", list_separator="|", date_format="%d.%m.%Y %H:%M")
    source = CsvSource([issues], options)
    report = flow.import_data(source)
    assert [(c.name, c.slug) for c in report.clients] == [("DAEMON", "daemon")]
    got = conn.execute(
        "SELECT i.issue_key, t.original_name, i.status, i.status_category, i.created, "
        "i.story_points, i.labels, i.attributes, i.description, i.components "
        "FROM issues i JOIN issuetypes t USING (client_id, issuetype_id) ORDER BY issue_id"
    ).fetchall()
    assert [g[:3] for g in got] == [(r["Issue_Key"], r["Type"], r["Status"]) for r in rows]
    assert {g[3] for g in got} == {"done"}
    assert got[1][4] == utc(rows[1]["Creation_Date"]).replace(second=0)
    assert [float(g[5]) for g in got] == [float(r["Story_Point"]) for r in rows]
    assert (got[0][6], got[1][6], got[1][7], got[1][8:]) == (
        None, ["a", "b"], {"team": "core"}, (None, None))
    assert_no_op(flow, conn, report, source)

    prs = tmp_path / "pulls.csv.gz"
    gousios = dataset_rows("gousios-pullreqs-2015/data/twitter@zipkin.csv.gz")[:15]
    text = io.StringIO()
    out = csv.writer(text)
    out.writerow(["pr", "opened", "merged", "closed", "commits", "at_open", "files"])
    for row in gousios:
        out.writerow([row["github_id"], row["created_at"], row["merged_at"], row["closed_at"],
                      row["num_commits"], row["num_commits_open"], row["files_changed"]])
    prs.write_bytes(gzip.compress(text.getvalue().encode()))
    options = CsvOptions("pull_requests", {"pr": "number", "opened": "created_at",
                                           "merged": "merged_at", "closed": "closed_at",
                                           "at_open": "commits_at_open",
                                           "files": "changed_files"},
                         repository="twitter/zipkin")
    source = CsvSource([prs], options)
    report = flow.import_data(source)
    assert [c.slug for c in report.clients] == ["twitter_zipkin"]
    got = conn.execute("SELECT number, rework_commit_count, state, title, author_id, additions "
                       "FROM pull_requests ORDER BY pull_request_id").fetchall()
    assert got == [(int(r["github_id"]), int(r["num_commits"]) - int(r["num_commits_open"]),
                    "merged" if r["merged_at"] else "closed", None, None, None)
                   for r in gousios]
    assert_no_op(flow, conn, report, source)


# -- what stops an import ------------------------------------------------------------------------
def test_a_malformed_file_changes_nothing(flow: PgmlFlow, conn: psycopg.Connection,
                                          tmp_path: Path) -> None:
    before = state(conn)

    def refused(source: Any, *fragments: str) -> None:
        with pytest.raises(MalformedFile) as caught:
            flow.import_data(source)
        message = str(caught.value)
        for fragment in fragments:
            assert fragment in message, message
        assert "nothing was imported" in message
        assert state(conn) == before

    # Jira: the second file is wrong, the first (good) one is not written either
    issues = jira_issues(30)
    issues[27]["fields"]["customfield_10016"] = "three"
    folder = write_jira(tmp_path / "jira", issues)
    refused(JiraSource([folder]), "page-2.json.gz: issues[2].fields.customfield_10016",
            "field 'customfield_10016'", "'three'", "story points")
    (tmp_path / "broken.json").write_text('{"issues": [\n  {"key": "A-1",}\n]}')
    refused(JiraSource([tmp_path / "broken.json"]), "broken.json:2:", "not valid JSON")

    # GitHub
    pulls = github_pulls(dataset_rows("gousios-pullreqs-2015/data/pika@pika.csv.gz")[:5], ["X-1"])
    pulls[3]["created_at"] = "yesterday"
    (tmp_path / "pulls.json").write_text(json.dumps(pulls))
    refused(GithubPullsSource([tmp_path / "pulls.json"]), "pulls.json: [3].created_at",
            "field 'created_at'", "'yesterday'")
    pulls[3]["created_at"], pulls[4]["number"] = pulls[2]["created_at"], pulls[2]["number"]
    (tmp_path / "pulls.json").write_text(json.dumps(pulls))
    refused(GithubPullsSource([tmp_path / "pulls.json"]), "pulls.json: [4]", "field 'number'",
            "given twice (first at [2])", "'pika/pika#")

    # CSV: the line of the record (a quoted cell spans two lines before it)
    path = tmp_path / "issues.csv"
    path.write_text('issue_key,title,story_points\nA-1,"two\nlines",3\nA-2,ok,x3\n')
    refused(CsvSource([path], CsvOptions("issues")), "issues.csv:4", "field 'story_points'",
            "'x3'")
    path.write_text("k,opened\nA-1,31/02/2020\n")
    refused(CsvSource([path], CsvOptions("issues", {"k": "issue_key", "opened": "created"},
                                         date_format="%d/%m/%Y")),
            "issues.csv:2", "field 'created (column opened)'", "'31/02/2020'")
    path.write_text("issue_key,dataset_split\nA-1,training\n")
    refused(CsvSource([path], CsvOptions("issues")), "issues.csv:2", "'training'",
            "train, valid or test")

    # a dataset: the second project is wrong, the first is not written either
    root = tmp_path / "deepse"
    (root / "data").mkdir(parents=True)
    (root / "splits").mkdir()
    source_root = DATASETS / "deepse-storypoints"
    for project in ("jirasoftware", "usergrid"):
        shutil.copy(source_root / "splits" / f"{project}_3sets.txt", root / "splits")
    shutil.copy(source_root / "data" / "jirasoftware.csv.gz", root / "data")
    rows = dataset_rows("deepse-storypoints/data/usergrid.csv.gz")
    rows[30]["storypoint"] = "lots"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[:30])
    line = text.getvalue().count("\n") + 1
    writer.writerows(rows[30:])
    (root / "data" / "usergrid.csv.gz").write_bytes(gzip.compress(text.getvalue().encode()))
    refused(DatasetSource("deepse-storypoints", root),
            f"usergrid.csv.gz:{line}: field 'storypoint'", "'lots'")


def test_cli_import_with_bi_logins_and_errors(flow: PgmlFlow, conn: psycopg.Connection,
                                              tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "200"}
    path = tmp_path / "issues.csv"
    path.write_text("key,points,split\nQA-1,3,train\nQA-2,5,test\n")
    command = [sys.executable, "-m", "cli.app", "import", "csv", "issues", str(path),
               "--map", "key=issue_key", "--map", "points=story_points",
               "--map", "split=dataset_split", "--bi-logins", "--json"]
    done = subprocess.run(command, env=env, cwd=tmp_path, text=True, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["rows"], out["inserted"], out["clients"][0]["name"]) == (2, 2, "QA")
    assert len(out["bi_logins"]) == 1
    row = conn.execute("SELECT c.synthetic, count(r.role_name) FROM clients c "
                       "JOIN client_bi_roles r USING (client_id) GROUP BY 1").fetchone()
    assert row == (False, 1)
    try:
        path.write_text("key,points\nQA-1,3\nQA-2,many\n")
        bad = subprocess.run(command[:-4], env=env, cwd=tmp_path, text=True,
                             capture_output=True, timeout=120)
        assert bad.returncode == 2, bad.stderr
        message = " ".join(bad.stderr.split())
        assert "issues.csv:3: field 'story_points (column points)'" in message, message
        assert "'many'" in message and "Traceback" not in bad.stderr
    finally:
        flow.revoke_bi_access()


def test_client_option_and_synthetic_clients(flow: PgmlFlow, conn: psycopg.Connection,
                                             tmp_path: Path) -> None:
    flow.seed(clients=1, issues=20, seed=1)  # Acme, slug acme_1, synthetic
    path = tmp_path / "issues.csv"
    path.write_text("issue_key,title\nACME_1-9001,Imported\n")
    before = state(conn)
    with pytest.raises(ConfigurationError, match=r"is synthetic.*--client 1.*nothing was "):
        flow.import_data(CsvSource([path], CsvOptions("issues")))
    assert state(conn) == before
    with pytest.raises(ClientNotFound, match="client 7 does not exist"):
        flow.import_data(CsvSource([path], CsvOptions("issues")), client_id=7)
    report = flow.import_data(CsvSource([path], CsvOptions("issues")), client_id=1)
    assert (report.inserted, report.clients[0].created) == (1, False)
    assert conn.execute("SELECT synthetic FROM clients").fetchone() == (False,)
    conn.rollback()
    with pytest.raises(ReplaceRefused, match="not synthetic"):
        flow.seed(clients=1, issues=20, seed=1)


def test_downgrade_refuses_rows_the_old_schema_cannot_hold(flow: PgmlFlow,
                                                           conn: psycopg.Connection) -> None:
    flow.import_data(DatasetSource("deepse-storypoints", DATASETS / "deepse-storypoints",
                                   ["mesos"], 5))
    head = flow.schema_revision()[0]
    with pytest.raises(MigrationError, match=r"(?s)0009_real_data cannot be undone: .*"
                       r"issues\.issuetype_id \(5 rows\).*nothing was changed"):
        flow.downgrade("0008_synthetic_clients")
    assert flow.schema_revision()[0] == head
    assert conn.execute("SELECT count(*) FROM issues").fetchone() == (5,)


def test_the_seed_fills_the_new_columns(flow: PgmlFlow, conn: psycopg.Connection) -> None:
    flow.seed(clients=1, issues=300, seed=2)
    wrong = conn.execute(
        """SELECT count(*) FILTER (WHERE commits_at_open IS DISTINCT FROM
                                         commits - rework_commit_count),
                  count(*) FILTER (WHERE attributes <> '{}' OR dataset_split IS NOT NULL)
             FROM pull_requests""").fetchone()
    assert wrong == (0, 0)
    issues = conn.execute(
        """SELECT count(*) FILTER (WHERE resolved_at IS DISTINCT FROM work_last_completed_at),
                  count(*) FILTER (WHERE labels <> '{}' OR parent_key IS NOT NULL),
                  count(*) FILTER (WHERE resolved_at IS NOT NULL)
             FROM issues""").fetchone()
    assert issues[:2] == (0, 0) and issues[2] > 0
