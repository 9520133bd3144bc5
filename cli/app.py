"""``pgml-flow``: the command line, a thin layer over :class:`pgml_flow.app.PgmlFlow`.

Each command parses options, makes one library call and renders the result.  Errors
are turned into one line on stderr and a meaningful exit code in :func:`main`, with
a traceback only under ``--debug``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from cli import bench_commands, model_commands, pgml_commands, scheduler_commands
from cli.output import console, err_console, flow, print_json
from pgml_flow.errors import PgmlFlowError

app = typer.Typer(
    name="pgml-flow",
    help="Machine learning inside PostgreSQL: the pgml SQL API, per-client models, retraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the database: the embedded cluster and the schema.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")

app.add_typer(pgml_commands.app, name="pgml")
app.command("train")(model_commands.train)
app.add_typer(model_commands.models_app, name="models")
app.add_typer(model_commands.bi_app, name="bi")
app.add_typer(model_commands.verify_app, name="verify")
app.add_typer(bench_commands.app, name="bench")
app.command("retrain")(scheduler_commands.retrain)
app.command("deploy")(scheduler_commands.deploy)
app.command("rollback")(scheduler_commands.rollback)
app.command("refresh")(scheduler_commands.refresh)
app.command("status")(scheduler_commands.status)
app.command("events")(scheduler_commands.events)
app.add_typer(scheduler_commands.scheduler_app, name="scheduler")
app.add_typer(scheduler_commands.cron_app, name="cron")
_state: dict[str, Any] = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", envvar="PGML_FLOW_DEBUG",
                                        help="Show tracebacks and debug logs.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# -- db ------------------------------------------------------------------------------------
@db_app.command("start")
def db_start() -> None:
    """Create the embedded cluster on first use, and start it."""
    status = flow().start_database()
    console.print(f"embedded PostgreSQL running (pid {status.pid}, port {status.port}); "
                  f"log: {status.log_file}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (fast shutdown)."""
    flow().stop_database()
    console.print("embedded PostgreSQL stopped")


@db_app.command("status")
def db_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where the database is, whether it runs, and the schema revision."""
    pf = flow()
    info = pf.database_info()
    current: str | None = None
    head: str | None = None
    running = info.status.running if info.status else True
    if running:
        current, head = pf.schema_revision()
    data = {
        "embedded": info.embedded,
        "url": info.url,
        "running": running,
        "pid": info.status.pid if info.status else None,
        "data_dir": str(info.status.data_dir) if info.status else None,
        "log_file": str(info.status.log_file) if info.status else None,
        "server_venv": info.server_venv,
        "native_scoring": info.native_scoring,
        "schema_revision": current,
        "head_revision": head,
    }
    if as_json:
        print_json(data)
    else:
        table = Table(show_header=False, box=None)
        for key, value in data.items():
            table.add_row(key, "" if value is None else str(value))
        console.print(table)
    if info.native_scoring == "missing" and not as_json:
        err_console.print("notice: the native scorer (pgml_native) is not installed; predictions "
                          "use the Python path. `./dev setup` builds and installs it.")
    elif info.native_scoring == "off" and not as_json:
        err_console.print("notice: native scoring is switched off in this database "
                          "(pgml.native_scoring = off); predictions use the Python path. "
                          "`ALTER DATABASE ... RESET pgml.native_scoring` and `pgml-flow db "
                          "upgrade` switch it back on.")
    elif info.native_scoring == "available" and not as_json:
        err_console.print("notice: pgml_native is installed on the server but not in this "
                          "database; run `pgml-flow db upgrade`.")
    if info.embedded and not running:
        raise typer.Exit(3)


@db_app.command("url")
def db_url() -> None:
    """Print the libpq URL of the database (for psql, BI tools, DATABASE_URL)."""
    typer.echo(flow().url)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply schema migrations, then re-apply functions, views and grants."""
    current = flow().upgrade(revision)
    console.print(f"schema at revision {current}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' removes everything).")],
) -> None:
    """Undo schema migrations down to REVISION."""
    current = flow().downgrade(revision)
    console.print(f"schema at revision {current or 'base'}")


