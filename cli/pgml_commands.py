"""``pgml-flow pgml ...``: the pgml API from the shell, one command per client method."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.output import JsonOption, console, flow, new_table, print_json
from pgml_flow.errors import ConfigurationError, ModelError

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="The pgml SQL API from the shell: train, predict, deploy, inspect.",
                  no_args_is_help=True)


#: an example of each JSON option, for its error message
_JSON_EXAMPLES = {
    "--hyperparams": '{"max_depth": 3}',
    "--search-params": '{"max_depth": [2, 4]}',
    "--search-args": '{"cv": 3}',
    "--preprocess": '{"column": {"impute": "mean"}}',
}


def _json_option(text: str | None, name: str) -> dict[str, Any] | None:
    """The JSON object an option holds, checked before anything connects to the server.

    A ConfigurationError (exit code 2) rather than Typer's BadParameter: the CLI then
    prints one ``error:`` line naming the option, as for every other error.
    """
    if text is None:
        return None
    example = _JSON_EXAMPLES.get(name, "{}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{name} is not valid JSON ({exc}); pass a JSON object, e.g. '{example}'") from None
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"{name} must be a JSON object, e.g. '{example}', not {type(value).__name__} "
            f"{text.strip()[:40]!r}")
    return value


@app.command("train")
def train(
    project: Annotated[str, typer.Argument(help="Project name (created on first train).")],
    task: Annotated[str | None, typer.Option(help="regression, classification, ...")] = None,
    relation: Annotated[str | None, typer.Option(help="Table or view to train on.")] = None,
    y_column: Annotated[list[str] | None, typer.Option(
        "--y-column", help="Label column; repeat for joint regression.")] = None,
    algorithm: Annotated[str, typer.Option(help="A pgml.algorithm value.")] = "linear",
    hyperparams: Annotated[str | None, typer.Option(help="JSON object.")] = None,
    search: Annotated[str | None, typer.Option(help="grid or random.")] = None,
    search_params: Annotated[str | None, typer.Option(help="JSON object of arrays.")] = None,
    search_args: Annotated[str | None, typer.Option(help="JSON, e.g. {\"cv\": 3}.")] = None,
    test_size: Annotated[float, typer.Option(help="Fraction (<= 1) or row count.")] = 0.25,
    test_sampling: Annotated[str, typer.Option(help="random, last, stratified.")] = "stratified",
    deploy: Annotated[bool, typer.Option(help="Deploy automatically if not worse.")] = True,
    preprocess: Annotated[str | None, typer.Option(help="JSON per column.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a model with pgml.train (pgml.train_joint for several --y-column)."""
    y: str | list[str] | None = None
    if y_column:
        y = y_column[0] if len(y_column) == 1 else y_column
    options = {"hyperparams": _json_option(hyperparams, "--hyperparams"),
               "search_params": _json_option(search_params, "--search-params"),
               "search_args": _json_option(search_args, "--search-args"),
               "preprocess": _json_option(preprocess, "--preprocess")}
    with flow().pgml() as client:
        outcome = client.train(
            project, task=task, relation=relation, y_column=y, algorithm=algorithm,
            search=search, test_size=test_size, test_sampling=test_sampling,
            automatic_deploy=deploy, **options,
        )
        model = client.models(project)[-1]
    if as_json:
        print_json({**asdict(outcome), "model_id": model.id, "metrics": model.metrics})
        return
    state = "deployed" if outcome.deployed else "not deployed"
    console.print(f"trained model {model.id} ({outcome.algorithm}, {outcome.task}) for "
                  f"{outcome.project}: {state}")
    console.print(_metrics_table(model.metrics))


def _metrics_table(metrics: dict[str, Any]) -> Table:
    table = new_table("metric", "value")
    for name, value in sorted(metrics.items()):
        if name == "search_results":
            continue
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


# negative feature values (-2, -0.5, -1e3) are values, not options: no `--` needed
@app.command("predict", context_settings={"ignore_unknown_options": True})
def predict(
    target: Annotated[str, typer.Argument(help="Project name, or a model id.")],
    features: Annotated[list[float], typer.Argument(
        help="Feature values in order; negative ones as they are (-2.5).")],
    proba: Annotated[bool, typer.Option(help="Class probabilities (classification).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Predict one row with pgml.predict (or pgml.predict_proba, printed as JSON)."""
    key: str | int = int(target) if target.isdigit() else target
    with flow().pgml() as client:
        if proba:
            print_json(client.predict_proba(key, features))
        elif as_json:
            print_json({"prediction": client.predict(key, features)})
        else:
            typer.echo(client.predict(key, features))


@app.command("deploy")
def deploy(
    target: Annotated[str, typer.Argument(help="Project name, or a model id.")],
    strategy: Annotated[str, typer.Option(
        help="best_score, most_recent or rollback (ignored for a model id).")] = "best_score",
    algorithm: Annotated[str | None, typer.Option(help="Only consider this algorithm.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy a model with pgml.deploy."""
    with flow().pgml() as client:
        if target.isdigit():
            result = client.deploy_model(int(target))
        else:
            result = client.deploy(target, strategy, algorithm)
        deployed = client.deployed_model(result.project)
    if as_json:
        print_json({**asdict(result), "model_id": deployed.id if deployed else None})
        return
    model = f"model {deployed.id} " if deployed else ""
    console.print(f"{result.project}: deployed {model}({result.algorithm}) by {result.strategy}")


@app.command("models")
def models(
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List trained models with their key metric and deployment."""
    with flow().pgml() as client:
        rows = client.models(project)
        if project is not None and not rows and project not in {
                p.name for p in client.projects()}:
            raise ModelError(f"project {project!r} does not exist; `pgml-flow pgml projects` "
                             "lists them")
    if as_json:
        print_json([asdict(m) for m in rows])
        return
    table = new_table("id", "project", "task", "algorithm", "key metric", "trained at",
                      "deployed")
    for m in rows:
        key = m.key_metric()
        table.add_row(str(m.id), m.project, m.task, m.algorithm,
                      "" if key is None else f"{key:.4f}", f"{m.created_at:%Y-%m-%d %H:%M}",
                      "yes" if m.deployed else "")
    console.print(table)


@app.command("projects")
def projects(
    as_json: JsonOption = False,
) -> None:
    """List projects, their model count and deployed model."""
    with flow().pgml() as client:
        rows = client.projects()
    if as_json:
        print_json([asdict(p) for p in rows])
        return
    table = new_table("id", "name", "task", "models", "deployed model", "created at")
    for p in rows:
        table.add_row(str(p.id), p.name, p.task, str(p.models),
                      str(p.deployed_model_id or ""), f"{p.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("delete")
def delete(
    target: Annotated[str, typer.Argument(help="Project name, or a model id.")],
    force: Annotated[bool, typer.Option(help="Also delete a deployed model.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a model, or a project with all its models, files and snapshots."""
    with flow().pgml() as client:
        if target.isdigit():
            client.delete_model(int(target), force=force)
        else:
            client.delete_project(target)
    kind = "model" if target.isdigit() else "project"
    if as_json:
        print_json({"deleted": kind, "target": target})
        return
    console.print(f"deleted {kind} {target}")
