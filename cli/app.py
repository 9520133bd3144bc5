"""``pgml-flow``: the command line, a thin layer over :class:`pgml_flow.app.PgmlFlow`.

Each command parses options, makes one library call and renders the result.  Errors
are turned into one line on stderr and a meaningful exit code in :func:`main`, with
a traceback only under ``--debug``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import (
    bench_commands,
    citus_commands,
    evaluate_commands,
    import_commands,
    log_commands,
    metrics_commands,
    model_commands,
    monitor_commands,
    pgml_commands,
    rollout_commands,
    scheduler_commands,
)
from cli.output import JsonOption, console, err_console, flow, new_table, print_json
from cli.progress import steps
from pgml_flow.errors import PgmlFlowError

if TYPE_CHECKING:
    from rich.table import Table

    from pgml_flow.seed import SeedReport

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
app.add_typer(log_commands.app, name="log")
app.command("drift")(monitor_commands.drift)
app.command("monitor")(monitor_commands.monitor)
app.command("report")(monitor_commands.report)
app.add_typer(rollout_commands.rollout_app, name="rollout")
app.add_typer(rollout_commands.abtest_app, name="abtest")
app.add_typer(import_commands.app, name="import")
app.add_typer(metrics_commands.app, name="metrics")
app.command("evaluate")(evaluate_commands.evaluate)
_state: dict[str, Any] = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"pgml-flow {version('pgml-flow')}")
        except PackageNotFoundError:
            typer.echo("pgml-flow (version unknown: not installed as a package)")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", envvar="PGML_FLOW_DEBUG",
                                        help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_version,
        help="Print pgml-flow's version and exit.")] = False,
) -> None:
    """Output: rich tables on a terminal; plain aligned text, nothing cut, in a pipe; JSON
    with --json (or PGML_FLOW_JSON=1) on every command that prints data."""
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# -- db ------------------------------------------------------------------------------------
@db_app.command("start")
def db_start(as_json: JsonOption = False) -> None:
    """Create the embedded cluster on first use, and start it."""
    status = flow().start_database()
    if as_json:
        print_json(asdict(status))
        return
    console.print(f"embedded PostgreSQL running (pid {status.pid}, port {status.port}); "
                  f"log: {status.log_file}")


@db_app.command("stop")
def db_stop(as_json: JsonOption = False) -> None:
    """Stop the embedded cluster (fast shutdown)."""
    status = flow().stop_database()
    if as_json:
        print_json(asdict(status))
        return
    console.print("embedded PostgreSQL stopped")


@db_app.command("status")
def db_status(as_json: JsonOption = False) -> None:
    """Where the database is, whether it runs, the schema revision, and how models are served
    (native scoring; CatBoost: installed, and which of its models are native)."""
    pf = flow()
    info = pf.database_info()
    current: str | None = None
    head: str | None = None
    from pgml_flow.server_venv import catboost_status

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
        "catboost": catboost_status(info.server_venv),
        "schema_revision": current,
        "head_revision": head,
    }
    if as_json:
        print_json(data)
    else:
        table = new_table(show_header=False, box=None)
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")
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
    """Print the libpq URL of the database (for psql, BI tools, DATABASE_URL).

    Only the URL, whatever PGML_FLOW_JSON says, so that `psql "$(pgml-flow db url)"` works.
    """
    typer.echo(flow().url)


replica_app = typer.Typer(
    help="A local hot standby of the embedded cluster (read replica for tests and demos).",
    no_args_is_help=True)
db_app.add_typer(replica_app, name="replica")
db_app.add_typer(citus_commands.cluster_app, name="cluster")


@replica_app.command("start")
def replica_start(as_json: JsonOption = False) -> None:
    """Clone the running embedded cluster with pg_basebackup -R (first time) and start it.

    Models, deployments and schema arrive by streaming replication; point BI tools or
    DATABASE_READ_URL at `pgml-flow db replica url`.
    """
    _show_replica(flow().start_replica(), as_json)


@replica_app.command("stop")
def replica_stop(
    remove: Annotated[bool, typer.Option(
        "--remove", help="also delete the standby's files (the primary is untouched)")] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop the standby (fast shutdown)."""
    _show_replica(flow().stop_replica(remove=remove), as_json)


@replica_app.command("status")
def replica_status(as_json: JsonOption = False) -> None:
    """Whether the standby runs, its URL and how far it is behind the primary."""
    status = flow().replica.replica_status()
    _show_replica(status, as_json)
    if not status.running:
        raise typer.Exit(3)


@replica_app.command("url")
def replica_url() -> None:
    """Print the standby's libpq URL (only the URL, for DATABASE_READ_URL and psql)."""
    typer.echo(flow().replica.url())


def _show_replica(status: Any, as_json: bool) -> None:
    data = {k: (str(v) if k in ("data_dir", "log_file") else v)
            for k, v in asdict(status).items()}
    if as_json:
        print_json(data)
        return
    table = new_table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(
        help="Target revision: head, a revision id (or a unique prefix of one), or +N.")] = "head",
    as_json: JsonOption = False,
) -> None:
    """Apply schema migrations, then re-apply functions, views and grants."""
    current = flow().upgrade(revision)
    if as_json:
        print_json({"revision": current})
        return
    console.print(f"schema at revision {current}")


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[str, typer.Argument(
        help="Target revision below the current one: a revision id (or a unique prefix of "
             "one), -N (N revisions down), or 'base' (removes everything).")],
    as_json: JsonOption = False,
) -> None:
    """Undo schema migrations down to REVISION, in one transaction.

    The target is checked first (unknown, current or above: refused, nothing runs). Nothing
    is dropped with CASCADE: an object of yours that depends on pgml-flow's (a view on an
    analytics view or a pgml table) stops the downgrade, which names it and changes nothing.
    """
    current = flow().downgrade(revision)
    if as_json:
        print_json({"revision": current})
        return
    console.print(f"schema at revision {current or 'base'}")


