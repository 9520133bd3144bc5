"""What the CLI prints and how fast it starts: output a person and a pipe can read, --json
on every data command, --version, progress, lazy imports (functional checks, no timings;
``bench/cli_startup.py`` prints the figures)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from rich.console import Console

from cli.app import app
from cli.model_commands import status_table
from cli.output import fit, new_table, plain_table
from cli.progress import steps
from pgml_flow import migrate, schema_version
from pgml_flow.app import PgmlFlow
from pgml_flow.errors import SchemaOutdated
from tests.conftest import flow_for

ROOT = Path(__file__).resolve().parent.parent
RUN = "import sys; sys.argv[0] = 'pgml-flow'; from cli.app import main; main()"
#: packages the light commands must not import (each costs tens of milliseconds or more)
HEAVY = {"alembic", "sqlalchemy", "numpy", "scipy", "sklearn", "xgboost", "lightgbm",
         "apscheduler", "prometheus_client", "psycopg_pool"}
#: commands that print no data of their own (only the URL, for `psql "$(pgml-flow db url)"`),
#: or whose one output format is fixed by a protocol: Prometheus text (metrics show), the
#: readiness probe's JSON (metrics ready), an HTTP server (metrics serve)
NO_JSON = {"db url", "db replica url", "db cluster url", "metrics serve", "metrics show",
           "metrics ready"}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command, its stdout a pipe."""
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300, check=False)


