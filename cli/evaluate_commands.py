"""``pgml-flow evaluate``: a built-in model judged on a public dataset, beside published numbers.

One call on :meth:`pgml_flow.app.PgmlFlow.evaluate`; the table, the files it writes
(Markdown, CSV, PNG: :mod:`pgml_flow.evaluation.report`) and the targets are rendered here.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from cli.output import JsonOption, console, err_console, flow, new_table, print_json

TaskArgument = Annotated[str, typer.Argument(
    help="The built-in model: complexity, trajectory or rework.", show_default=False)]


def evaluate(
    task: TaskArgument,
    dataset: Annotated[str, typer.Option(
        "--dataset", help="The public dataset, e.g. deepse-storypoints or "
                          "tawos-storypoints-tse2023.", show_default=False)],
    path: Annotated[Path, typer.Option(
        "--path", help="The dataset's folder (as in ../shared/datasets/NAME); read, never "
                       "copied.", show_default=False)],
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="Only this project (repeatable; default: all of the dataset).")
    ] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for TASK-DATASET.md, .csv and .png.")] = Path("evaluation"),
    specs: Annotated[list[str] | None, typer.Option(
        "--specs", help="A spec file whose TASK spec replaces the built-in one (to evaluate "
                        "candidates, say); repeatable.")] = None,
    in_place: Annotated[bool, typer.Option(
        "--in-place", help="Import and train in the database of DATABASE_URL itself (a "
                           "scratch one of yours) instead of a scratch database.")] = False,
    scratch: Annotated[str, typer.Option(
        "--scratch", help="The scratch database's name (made anew on the server of "
                          "DATABASE_URL).")] = "pgmlflow_evaluate",
    keep: Annotated[bool, typer.Option(
        "--keep", help="Keep the scratch database afterwards.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train per client on a public dataset's training split, score its test split, and
    compare with the published numbers: a table, and Markdown, CSV and PNG in --out.

    By default in a scratch database (--scratch, on the server of DATABASE_URL, dropped
    afterwards): research data never mixes with a tenant's. Nothing is chosen on
    the test split: the model's own held-out rows and validation slice are training rows.
    """
    from pgml_flow.evaluation import report

    result = flow().evaluate(task, dataset, path, projects=tuple(project or ()),
                             spec_files=list(specs or []), in_place=in_place, keep=keep,
                             scratch=scratch,
                             progress=lambda text: err_console.print(text))
    files = report.write(result, out)
    if as_json:
        data = asdict(result)
        data["spec"] = result.spec.to_json()
        data["files"] = [str(f) for f in files]
        print_json(data)
        return
    head = report.columns(result)
    title = (f"Test {result.metric} per project: {task} on {dataset} ({result.spec.name}, "
             f"trained in {result.training_seconds:.0f} s)")
    table = new_table(*head, title=title)
    for cells in report.rows(result):
        table.add_row(*cells)
    console.print(table)
    for target in result.targets:
        console.print(f"{'met' if target.met else 'NOT met'}: {target.goal}: {target.result}")
    console.print(f"wrote {', '.join(str(f) for f in files)}")
