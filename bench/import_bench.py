"""Import throughput: every shared dataset in full, and the same rows as Jira and GitHub JSON.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/import_bench.py [--datasets ../shared/datasets] [--keep]

It creates a scratch database ``pgmlflow_bench_import`` next to pgml-flow's (dropped at the
end unless ``--keep``) and, through ``PgmlFlow.import_data`` (what ``pgml-flow import``
calls), imports:

* each dataset of ``--datasets`` in full: every project, the two Talend projects of
  deepse-storypoints too (the import leaves them out unless named);
* ``jira``: every issue of tawos-resolution-time-esem2022 written as Jira search JSON (one
  file per project, in a temporary folder), and ``github-pulls``: every pull request of
  gousios-pullreqs-2015 as GitHub pulls JSON (with embedded commits);

then imports each again, which must change nothing. Per import it prints the files, rows,
the seconds spent reading (parsing and checking every file) and writing (COPY into the
staging table, upsert, links, the training summary), rows/s, and the re-import's; and the
load average, since the machine may be shared. The figures are saved as JSON in
``bench/results/import-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pgml_flow.app import PgmlFlow
from pgml_flow.benchmarks import save
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.imports import DatasetSource, GithubPullsSource, ImportReport, JiraSource, Source
from pgml_flow.imports.datasets import DATASETS
from pgml_flow.settings import Settings

DATABASE = "pgmlflow_bench_import"
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
console = Console(width=None if sys.stdout.isatty() else 150)


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    files: int
    clients: int
    rows: int
    read_seconds: float
    write_seconds: float
    seconds: float
    #: the same import again: seconds, and rows unchanged (all of them, or it failed)
    again_seconds: float
    again_unchanged: int
    loadavg: tuple[float, float, float]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def write_rows_per_second(self) -> float:
        return self.rows / self.write_seconds

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "rows_per_second": self.rows_per_second,
                "write_rows_per_second": self.write_rows_per_second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets",
                        help="the folder of the public datasets")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON")
    args = parser.parse_args()
    base = PgmlFlow()
    admin = with_dbname(base.url, "postgres")
    recreate_database(admin, DATABASE)
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(),
                                        database_url=with_dbname(admin, DATABASE)))
    runs: list[Run] = []
    start_load = os.getloadavg()
    console.print(f"load average at start: {_load(start_load)} ({os.cpu_count()} CPUs)")
    try:
        flow.upgrade()
        for name, dataset in DATASETS.items():
            root = args.datasets / name
            source = DatasetSource(name, root, tuple(dataset.projects(root)))
            runs.append(_measure(flow, name, source))
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            runs.append(_measure(flow, "jira (tawos-resolution-time as Jira JSON)",
                                 JiraSource([_jira(args.datasets, folder / "jira")])))
            runs.append(_measure(flow, "github-pulls (gousios-pullreqs-2015 as GitHub JSON)",
                                 GithubPullsSource([_github(args.datasets,
                                                            folder / "github")])))
    finally:
        if not args.keep:
            drop_database(admin, DATABASE)
    end_load = os.getloadavg()
    _print(runs)
    console.print(f"load average at start: {_load(start_load)}; at end: {_load(end_load)} "
                  f"({os.cpu_count()} CPUs)")
    path = save({"imports": runs}, "import", args.out,
                {"loadavg": {"start": start_load, "end": end_load}})
    console.print(f"saved {path}")


def _measure(flow: PgmlFlow, name: str, source: Source) -> Run:
    console.print(f"importing {name} ...", highlight=False)
    marks: list[float] = []
    started = time.perf_counter()

    def progress(label: str, total: int) -> None:
        if label.startswith("read "):
            marks.append(time.perf_counter())

    report: ImportReport = flow.import_data(source, progress=progress)
    seconds = time.perf_counter() - started
    read = (marks[-1] - started) if marks else 0.0
    again = flow.import_data(source)
    if again.unchanged != again.rows or again.rows != report.rows:
        raise SystemExit(f"{name}: importing again changed rows: {again}")
    return Run(name, len(report.files), len(report.clients), report.rows, read,
               seconds - read, seconds, again.seconds, again.unchanged, os.getloadavg())


def _rows(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _stamp(text: str) -> str | None:
    if text in ("", "NULL"):
        return None
    return dt.datetime.fromisoformat(text).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _jira(datasets: Path, folder: Path) -> Path:
    """tawos-resolution-time's issues as Jira search responses, one file per project."""
    folder.mkdir()
    for path in sorted((datasets / "tawos-resolution-time-esem2022/data/rq2_rq3").glob("*.gz")):
        issues = [{"id": r["ID"], "key": r["Issue_Key"], "fields": {
            "issuetype": {"name": r["Type"]}, "status": {"name": r["Status"]},
            "resolution": {"name": r["Resolution"]}, "created": _stamp(r["Creation_Date"]),
            "resolutiondate": _stamp(r["Resolution_Date"]),
            "customfield_10016": None if r["Story_Point"] == "NULL" else float(r["Story_Point"]),
            "summary": f"Issue {r['Issue_Key']}", "labels": [], "components": []}}
            for r in _rows(path)]
        (folder / f"{path.name[:-7]}.json").write_text(json.dumps({"issues": issues}))
    return folder


def _github(datasets: Path, folder: Path) -> Path:
    """gousios-pullreqs-2015's pull requests as GitHub pulls responses with their commits."""
    folder.mkdir()

    def at(seconds: int) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    for path in sorted((datasets / "gousios-pullreqs-2015/data").glob("*.gz")):
        pulls = []
        for r in _rows(path):
            opened, at_open = int(r["created_at"]), int(r["num_commits_open"])
            pulls.append({
                "number": int(r["github_id"]), "title": f"Change {r['github_id']}",
                "state": "closed", "user": {"login": r["requester"]},
                "created_at": at(opened), "closed_at": at(int(r["closed_at"])),
                "merged_at": at(int(r["merged_at"])) if r["merged_at"] else None,
                "base": {"repo": {"full_name": r["project_name"]}},
                "commits": [{"commit": {"author": {"date": at(opened + (-60 if j < at_open
                                                                         else 60))}}}
                            for j in range(int(r["num_commits"]))]})
        (folder / f"{path.name[:-7]}.json").write_text(json.dumps(pulls))
    return folder


def _print(runs: list[Run]) -> None:
    table = Table("import", "files", "clients", "rows", "read s", "write s", "total s",
                  "rows/s", "write rows/s", "again s", "again unchanged",
                  title="pgml-flow import: every row of each dataset, then the same again")
    for r in runs:
        table.add_row(r.name, str(r.files), str(r.clients), f"{r.rows:,}",
                      f"{r.read_seconds:.2f}", f"{r.write_seconds:.2f}", f"{r.seconds:.2f}",
                      f"{r.rows_per_second:,.0f}", f"{r.write_rows_per_second:,.0f}",
                      f"{r.again_seconds:.2f}", f"{r.again_unchanged:,}")
    console.print(table)


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    main()
