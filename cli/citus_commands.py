"""``pgml-flow db cluster``: the local Citus cluster (coordinator and workers).

Each command is one call on :class:`pgml_flow.app.PgmlFlow`; rendering lives here.
docs/scale-out.md explains what is distributed and why.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from cli.output import JsonOption, cell, console, flow, new_table, print_json

cluster_app = typer.Typer(
    help="A local Citus cluster (a coordinator and workers, tenants distributed by client_id); "
         "with DATABASE_URL set, the Citus cluster it names.",
    no_args_is_help=True)


@cluster_app.command("start")
def cluster_start(
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1,
        help="Workers to run (default: as many as last time, 2 the first time); more than "
             "before adds the new ones.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Build Citus if missing, create (first time) and start the coordinator and workers,
    and join the workers with citus_add_node; idempotent. Then `pgml-flow db upgrade` with
    DATABASE_URL=$(pgml-flow db cluster url) distributes the schema."""
    _show(flow().start_citus(workers), as_json)


@cluster_app.command("stop")
def cluster_stop(as_json: JsonOption = False) -> None:
    """Stop every local node (workers first); the data stays for the next start."""
    _show(flow().citus.stop(), as_json)


@cluster_app.command("status")
def cluster_status(as_json: JsonOption = False) -> None:
    """The nodes: running, port, and whether each worker is active in pg_dist_node."""
    status = flow().citus.status()
    _show(status, as_json)
    if status.local and not all(n.running for n in status.nodes):
        raise typer.Exit(3)


@cluster_app.command("url")
def cluster_url() -> None:
    """Print the coordinator's libpq URL (only the URL, for DATABASE_URL and psql)."""
    typer.echo(flow().citus.url())


def _show(status: Any, as_json: bool) -> None:
    data = asdict(status)
    for node in data["nodes"]:
        node["data_dir"] = str(node["data_dir"]) if node["data_dir"] else None
    data["active_workers"] = status.active_workers
    if as_json:
        print_json(data)
        return
    console.print(f"coordinator URL: {data['url']}  (citus {data['citus_version'] or '-'}, "
                  f"{data['active_workers']} active workers)")
    table = new_table()
    for column in ("node", "role", "running", "port", "active"):
        table.add_column(column, no_wrap=True)
    for node in data["nodes"]:
        table.add_row(node["name"], node["role"], cell(node["running"]), cell(node["port"]),
                      cell(node["active"]))
    console.print(table)