# -- data ----------------------------------------------------------------------------------
# No environment variable: a confirmation set once in the environment would confirm every
# later deletion too.
ReplaceOption = Annotated[bool, typer.Option(
    "--replace", help="Confirm replacing existing clients with these ids (deleting their data "
                      "and models) where that is not done without asking.")]


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
    first_client: Annotated[int, typer.Option(
        "--first-client", envvar="PGML_FLOW_SEED_FIRST_CLIENT", min=1,
        help="Id of the first generated client.")] = 1,
    replace: ReplaceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate synthetic clients (ids FIRST..FIRST+N-1) with issues and pull requests.

    An existing client with one of these ids is replaced: its issues, pull requests,
    prediction log, retraining events and models are deleted. Without --replace that is
    refused, naming what would be deleted, unless every such client is synthetic (made by
    this command) and the database is the embedded one.
    """
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    with steps("seeding clients", total=clients) as step:
        report = flow().seed(clients=clients, issues=issues, seed=seed_value, as_of=as_of,
                             progress=lambda n: step(advance=n), first_client_id=first_client,
                             replace=replace)
    if as_json:
        print_json(asdict(report))
        return
    _print_replaced(report)
    console.print(
        f"seeded {report.clients} clients: {report.issues:,} issues, "
        f"{report.pull_requests:,} pull requests in {report.seconds:.1f} s "
        f"({report.issues / report.seconds:,.0f} issues/s)"
    )


def _print_replaced(report: SeedReport) -> None:
    for client in report.replaced:
        err_console.print(f"replaced {client.describe()}", highlight=False)


@app.command("summary")
def summary(
    refresh: Annotated[bool, typer.Option(help="Refresh the materialized view first.")] = False,
    as_json: JsonOption = False,
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
    table = new_table(title="Training data per client and model (mv_ml_training_summary)")
    for column in ("client", "model", "records", "latest data", "target avg", "target stddev"):
        table.add_column(column, justify="right" if column not in ("client", "model") else "left")
    for row in rows:
        avg, std = row["target_avg"], row["target_stddev"]
        if avg is None:  # imported rows whose target the source does not give
            avg_s, std_s = "", ""
        elif row["model_type"] == "trajectory":  # seconds are unreadable: show days
            avg_s, std_s = f"{avg / 86400:.1f} d", f"{(std or 0) / 86400:.1f} d"
        elif row["model_type"] == "rework":
            avg_s, std_s = f"{avg:.1%}", f"{std or 0:.3f}"
        else:
            avg_s, std_s = f"{avg:.2f} pts", f"{std or 0:.2f}"
        table.add_row(str(row["client"]), row["model_type"], f"{row['training_records']:,}",
                      "" if row["latest_data"] is None else f"{row['latest_data']:%Y-%m-%d}",
                      avg_s, std_s)
    return table


@app.command("demo")
def demo(
    clients: Annotated[int, typer.Option(envvar="PGML_FLOW_DEMO_CLIENTS")] = 3,
    issues: Annotated[int, typer.Option(envvar="PGML_FLOW_DEMO_ISSUES")] = 4000,
    replace: ReplaceOption = False,
    as_json: JsonOption = False,
) -> None:
    """End to end: start, upgrade, seed, train per client, predict through the BI surface.

    Seeds clients 1..N as `pgml-flow seed` does: replacing existing clients needs --replace
    unless they are synthetic and the database is the embedded one.
    """
    pf = flow()
    report = model_commands.DemoReport(as_json)
    if not pf.settings.external:
        status = pf.start_database()
        report.step(1, "database", asdict(status),
                    f"embedded PostgreSQL running on port {status.port}")
    current = pf.upgrade()
    report.step(2, "schema_revision", current, f"schema at revision {current}")
    with steps("seeding clients", total=clients) as step:
        seeded = pf.seed(clients=clients, issues=issues, seed=42,
                         progress=lambda n: step(advance=n), replace=replace)
    if not as_json:
        _print_replaced(seeded)
    report.step(3, "seed", asdict(seeded),
                f"seeded {seeded.clients} clients, {seeded.issues:,} issues, "
                f"{seeded.pull_requests:,} pull requests in {seeded.seconds:.1f} s")
    rows = pf.training_summary()
    report.show(summary_table(rows), "training_summary", rows)
    model_commands.demo_models(pf, list(range(1, clients + 1)), first_step=4, report=report)
    report.finish()


def main() -> None:
    """Console entry point: one place where errors become messages and exit codes."""
    try:
        app()
    except PgmlFlowError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if _state["debug"]:
            raise
        err_console.print("[bold red]interrupted[/]", highlight=False)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        from pgml_flow.database import translate_error

        known = translate_error(exc)  # a driver error no command translated: lost connection...
        if known is not None:
            err_console.print(f"[bold red]error:[/] {known}", highlight=False)
            sys.exit(known.exit_code)
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc} "
                          "(run with --debug for the traceback)", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
