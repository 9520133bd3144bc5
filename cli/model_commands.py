"""Client-scoped models from the shell: ``train``, ``models``, ``bi`` and ``verify``.

Each command is one call on :class:`pgml_flow.app.PgmlFlow`; rendering lives here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.output import JsonOption, cell, console, err_console, flow, new_table, print_json
from cli.progress import steps
from pgml_flow import sqlfiles
from pgml_flow.errors import ConfigurationError, ModelError

if TYPE_CHECKING:
    import psycopg
    from rich.table import Table

    from pgml_flow.app import PgmlFlow
    from pgml_flow.isolation import AuditReport
    from pgml_flow.training import TrainingResult

SpecsOption = Annotated[list[str] | None, typer.Option(
    "--specs", envvar="PGML_FLOW_MODEL_SPECS",
    help="Extra model spec file (TOML) or directory; repeatable. See docs/models.md.")]
ClientOption = Annotated[list[int] | None, typer.Option(
    "--client", help="Client id; repeatable.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every active client.")]

models_app = typer.Typer(help="Model specs and their training runs.", no_args_is_help=True)
bi_app = typer.Typer(help="BI logins: one database role per client, isolated by RLS.",
                     no_args_is_help=True)
verify_app = typer.Typer(help="Audits that fail loudly.", no_args_is_help=True)


def _clients(client: list[int] | None, all_clients: bool) -> list[int] | None:
    if bool(client) == all_clients:
        raise ConfigurationError("pass --client ID (repeatable) or --all, not both or neither")
    return None if all_clients else list(client or [])


def _spec_files(specs: list[str] | None) -> list[str]:
    # the env var may hold several paths; load_specs reads it too, so pass only the CLI ones
    return list(specs or [])


def train(
    models: Annotated[list[str], typer.Argument(
        help="Model spec names (trajectory, complexity, rework, yours), or 'all'.")],
    client: ClientOption = None,
    all_clients: AllOption = False,
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train models per client: one pgml project <model>__client_<id> each, runs recorded."""
    pf = flow()
    names = [] if models == ["all"] else models
    ids = _clients(client, all_clients)
    if ids is None:
        ids = pf.client_ids()
    total = len(ids) * (len(names) or len(pf.model_specs(_spec_files(specs))))
    with steps("training", total=total) as step:
        results = pf.train(names, ids, spec_files=_spec_files(specs),
                           progress=lambda r: step(f"{r.project}: {r.status}"))
    report_runs(results, as_json, "training")


def report_runs(results: list[TrainingResult], as_json: bool, kind: str) -> None:
    """Print training or retraining runs; exit with ModelError's code if any failed."""
    if as_json:
        print_json([asdict(r) for r in results])
    else:
        console.print(training_table(results))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise ModelError(f"{len(failed)} of {len(results)} {kind} runs failed; first: "
                         f"{failed[0].project}: {failed[0].detail}")


def _metric_label(metric: str) -> str:
    """A key metric's name in tables (mae for mean_absolute_error)."""
    from pgml_models.specs import metric_label  # pgml_models imports psycopg

    return metric_label(metric)


def training_table(results: list[TrainingResult]) -> Table:
    table = new_table(title="Training runs (ml_retraining_events)")
    for column in ("client", "model", "status", "rows", "model id", "key metric", "seconds",
                   "detail"):
        table.add_column(column, justify="right" if column in (
            "rows", "model id", "key metric", "seconds") else "left")
    for r in results:
        metric = ("" if r.key_metric_value is None
                  else f"{_metric_label(r.key_metric)} {r.key_metric_value:.3f}")
        style = {"failed": "red", "skipped": "yellow"}.get(r.status, "")
        table.add_row(f"{r.client_id} {r.client}", r.model_name, f"[{style}]{r.status}[/]"
                      if style else r.status, f"{r.training_rows:,}",
                      "" if r.model_id is None else str(r.model_id), metric,
                      f"{r.seconds:.2f}", r.detail or "")
    return table