# -- data ----------------------------------------------------------------------------------
@app.command("seed")
def seed(
    clients: Annotated[int, typer.Option(envvar="PGML_FLOW_SEED_CLIENTS",
                                         help="Number of synthetic clients.")] = 3,
    issues: Annotated[int, typer.Option(envvar="PGML_FLOW_SEED_ISSUES",
                                        help="Issues per client.")] = 5000,
    seed_value: Annotated[int, typer.Option("--seed", envvar="PGML_FLOW_SEED",
                                            help="Random seed (same seed, same data).")] = 42,
    as_of: Annotated[dt.datetime | None, typer.Option(
        help="Date the data ends at (default: today, UTC).")] = None,
) -> None:
    """Replace clients 1..N with generated issues and pull requests."""
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("seeding clients", total=clients)
        report = flow().seed(clients=clients, issues=issues, seed=seed_value, as_of=as_of,
                             progress=lambda n: progress.advance(task, n))
    console.print(
        f"seeded {report.clients} clients: {report.issues:,} issues, "
        f"{report.pull_requests:,} pull requests in {report.seconds:.1f} s "
        f"({report.issues / report.seconds:,.0f} issues/s)"
    )


@app.command("summary")
def summary(
    refresh: Annotated[bool, typer.Option(help="Refresh the materialized view first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Training data per client and model: records, latest data, target mean and spread."""
    pf = flow()
    if refresh:
        pf.refresh_training_summary()
    rows = pf.training_summary()
    if as_json:
        print_json(rows)
        return
    console.print(summary_table(rows))


def summary_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Training data per client and model (mv_ml_training_summary)")
    for column in ("client", "model", "records", "latest data", "target avg", "target stddev"):
        table.add_column(column, justify="right" if column not in ("client", "model") else "left")
    for row in rows:
        avg, std = row["target_avg"], row["target_stddev"]
        if row["model_type"] == "trajectory":  # seconds are unreadable: show days
            avg_s, std_s = f"{avg / 86400:.1f} d", f"{(std or 0) / 86400:.1f} d"
        elif row["model_type"] == "rework":
            avg_s, std_s = f"{avg:.1%}", f"{std or 0:.3f}"
        else:
            avg_s, std_s = f"{avg:.2f} pts", f"{std or 0:.2f}"
        table.add_row(str(row["client"]), row["model_type"], f"{row['training_records']:,}",
                      f"{row['latest_data']:%Y-%m-%d}", avg_s, std_s)
    return table


@app.command("demo")
def demo(
    clients: Annotated[int, typer.Option(envvar="PGML_FLOW_DEMO_CLIENTS")] = 3,
    issues: Annotated[int, typer.Option(envvar="PGML_FLOW_DEMO_ISSUES")] = 4000,
) -> None:
    """End to end: start, upgrade, seed, train per client, predict through the BI surface."""
    pf = flow()
    if not pf.settings.external:
        status = pf.start_database()
        console.print(f"[bold]1.[/] embedded PostgreSQL running on port {status.port}")
    current = pf.upgrade()
    console.print(f"[bold]2.[/] schema at revision {current}")
    report = pf.seed(clients=clients, issues=issues, seed=42)
    console.print(f"[bold]3.[/] seeded {report.clients} clients, {report.issues:,} issues, "
                  f"{report.pull_requests:,} pull requests in {report.seconds:.1f} s")
    console.print(summary_table(pf.training_summary()))
    model_commands.demo_models(pf, list(range(1, clients + 1)), first_step=4)


def main() -> None:
    """Console entry point: one place where errors become messages and exit codes."""
    try:
        app()
    except PgmlFlowError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc} "
                          "(run with --debug for the traceback)", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
