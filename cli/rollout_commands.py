"""The kill switch, the rollout and online A/B tests from the shell: ``pgml-flow rollout``
and ``pgml-flow abtest``.

Each command is one call on :class:`pgml_flow.app.PgmlFlow`; rendering lives here.
docs/operations.md explains the states, the precedence of the switches and the test's rule.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.model_commands import SpecsOption, _spec_files
from cli.output import cell, console, flow, new_table, print_json
from cli.scheduler_commands import ClientsOption, JsonOption

rollout_app = typer.Typer(
    help="Kill switch and rollout: what the BI surface serves per model and client.",
    no_args_is_help=True)
abtest_app = typer.Typer(
    help="Online A/B tests: a challenger in shadow or on a split of the items, decided by a "
         "paired significance test once outcomes arrive.",
    no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="Model spec name.")]
ClientOption = Annotated[int, typer.Option("--client", envvar="PGML_FLOW_CLIENT",
                                           help="Client id.")]


@rollout_app.command("set")
def rollout_set(
    state: Annotated[str, typer.Argument(
        help="enabled, shadow (scored and logged, NULL to BI), disabled (not scored, NULL "
             "to BI), or clear (remove this switch).")],
    model: Annotated[str, typer.Option(
        "--model", help="Model spec name; * (the default) is every model.")] = "*",
    client: Annotated[int | None, typer.Option(
        "--client", help="Client id (default: every client).")] = None,
    percent: Annotated[int | None, typer.Option(
        "--percent", min=0, max=100,
        help="Roll the model out to this share of clients (a model, no --client): a client "
             "is in when its bucket of (client, model) is below it.")] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why; shown to BI in serving_reason.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Flip a switch; an open BI connection's next query applies it.

    Without --model and --client this is the global switch (every model of every client).
    """
    result = flow().set_rollout(state, model=model, client_id=client, percent=percent,
                                reason=reason)
    scope = f"{'every model' if model == '*' else model} of " + (
        f"client {client}" if client is not None else "every client")
    if as_json:
        print_json({"state": result, "model": model, "client_id": client, "percent": percent})
        return
    console.print(f"{scope}: {result or 'switch cleared'}"
                  + (f", rolled out to {percent}% of clients" if percent is not None else ""))


@rollout_app.command("status")
def rollout_status(
    client: ClientsOption = None,
    model: Annotated[str | None, typer.Option("--model", help="Model spec name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per client and model: what the BI surface serves now and why; the switches set."""
    result = flow().rollout_status(client or None, model)
    if as_json:
        print_json(result)
        return
    table = new_table("client", "model", "state", "bucket", "rollout", "reason",
                      title="What BI is served")
    for r in result["states"]:
        table.add_row(f"{r['client_id']} {r['client']}", r["model"], r["state"],
                      str(r["bucket"]), f"{r['rollout_percent']}%", cell(r["reason"]))
    console.print(table)
    switches = new_table("client", "model", "state", "rollout", "reason", "set at", "by",
                         title="Switches")
    for s in result["switches"]:
        switches.add_row("every" if s["client_id"] is None else str(s["client_id"]),
                         s["model"], s["state"],
                         "" if s["rollout_percent"] is None else f"{s['rollout_percent']}%",
                         cell(s["reason"]), cell(s["updated_at"]), s["updated_by"])
    console.print(switches if result["switches"] else "no switch is set: every model enabled")


def _print_tests(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no A/B test")
        return
    table = new_table("client", "test", "model", "champion", "challenger", "mode", "status",
                      "decision", "pairs", "detail", title="A/B tests")
    for r in rows:
        mode = f"split {r['split_percent']}%" if r["mode"] == "split" else r["mode"]
        table.add_row(str(r["client_id"]), str(r["id"]), r["model"],
                      str(r["champion_model_id"]), str(r["challenger_model_id"]), mode,
                      r["status"], cell(r.get("decision")), cell(r["pairs"]),
                      cell(r.get("detail")))
    console.print(table)


@abtest_app.command("start")
def abtest_start(
    model: ModelArg,
    client: ClientOption,
    challenger: Annotated[int, typer.Option(
        "--challenger", help="The challenger: a model id of the client's project, not the "
                             "deployed one.")],
    mode: Annotated[str, typer.Option(
        "--mode", help="shadow (BI sees the champion) or split (a share of the items is "
                       "served the challenger).")] = "shadow",
    split: Annotated[int, typer.Option(
        "--split", min=0, max=100, help="split: % of items served the challenger.")] = 50,
    min_pairs: Annotated[int, typer.Option(
        "--min-pairs", min=5, help="Outcomes needed before any decision.")] = 30,
    max_pairs: Annotated[int, typer.Option(
        "--max-pairs", min=5,
        help="Keep the champion when no significant difference shows by then.")] = 1000,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="Significance level of each one-sided test.")] = 0.05,
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attach a challenger to a client's deployed model; both score every BI read."""
    row = flow().abtest_start(model, client, challenger, mode=mode, split_percent=split,
                              min_pairs=min_pairs, max_pairs=max_pairs, alpha=alpha,
                              spec_files=_spec_files(specs))
    _print_tests([row], as_json)


@abtest_app.command("status")
def abtest_status(
    client: ClientsOption = None,
    model: Annotated[str | None, typer.Option("--model", help="Model spec name.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only show the verdicts; promote and end nothing.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Tests shown.")] = 50,
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the paired test of each running test and act: promote the challenger, keep
    the champion (the test ends), or continue; finished tests are listed too."""
    _print_tests(flow().abtest_status(client or None, model, apply=not dry_run, limit=limit,
                                      spec_files=_spec_files(specs)), as_json)


@abtest_app.command("stop")
def abtest_stop(model: ModelArg, client: ClientOption, as_json: JsonOption = False) -> None:
    """End the client's running test of a model; the champion stays deployed."""
    _print_tests([flow().abtest_stop(model, client)], as_json)
