"""The prediction log from the shell: ``log status`` and ``log prune``.

Each command is one call on :class:`pgml_flow.app.PgmlFlow`; rendering lives here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import cell, console, flow, new_table, print_json
from cli.scheduler_commands import ClientsOption, JsonOption

app = typer.Typer(help="The prediction log (ml_prediction_log): usage, limits and retention.",
                  no_args_is_help=True)


def _limit(value: int) -> str:
    return "none" if value < 0 else f"{value:,}"


@app.command("status")
def status(client: ClientsOption = None, as_json: JsonOption = False) -> None:
    """Per client: logged rows and size, what a prune would delete now, limits, usage.

    'capped 24h' counts the predictions that were not logged because the client reached its
    hourly cap (prediction_log_rows_per_hour); reads still returned them. 'busy 24h' counts
    reads that skipped their log because another transaction was logging the same model
    for the client (a BI session left open in a transaction keeps others from logging).
    """
    rows = flow().prediction_log_status(client or None)
    if as_json:
        print_json(rows)
        return
    table = new_table("client", "rows", "MB", "oldest", "expired", "over size", "per hour",
                      "days", "max rows", "this hour", "capped 24h", "busy 24h",
                      title="Prediction log")
    for r in rows:
        table.add_row(f"{r['client_id']} {r['client']}", f"{r['logged_rows']:,}",
                      f"{r['bytes'] / 1e6:.1f}", cell(r["oldest"]), f"{r['expired_rows']:,}",
                      f"{r['over_size_rows']:,}", _limit(r["rows_per_hour"]),
                      _limit(r["retention_days"]), _limit(r["max_rows"]),
                      f"{r['logged_this_hour']:,}",
                      f"{r['capped_rows_24h']:,} in {r['capped_reads_24h']:,} reads",
                      f"{r['busy_reads_24h']:,} reads")
    console.print(table)


@app.command("prune")
def prune(
    client: ClientsOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", envvar="PGML_FLOW_LOG_PRUNE_DRY_RUN",
        help="Print what would be deleted per client; delete nothing.")] = False,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", envvar="PGML_FLOW_LOG_PRUNE_BATCH", min=1,
        help="Rows deleted per committed batch (each batch holds its row locks until it "
             "commits).")] = 5000,
    as_json: JsonOption = False,
) -> None:
    """Delete prediction-log rows older than each client's retention_days and beyond its
    newest max_rows, in committed batches (what the scheduler's prune job runs)."""
    rows = flow().prune_prediction_log(client or None, batch_size=batch_size, dry_run=dry_run)
    if as_json:
        print_json(rows)
        return
    if dry_run:
        table = new_table("client", "rows", "expired", "over size", "days", "max rows",
                          title="Prediction log prune (dry run: nothing deleted)")
        for r in rows:
            table.add_row(f"{r['client_id']} {r['client']}", f"{r['logged_rows']:,}",
                          f"{r['expired_rows']:,}", f"{r['over_size_rows']:,}",
                          _limit(r["retention_days"]), _limit(r["max_rows"]))
    else:
        table = new_table("client", "deleted", title="Prediction log prune")
        for r in rows:
            table.add_row(f"{r['client_id']} {r['client']}", f"{r['deleted']:,}")
    console.print(table)