def imported(*args: str, env: dict[str, str]) -> set[str]:
    """Top-level packages a command imports (read from ``python -X importtime``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", RUN, *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", done.stderr, re.MULTILINE)
    return {name.split(".")[0] for name in names}


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    children = getattr(command, "commands", None)
    if not children:
        return [(path, command)]
    return [leaf for name, child in sorted(children.items())
            for leaf in _leaves(child, (*path, name))]


# -- --json, --version ----------------------------------------------------------------------------
def test_every_command_that_prints_data_accepts_json() -> None:
    leaves = _leaves(typer.main.get_command(app))
    assert len(leaves) > 30
    missing = []
    for path, command in leaves:
        options = {opt: param for param in command.params for opt in param.opts}
        name = " ".join(path)
        if name in NO_JSON:
            assert "--json" not in options, name
        elif "--json" not in options or options["--json"].envvar != "PGML_FLOW_JSON":
            missing.append(name)
    assert not missing, f"commands without --json (PGML_FLOW_JSON): {missing}"


def test_version_prints_the_package_version(cli_env: dict[str, str]) -> None:
    done = cli("--version", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"pgml-flow {version('pgml-flow')}\n"


def test_pgml_flow_json_is_honoured(flow: PgmlFlow, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": flow.url, "PGML_FLOW_JSON": "1"}
    specs = json.loads(cli("models", "list", env=env).stdout)
    assert {s["name"] for s in specs} >= {"trajectory", "complexity", "rework"}
    assert json.loads(cli("db", "upgrade", env=env).stdout) == {"revision": schema_version.head()}
    # db url stays a bare URL
    assert cli("db", "url", env=env).stdout == f"{flow.url}\n"


# -- output for a pipe and for a terminal --------------------------------------------------------
def test_piped_tables_are_plain_and_never_cut(tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": tflow.url, "COLUMNS": "80"}
    for args in (("status",), ("models", "list"), ("models", "runs"), ("db", "status"),
                 ("events",), ("summary",)):
        done = cli(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert "…" not in done.stdout, (args, done.stdout)
        assert not set("│┃━─") & set(done.stdout), (args, done.stdout)  # no box
        if args in (("status",), ("models", "list"), ("models", "runs")):
            assert max(len(line) for line in done.stdout.splitlines()) > 80, args
    status = cli("status", env=env).stdout.splitlines()
    assert status[0] == "Models per client"
    assert status[1].split() == ["client", "model", "deployed", "metric", "serving", "trained",
                                 "at", "rows", "since", "next", "run", "last", "event"]
    assert len(status) == 2 + 2 * 3  # title, header, one line per client and model
    assert re.search(r"^1 Acme +trajectory +\d+ +mae \d+\.\d{3} ", status[2])
    dbname = psycopg.conninfo.conninfo_to_dict(tflow.url)["dbname"]
    url = cli("db", "status", env=env).stdout
    assert re.search(rf"^url +\S+/{dbname}$", url, re.MULTILINE), url


def test_terminal_tables_wrap_or_fold_but_never_cut(tflow: PgmlFlow) -> None:
    rows = tflow.model_status()
    values = {str(v) for r in rows for v in (r["model"], r["client"], r["last_event"]) if v}
    for width in (60, 80, 100, 120, 200):
        console = Console(width=width, force_terminal=True, color_system=None,
                          file=io.StringIO())
        console.print(fit(status_table(rows), console))
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert "…" not in text, (width, text)
        assert max(len(line) for line in text.splitlines()) <= width, (width, text)
        for value in values:  # identifiers stay whole: wrapped between words at most
            assert value in text, (width, value, text)


def test_plain_table_aligns_and_keeps_markup_out() -> None:
    table = new_table("name", "rows", title="Things")
    table.columns[1].justify = "right"
    table.add_row("[red]failed[/]", "1,000")
    table.add_row("a much longer name\nsecond line", "7")
    assert plain_table(table).splitlines() == [
        "Things",
        f"{'name':<30}  {'rows':>5}",
        f"{'failed':<30}  1,000",
        "a much longer name second line      7",
    ]


# -- progress ------------------------------------------------------------------------------------
def test_progress_is_one_line_per_step_when_not_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    with steps("training", total=2) as step:
        step("rework__client_1: promoted")
        step("rework__client_2: skipped")
    with steps("bench predict", log=True) as step:
        step("creating 1,000 feature rows", advance=0)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert re.fullmatch(r"training 1/2: rework__client_1: promoted \(\d+\.\d s\)", lines[0])
    assert re.fullmatch(r"training 2/2: rework__client_2: skipped \(\d+\.\d s\)", lines[1])
    assert re.fullmatch(r"bench predict: creating 1,000 feature rows \(\d+\.\d s\)", lines[2])


def test_train_and_audit_report_progress_in_a_pipe(tflow: PgmlFlow,
                                                   cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": tflow.url}
    done = cli("train", "rework", "--all", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 2
    assert re.search(r"^training 1/2: rework__client_1: \w+ \(", done.stderr, re.MULTILINE)
    assert re.search(r"^training 2/2: rework__client_2: \w+ \(", done.stderr, re.MULTILINE)
    tflow.grant_bi_access()
    try:
        done = cli("verify", "isolation", env=env)
    finally:
        tflow.revoke_bi_access()
    assert done.returncode == 0, done.stderr
    assert re.search(r"^isolation audit 2/2: \S+_client_2 \(", done.stderr, re.MULTILINE)


def test_scheduler_logs_each_job_at_info_without_debug(flow: PgmlFlow,
                                                       cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": flow.url}
    job = "refresh:public.mv_ml_training_summary"
    done = cli("scheduler", "run", "--once", "--job", job, "--now",
               "2026-06-01T10:05:00+00:00", env=env)
    assert done.returncode == 0, done.stderr
    assert f"INFO scheduler.runner: {job} for 2026-06-01 10:00: started" in done.stderr
    assert re.search(rf"INFO scheduler\.runner: {job} for 2026-06-01 10:00: succeeded in "
                     r"\d+\.\d s: refreshed", done.stderr), done.stderr


# -- start-up: import only what a command uses -------------------------------------------------
def test_importing_the_cli_imports_no_heavy_package() -> None:
    probe = ("import sys, cli.app; print(' '.join(sorted({m.split('.')[0] "
             "for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    loaded = set(done.stdout.split())
    assert not loaded & (HEAVY | {"psycopg", "rich"}), loaded & (HEAVY | {"psycopg", "rich"})


def test_help_db_url_and_status_import_only_what_they_use(
        tflow: PgmlFlow, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": tflow.url}
    assert not imported("--help", env=env) & (HEAVY | {"psycopg"})
    assert not imported("db", "url", env=env) & (HEAVY | {"psycopg", "rich"})
    assert not imported("status", env=env) & (HEAVY - {"apscheduler"})


def test_schema_check_without_alembic_agrees_with_alembic(db_url: str) -> None:
    assert schema_version.head() == migrate.head_revision()
    with psycopg.connect(db_url) as conn:
        assert schema_version.current(conn) == migrate.current_revision(db_url)


def test_outdated_schema_is_still_refused(empty_db_url: str) -> None:
    with pytest.raises(SchemaOutdated, match=r"has no pgml-flow schema.*pgml-flow db upgrade"):
        flow_for(empty_db_url).require_current_schema()