@models_app.command("list")
def models_list(
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """The model specs: built-in ones and those of --specs files."""
    found = flow().model_specs(_spec_files(specs))
    if as_json:
        print_json([s.to_json() for s in found.values()])
        return
    table = new_table("name", "task", "training view", "target", "features", "algorithm",
                  "min rows", "schedule", "threshold")
    for s in found.values():
        table.add_row(s.name, s.task, s.training_view, s.target, str(len(s.features)),
                      s.algorithm + (f" ({s.search} search)" if s.search else "")
                      + (f" ({len(s.candidates)} candidates)" if s.candidates else ""),
                      str(s.min_training_rows), s.retraining.schedule,
                      f"{_metric_label(s.key_metric)} {s.retraining.performance_threshold:g}")
    console.print(table)


@models_app.command("runs")
def models_runs(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent training runs (ml_retraining_events), newest first."""
    rows = flow().retraining_events(model, limit)
    if as_json:
        print_json(rows)
        return
    table = new_table("started", "client", "model", "status", "rows", "model id", "seconds",
                      "chosen on validation", "detail")
    for r in rows:
        table.add_row(f"{r['started_at']:%Y-%m-%d %H:%M:%S}", str(r["client"]), r["model_name"],
                      r["status"], f"{r['training_rows'] or 0:,}",
                      str(r["challenger_model_id"] or ""),
                      "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.2f}",
                      _chosen(r.get("chosen")), r["detail"] or r["error"] or "")
    console.print(table)


def _chosen(chosen: dict[str, Any] | None) -> str:
    """``xgboost max_depth=3: mae 1.234 (120 rows), 1 of 4``; empty without candidates."""
    if not chosen:
        return ""
    value = chosen.get("validation_value")
    metric = _metric_label(str(chosen.get("key_metric")))
    shown = "n/a" if value is None else f"{value:.3f}"
    return (f"{chosen.get('label')}: {metric} {shown} ({chosen.get('validation_rows')} rows), "
            f"1 of {chosen.get('candidates')}")


@bi_app.command("grant")
def bi_grant(
    client: ClientOption = None,
    all_clients: AllOption = False,
    role: Annotated[str | None, typer.Option(
        help="Role name (default <database>_client_<id>); with one --client only.")] = None,
    password: Annotated[str | None, typer.Option(
        envvar="PGML_FLOW_BI_PASSWORD", help="Set this password (for TCP logins).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create (or reuse) a login per client for its BI tool; idempotent."""
    ids = _clients(client, all_clients)
    if role is not None and (ids is None or len(ids) != 1):
        raise ConfigurationError("--role names one login: use it with exactly one --client")
    logins = flow().grant_bi_access(ids, role=role, password=password)
    if as_json:
        print_json([asdict(login) for login in logins])
        return
    for login in logins:
        state = "created" if login.created else "exists"
        console.print(f"client {login.client_id}: login {login.role} ({state})")


@bi_app.command("revoke")
def bi_revoke(
    client: ClientOption = None,
    all_clients: AllOption = False,
    as_json: JsonOption = False,
) -> None:
    """Unmap a client's BI logins and drop the roles."""
    ids = _clients(client, all_clients)
    pf = flow()
    dropped: list[str] = []
    for cid in ids if ids is not None else [None]:
        dropped += pf.revoke_bi_access(cid)
    if as_json:
        print_json({"dropped": dropped})
        return
    console.print(f"dropped {len(dropped)} login(s): {', '.join(dropped) or '-'}")


@bi_app.command("logins")
def bi_logins(
    as_json: JsonOption = False,
) -> None:
    """BI logins and the client each one reads."""
    rows = flow().bi_logins()
    if as_json:
        print_json(rows)
        return
    table = new_table("client", "login", "created", "role exists")
    for r in rows:
        table.add_row(f"{r['client_id']} {r['client']}", r["role_name"],
                      f"{r['created_at']:%Y-%m-%d %H:%M}", "yes" if r["role_exists"] else "NO")
    console.print(table)


@bi_app.command("url")
def bi_url(
    client: Annotated[int, typer.Option("--client", help="Client id.")],
    password_env: Annotated[str | None, typer.Option(
        "--password-env", metavar="VAR",
        help="Put the password held by environment variable VAR in the URL (without it, "
             "the URL has no password).")] = None,
    host: Annotated[str | None, typer.Option(
        help="The host the BI tool connects to (default: DATABASE_URL's, or the address "
             "the server listens on).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the TCP connection string of the client's BI login, for its BI tool.

    postgresql://LOGIN@HOST:PORT/DATABASE?sslmode=...: host and port of DATABASE_URL, or
    for the embedded server 127.0.0.1 and its port; one line per login of the client.
    """
    import os

    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise ConfigurationError(f"--password-env {password_env}: the environment "
                                     f"variable {password_env} is not set")
    urls = flow().bi_urls(client, password=password, host=host)
    if as_json:
        print_json([asdict(u) for u in urls])
    else:
        for u in urls:
            typer.echo(u.url)
    for u in urls:
        if u.password_set is False:
            err_console.print(
                f"note: login {u.login} has no password, and TCP logins need one: set it "
                f"with `pgml-flow bi grant --client {client} --password ...`",
                highlight=False)


@verify_app.command("isolation")
def verify_isolation(
    verbose: Annotated[bool, typer.Option(help="One row per check, not per login.")] = False,
    as_json: JsonOption = False,
) -> None:
    """As each BI login: the BI surface shows only its client; pgml internals are unreadable."""
    with steps("isolation audit") as step:
        report = flow().audit_isolation(lambda role, logins: step(role, total=logins))
    if as_json:
        print_json([asdict(c) for c in report.checks])
    else:
        console.print(audit_table(report, verbose))
    report.raise_on_failure()
    if not as_json:
        console.print(f"[green]isolation ok[/]: {len(report.checks)} checks passed")


def audit_table(report: AuditReport, verbose: bool) -> Table:
    if verbose or report.failures:
        table = new_table("login", "client", "object", "kind", "rows", "expected", "verdict",
                          "detail", title="Isolation audit")
        checks = report.checks if verbose else report.failures
        for c in checks:
            verdict = c.verdict if c.ok else f"[bold red]{c.verdict}[/]"
            table.add_row(c.role, _text(c.client_id), c.object, c.kind, _text(c.rows),
                          _text(c.expected), verdict, c.detail)
        return table
    from pgml_flow.isolation import summarize

    table = new_table("login", "client", "checks", "kind", "rows seen", "failed",
                      title="Isolation audit")
    for row in summarize(report):
        table.add_row(row["role"], _text(row["client_id"]), str(row["checks"]), row["kind"],
                      f"{row['rows_seen']:,}", str(row["failed"]))
    return table


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class DemoReport:
    """The demo's numbered steps: printed as they happen, or gathered into one JSON
    document printed at the end (``demo --json``)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.data: dict[str, Any] = {}

    def step(self, number: int, key: str, value: Any, text: str) -> None:
        self.data[key] = value
        if not self.as_json:
            console.print(f"[bold]{number}.[/] {text}")

    def show(self, renderable: Any, key: str | None = None, value: Any = None) -> None:
        if key is not None:
            self.data[key] = value
        if not self.as_json:
            console.print(renderable)

    def finish(self) -> None:
        if self.as_json:
            print_json(self.data)


def demo_models(pf: PgmlFlow, client_ids: list[int], *, first_step: int,
                report: DemoReport) -> None:
    """The demo's second half: BI logins, training per client, predictions, the audit."""
    step = first_step
    logins = pf.grant_bi_access(client_ids)
    roles = [login.role for login in logins]
    report.step(step, "bi_logins", roles, f"BI logins: {', '.join(roles)}")
    step += 1
    specs = list(pf.model_specs())
    with steps("training", total=len(client_ids) * len(specs)) as progress:
        results = pf.train(specs, client_ids, reason="demo",
                           progress=lambda r: progress(f"{r.project}: {r.status}"))
    report.step(step, "training", [asdict(r) for r in results],
                f"trained {len(specs)} models for each of {len(client_ids)} clients in "
                f"{sum(r.seconds for r in results):.1f} s")
    report.show(metrics_table(results))
    step += 1
    samples: dict[int, dict[str, list[tuple[str, str, str]]]] = {}
    report.step(step, "samples", samples, "sample predictions, read as each client's BI login:")
    for cid in client_ids:
        with pf.bi_session(cid) as conn:
            samples[cid] = bi_samples(conn)
        report.show(sample_table(cid, samples[cid]))
    step += 1
    with steps("isolation audit") as progress:
        audit = pf.audit_isolation(lambda role, logins: progress(role, total=logins))
    audit.raise_on_failure()
    report.step(step, "isolation_checks", len(audit.checks),
                f"isolation audit: {len(audit.checks)} checks passed "
                f"(`pgml-flow verify isolation`)")
    step += 1
    demo_retrain(pf, client_ids[0], step, report)


def demo_retrain(pf: PgmlFlow, client_id: int, step: int, report: DemoReport) -> None:
    """A forced retrain of one client's rework model (challenger vs champion), and status."""
    from pgml_flow.retraining import RetrainOptions

    [result] = pf.retrain(["rework"], [client_id],
                          options=RetrainOptions(force=True, reason="demo"))
    report.step(step, "retrain", asdict(result),
                f"retrain of {result.project} (`pgml-flow retrain --force`): "
                f"{result.status}, {result.detail}")
    rows = pf.model_status(None, [client_id])
    report.show(status_table(rows, f"`pgml-flow status --client {client_id}`"), "status", rows)


def status_table(rows: list[dict[str, Any]], title: str = "Models per client") -> Table:
    """`pgml-flow status`: per client and model, what is deployed, how served, what is next."""
    table = new_table("client", "model", "deployed", "metric", "serving", "trained at",
                      "rows since", "next run", "last event", title=title)
    for r in rows:
        metric = ("" if r["key_metric_value"] is None
                  else f"{_metric_label(r['key_metric'])} {r['key_metric_value']:.3f}")
        last = f"{r['last_event']} {cell(r['last_event_at'])}" if r["last_event"] else ""
        due = " (due)" if r["retrain_due"] else ""
        table.add_row(f"{r['client_id']} {r['client']}", r["model"],
                      cell(r["deployed_model_id"]), metric, r["serving"] or "",
                      cell(r["trained_at"]), cell(r["rows_since"]),
                      _next_run(r) + due, last)
    return table


def _next_run(row: dict[str, Any]) -> str:
    """The next run and what runs it, or "not scheduled" when no scheduler service or pg_cron
    job runs the model's retrain job (its cron expression alone runs nothing)."""
    if row.get("next_run") is None:
        return "not scheduled"
    return f"{cell(row['next_run'])} ({', '.join(row.get('scheduled_by') or [])})"


def metrics_table(results: list[TrainingResult]) -> Table:
    by_client: dict[tuple[int, str], dict[str, TrainingResult]] = {}
    for r in results:
        by_client.setdefault((r.client_id, r.client), {})[r.model_name] = r
    models = list(dict.fromkeys(r.model_name for r in results))
    table = new_table("client", *[f"{m}" for m in models],
                      title="Per-client models: key metric on the test split (rows)")
    for (cid, name), runs in by_client.items():
        cells = []
        for m in models:
            run = runs.get(m)
            if run is None or run.key_metric_value is None:
                cells.append(run.status if run else "")
            else:
                cells.append(f"{_metric_label(run.key_metric)} {run.key_metric_value:.3f} "
                             f"({run.training_rows:,})")
        table.add_row(f"{cid} {name}", *cells)
    return table


def sample_table(client_id: int, samples: dict[str, list[tuple[str, str, str]]]) -> Table:
    table = new_table("view", "item", "prediction", "model", title=f"client {client_id}",
                      title_justify="left")
    for view, rows in samples.items():
        for row in rows:
            table.add_row(view, *row)
    return table


def bi_samples(conn: psycopg.Connection) -> dict[str, list[tuple[str, str, str]]]:
    """Three rows of each prediction view, as the connection's BI login sees them."""
    from psycopg.rows import dict_row

    out: dict[str, list[tuple[str, str, str]]] = {}
    for name in ("issue_story_points", "epic_forecasts", "pull_request_rework_risk"):
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sqlfiles.query(f"demo_{name}", "models")).fetchall()
        out[f"analytics.{name}"] = [_sample(name, r) for r in rows]
    return out


def _sample(view: str, r: dict[str, Any]) -> tuple[str, str, str]:
    model = f"{r['model_id']} ({r['model_trained_at']:%Y-%m-%d %H:%M})" if r["model_id"] else "-"
    if view == "issue_story_points":
        return (f"{r['issue_key']} {r['title']}", _num(r["predicted_story_points"], " pts"), model)
    if view == "epic_forecasts":
        done = r["expected_completion"]
        when = f" -> {done:%Y-%m-%d}" if done else ""
        return (f"{r['issue_key']} {r['title']}", _num(r["predicted_lead_time_days"], " d") + when,
                model)
    return (f"{r['repository']}#{r['number']}",
            f"{_num(r['rework_probability'], '', pct=True)} {r['rework_risk'] or ''}", model)


def _num(value: Any, unit: str, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if pct else f"{value:.1f}{unit}"
