"""``pgml-flow import ...``: real data in, one documented format per command (docs/import.md).

Every command reads all its files first (a malformed one stops it, naming the file, the
line or JSON path, the field and the value, with nothing written), then writes each file
in its own transaction, upserting on the natural key: importing the same files again
changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.output import JsonOption, console, err_console, flow, new_table, print_json
from cli.progress import steps
from pgml_flow.errors import ConfigurationError

if TYPE_CHECKING:
    from pgml_flow.imports import ImportReport, Source

app = typer.Typer(help="Import real data: Jira and GitHub JSON, CSV, the public research "
                       "datasets (docs/import.md).", no_args_is_help=True)

Paths = Annotated[list[Path], typer.Argument(
    help="Files, or folders of them (read in name order).", show_default=False)]
ClientOption = Annotated[int | None, typer.Option(
    "--client", help="Import every row into this existing client (default: one client per "
                     "project, made on first import).")]
BiLoginsOption = Annotated[bool, typer.Option(
    "--bi-logins", help="Give each client the rows go to a BI login (as `pgml-flow bi grant`).")]


def _run(source: Source, client: int | None, bi_logins: bool, as_json: bool) -> None:
    with steps("importing") as step:
        report = flow().import_data(source, client_id=client, bi_logins=bi_logins,
                                    progress=lambda label, total: step(label, total=total))
    for note in report.notes:
        err_console.print(f"note: {note}", highlight=False)
    if as_json:
        print_json({**asdict(report), "rows": report.rows, "inserted": report.inserted,
                    "updated": report.updated, "unchanged": report.unchanged})
        return
    _print(report)


def _print(report: ImportReport) -> None:
    table = new_table(title=f"Imported {report.kind.replace('_', ' ')}")
    for column in ("file", "clients", "rows", "new", "changed", "unchanged", "seconds"):
        table.add_column(column, justify="left" if column in ("file", "clients") else "right")
    for f in report.files:
        table.add_row(f.file, ", ".join(map(str, f.clients)), f"{f.rows:,}", f"{f.inserted:,}",
                      f"{f.updated:,}", f"{f.unchanged:,}", f"{f.seconds:.2f}")
    console.print(table)
    for c in report.clients:
        state = "new" if c.created else "existing"
        console.print(f"client {c.client_id} {c.name} ({state})", highlight=False)
    for role in report.bi_logins:
        console.print(f"BI login: {role}", highlight=False)
    rate = report.rows / report.seconds if report.seconds else 0.0
    rows = f"{report.rows:,} row{'' if report.rows == 1 else 's'}"
    console.print(f"{rows}: {report.inserted:,} new, {report.updated:,} changed, "
                  f"{report.unchanged:,} unchanged, in {report.seconds:.1f} s "
                  f"({rate:,.0f} rows/s)", highlight=False)


@app.command("jira")
def jira(
    paths: Paths,
    story_points_field: Annotated[str, typer.Option(
        envvar="PGML_FLOW_JIRA_STORY_POINTS_FIELD",
        help="The field that holds story points.")] = "customfield_10016",
    epic_link_field: Annotated[str, typer.Option(
        envvar="PGML_FLOW_JIRA_EPIC_LINK_FIELD",
        help="The Epic Link field, for issues without a parent field.")] = "customfield_10014",
    client: ClientOption = None,
    bi_logins: BiLoginsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Jira REST search responses (/rest/api/2/search or /3/search, JSON or .json.gz).

    One client per Jira project. With expand=changelog, status changes give when work
    started and ended.
    """
    from pgml_flow.imports import JiraSource

    _run(JiraSource(tuple(paths), story_points_field, epic_link_field), client, bi_logins,
         as_json)


@app.command("github-pulls")
def github_pulls(
    paths: Paths,
    repository: Annotated[str | None, typer.Option(
        help="owner/name of the repository, for pulls without base.repo.full_name.")] = None,
    client: ClientOption = None,
    bi_logins: BiLoginsOption = False,
    as_json: JsonOption = False,
) -> None:
    """GitHub REST pulls responses (JSON or .json.gz), with embedded commits, reviews,
    review_comments and files where present.

    One client per repository. Logins are not stored: authors become pseudonyms.
    """
    from pgml_flow.imports import GithubPullsSource

    _run(GithubPullsSource(tuple(paths), repository), client, bi_logins, as_json)


@app.command("csv")
def csv(
    kind: Annotated[str, typer.Argument(
        help="What the rows are: issues or pull-requests.", show_default=False)],
    paths: Paths,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="COLUMN=FIELD: the column that holds a field (repeatable); columns named "
                      "like a field need none; FIELD attributes.NAME keeps a column as text.")
    ] = None,
    delimiter: Annotated[str, typer.Option(help="Field delimiter.")] = ",",
    list_separator: Annotated[str, typer.Option(
        help="Separator of components and labels inside a cell.")] = ";",
    date_format: Annotated[str | None, typer.Option(
        help="strptime format of dates (default: ISO 8601 or epoch seconds).")] = None,
    repository: Annotated[str | None, typer.Option(
        help="The repository of every pull request (instead of a repository column).")
    ] = None,
    client: ClientOption = None,
    bi_logins: BiLoginsOption = False,
    as_json: JsonOption = False,
) -> None:
    """CSV files (or .csv.gz) of issues or pull requests, column by column (--map).

    Empty cells are NULL. One client per project (the ABC of issue key ABC-12) or
    repository.
    """
    from pgml_flow.imports import CsvOptions, CsvSource

    kinds = {"issues": "issues", "pull-requests": "pull_requests"}
    if kind not in kinds:
        raise ConfigurationError(f"csv imports issues or pull-requests, not {kind!r}")
    pairs: dict[str, str] = {}
    for item in mapping or []:
        column, sep, target = item.partition("=")
        if not sep or not column or not target:
            raise ConfigurationError(f"--map {item!r}: expected COLUMN=FIELD")
        pairs[column] = target
    if len(delimiter) != 1:
        raise ConfigurationError(f"--delimiter must be one character, got {delimiter!r}")
    options = CsvOptions(kinds[kind], pairs, delimiter, list_separator, date_format, repository)
    _run(CsvSource(tuple(paths), options), client, bi_logins, as_json)


@app.command("dataset")
def dataset(
    name: Annotated[str, typer.Argument(
        help="deepse-storypoints, tawos-storypoints-tse2023, tawos-resolution-time-esem2022 "
             "or gousios-pullreqs-2015.", show_default=False)],
    path: Annotated[Path, typer.Option(
        "--path", help="The dataset's folder (as in ../shared/datasets/NAME); read, never "
                       "copied.", show_default=False)],
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="Only this project (repeatable; default: all but the two Talend "
                          "projects of deepse-storypoints, withheld for GDPR by TSE 2023).")
    ] = None,
    limit: Annotated[int | None, typer.Option(
        help="Only the first N rows of each project (the split stays the full file's).")
    ] = None,
    client: ClientOption = None,
    bi_logins: BiLoginsOption = False,
    as_json: JsonOption = False,
) -> None:
    """A public research dataset: one client per project, its train/valid/test split kept.

    Each project is one transaction. The pull-request data's logins are not stored.
    """
    from pgml_flow.imports import DatasetSource

    _run(DatasetSource(name, path, tuple(project or ()), limit), client, bi_logins, as_json)
