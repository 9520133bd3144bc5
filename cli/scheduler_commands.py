"""Retraining and scheduling from the shell: ``retrain``, ``deploy``, ``rollback``,
``refresh``, ``status``, ``events``, ``scheduler`` and ``cron``.

Each command is one call on :class:`pgml_flow.app.PgmlFlow`; rendering lives here.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.model_commands import (
    SpecsOption,
    _metric_label,
    _spec_files,
    report_runs,
    status_table,
)
from cli.output import JsonOption, cell, console, err_console, flow, new_table, print_json
from cli.progress import steps
from pgml_flow.errors import ConfigurationError, Interrupted, ModelError
from scheduler.jobs import TIMEZONE_ENV, latest_slot, next_slot, timezone

if TYPE_CHECKING:
    from pgml_flow.retraining import Plan
    from pgml_flow.training import TrainingResult

scheduler_app = typer.Typer(help="The retraining and refresh scheduler (APScheduler).",
                            no_args_is_help=True)
cron_app = typer.Typer(help="The same jobs in pg_cron, for running without a Python process.",
                       no_args_is_help=True)

ModelOption = Annotated[list[str] | None, typer.Option(
    "--model", envvar="PGML_FLOW_MODELS", help="Model spec name; repeatable (default: all).")]
ClientsOption = Annotated[list[int] | None, typer.Option(
    "--client", envvar="PGML_FLOW_CLIENTS", help="Client id; repeatable.")]
AllOption = Annotated[bool, typer.Option(
    "--all", envvar="PGML_FLOW_ALL_CLIENTS", help="Every active client (the default).")]
NowOption = Annotated[dt.datetime | None, typer.Option(
    "--now", envvar="PGML_FLOW_NOW",
    help="Act as if it were this time (UTC unless it has an offset); for tests and replays.")]
TimezoneOption = Annotated[str, typer.Option(
    "--timezone", envvar=TIMEZONE_ENV, help="Time zone the cron schedules are read in.")]
MarginOption = Annotated[float, typer.Option(
    "--margin", envvar="PGML_FLOW_PROMOTION_MARGIN",
    help="Promote a challenger only if its key metric beats the champion's by more than this "
         "(a finite number; negative lets a worse challenger win: -1 adopts it).")]
AttemptsOption = Annotated[int, typer.Option(
    "--attempts", envvar="PGML_FLOW_RETRAIN_ATTEMPTS", min=1,
    help="Attempts per client when the database connection is lost.")]
BackoffOption = Annotated[float, typer.Option(
    "--backoff", envvar="PGML_FLOW_RETRAIN_BACKOFF",
    help="First retry delay in seconds, doubled after each lost connection.")]
KeepOption = Annotated[int, typer.Option(
    "--keep-challengers", envvar="PGML_FLOW_KEEP_CHALLENGERS", min=0,
    help="Unpromoted challengers kept per client and model; older never-deployed models "
         "are deleted after each retrain.")]
WebhookOption = Annotated[str | None, typer.Option(
    "--webhook", envvar="PGML_FLOW_WEBHOOK_URL",
    help="POST every retraining event to this URL as JSON.")]
ParallelismOption = Annotated[int, typer.Option(
    "--parallelism", envvar="PGML_FLOW_RETRAIN_PARALLELISM", min=1, max=64,
    help="Clients retrained at once, each in its own database connection (1: one after "
         "another); each takes a core of the server from the BI reads while it trains.")]


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


def _ids(client: list[int] | None, all_clients: bool) -> list[int] | None:
    if client and all_clients:
        raise ConfigurationError("pass --client ID (repeatable) or --all, not both")
    return list(client) if client else None


def retrain(
    model: ModelOption = None,
    client: ClientsOption = None,
    all_clients: AllOption = False,
    check: Annotated[bool, typer.Option(
        "--check", envvar="PGML_FLOW_RETRAIN_CHECK",
        help="Only print whether each model would be retrained, and why.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", envvar="PGML_FLOW_RETRAIN_DRY_RUN",
        help="Print the plan of each due run (training, held-out rows, promotion rule, "
             "pruning); write nothing.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", envvar="PGML_FLOW_RETRAIN_FORCE",
        help="Retrain even when the policy says no (new rows, metric, freshness).")] = False,
    margin: MarginOption = 0.0,
    attempts: AttemptsOption = 3,
    backoff: BackoffOption = 1.0,
    webhook: WebhookOption = None,
    keep_challengers: KeepOption = 3,
    parallelism: ParallelismOption = 1,
    now: NowOption = None,
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain client models whose policy says so: challenger vs champion on held-out rows."""
    from pgml_flow.retraining import RetrainOptions

    pf = flow()
    ids = _ids(client, all_clients)
    when = _now(now)
    options = RetrainOptions(margin=margin, force=force, attempts=attempts,
                             backoff_seconds=backoff, webhook_url=webhook, reason="manual",
                             keep_challengers=keep_challengers, parallelism=parallelism)
    if dry_run:
        _print_plans(pf.retrain_plans(model, ids, now=when, options=options,
                                      spec_files=_spec_files(specs)), as_json)
        return
    if check:
        found = pf.retrain_decisions(model, ids, now=when, force=force,
                                     spec_files=_spec_files(specs))
        if as_json:
            print_json([d.to_json() for d in found])
            return
        table = new_table("client", "model", "deployed", "metric", "rows", "rows since",
                          "retrain", "why", title="Retraining decisions")
        for d in found:
            f = d.facts
            table.add_row(f"{f.client_id} {f.client}", f.model_name, cell(f.deployed_model_id),
                          "" if f.key_metric_value is None
                          else f"{_metric_label(f.key_metric)} {f.key_metric_value:.3f}",
                          f"{f.rows:,}", cell(f.rows_since), "[bold]yes[/]" if d.retrain
                          else "no", d.reason)
        console.print(table)
        return
    total = (len(ids) if ids else len(pf.client_ids())) * (
        len(model) if model else len(pf.model_specs(_spec_files(specs))))
    with steps("retraining", total=total) as step:
        results = pf.retrain(model, ids, now=when, options=options,
                             spec_files=_spec_files(specs),
                             progress=lambda r: step(f"{r.project}: {r.status}"))
    report_runs(results, as_json, "retraining")


def _print_plans(plans: list[Plan], as_json: bool) -> None:
    if as_json:
        print_json([p.to_json() for p in plans])
        return
    table = new_table("client", "model", "why", "challenger", "train / held out", "promotion",
                      "prunes", title="Retraining plan (dry run: nothing written)")
    for p in plans:
        table.add_row(f"{p.client_id} {p.client}", p.model, p.reason, p.train,
                      f"{p.training_rows:,} / {p.holdout_rows:,}", p.promotion,
                      ", ".join(map(str, p.prune)) or "-")
    console.print(table if plans else "nothing is due")


def deploy(
    model: Annotated[str, typer.Argument(help="Model spec name.")],
    client: Annotated[int, typer.Option("--client", envvar="PGML_FLOW_CLIENT",
                                        help="Client id.")],
    model_id: Annotated[int, typer.Option("--model-id", envvar="PGML_FLOW_MODEL_ID",
                                          help="The pgml model id to deploy.")],
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy one model of a client's project (recorded as a 'deployed' event)."""
    _print_result(flow().deploy(model, client, model_id, spec_files=_spec_files(specs)),
                  as_json)


def rollback(
    model: Annotated[str, typer.Argument(help="Model spec name.")],
    client: Annotated[int, typer.Option("--client", envvar="PGML_FLOW_CLIENT",
                                        help="Client id.")],
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Redeploy the model deployed before the current one (a 'rolled_back' event)."""
    _print_result(flow().deploy(model, client, rollback=True, spec_files=_spec_files(specs)),
                  as_json)


def _print_result(result: TrainingResult, as_json: bool) -> None:
    if as_json:
        print_json(asdict(result))
    else:
        console.print(f"{result.project}: {result.detail}")


def refresh(
    views: Annotated[list[str] | None, typer.Argument(
        help="Materialized views (default: the training summary and PGML_FLOW_REFRESH_VIEWS).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """REFRESH MATERIALIZED VIEW CONCURRENTLY: readers are never blocked."""
    done = flow().refresh(views)
    if as_json:
        print_json(done)
        return
    for view, how in done.items():
        console.print(f"refreshed {view} ({how})")


def status(
    model: ModelOption = None,
    client: ClientsOption = None,
    now: NowOption = None,
    tz_name: TimezoneOption = "UTC",
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per client and model: deployed model, metric, trained at, rows since, next run, events."""
    rows = flow().model_status(model, client or None, now=_now(now), tz=timezone(tz_name),
                               spec_files=_spec_files(specs))
    if as_json:
        print_json(rows)
        return
    console.print(status_table(rows))
    if any("pgml_native not installed" in (r["serving"] or "") for r in rows):
        err_console.print("notice: the native scorer (pgml_native) is not installed in this "
                          "database; predictions use the Python path. `./dev setup` builds "
                          "it; `pgml-flow db upgrade` installs it where the server has it.")


def events(
    model: Annotated[str | None, typer.Option("--model", envvar="PGML_FLOW_EVENTS_MODEL",
                                              help="Only this model.")] = None,
    client: Annotated[int | None, typer.Option("--client", envvar="PGML_FLOW_EVENTS_CLIENT",
                                               help="Only this client.")] = None,
    status_: Annotated[str | None, typer.Option(
        "--status", envvar="PGML_FLOW_EVENTS_STATUS",
        help="Only this status: promoted, kept_champion, skipped, failed, deployed, "
             "rolled_back.")] = None,
    since: Annotated[dt.datetime | None, typer.Option(
        "--since", envvar="PGML_FLOW_EVENTS_SINCE", help="Only events from this time on.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", envvar="PGML_FLOW_EVENTS_LIMIT",
                                       help="Newest N events.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Retraining history (ml_retraining_events), newest first."""
    rows = flow().events(model=model, client_id=client, status=status_,
                         since=_now(since) if since else None, limit=limit)
    if as_json:
        print_json(rows)
        return
    table = new_table("id", "started", "client", "model", "status", "champion", "challenger",
                      "seconds", "reason", "detail", title="Retraining events")
    for r in rows:
        table.add_row(str(r["id"]), cell(r["started_at"]), f"{r['client_id']} {r['client']}",
                      r["model_name"], r["status"], cell(r["champion_model_id"]),
                      cell(r["challenger_model_id"]), cell(r["duration_seconds"], ".2f"),
                      r["reason"], r["detail"] or r["error"] or "")
    console.print(table)


# -- scheduler -----------------------------------------------------------------------------
@scheduler_app.command("run")
def scheduler_run(
    once: Annotated[bool, typer.Option(
        "--once", envvar="PGML_FLOW_SCHEDULER_ONCE",
        help="Run the due jobs and exit (for tests and system cron).")] = False,
    job: Annotated[list[str] | None, typer.Option(
        "--job", envvar="PGML_FLOW_JOBS",
        help="Only this job (e.g. retrain:rework); repeatable. See `scheduler jobs`.")] = None,
    now: NowOption = None,
    tz_name: TimezoneOption = "UTC",
    replica: Annotated[str | None, typer.Option(
        "--replica-id", envvar="PGML_FLOW_REPLICA_ID",
        help="Name recorded in ml_job_runs.claimed_by (default host:pid).")] = None,
    sweep: Annotated[int, typer.Option(
        "--sweep-seconds", envvar="PGML_FLOW_SCHEDULER_SWEEP", min=5,
        help="Service: how often to pick up missed, pg_cron-requested or orphaned jobs.")] = 300,
    margin: MarginOption = 0.0,
    attempts: AttemptsOption = 3,
    backoff: BackoffOption = 1.0,
    webhook: WebhookOption = None,
    keep_challengers: KeepOption = 3,
    parallelism: ParallelismOption = 1,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", envvar="PGML_FLOW_SCHEDULER_METRICS_PORT", min=0, max=65535,
        help="Service: serve /metrics, /health and /health/ready on this port (the same as "
             "`metrics serve`; 0 picks a free one). Default: none.")] = None,
    metrics_host: Annotated[str, typer.Option(
        "--metrics-host", envvar="PGML_FLOW_METRICS_HOST",
        help="Address the metrics listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    as_json: JsonOption = False,
) -> None:
    """Run scheduled retrain checks and refreshes; exactly once per slot across replicas.

    The service logs its start, its jobs and next runs, and every run's outcome at INFO
    (without --debug).
    """
    from pgml_flow.retraining import RetrainOptions

    for name in ("scheduler", "pgml_flow.exporter"):
        jobs_log = logging.getLogger(name)
        if jobs_log.getEffectiveLevel() > logging.INFO:
            jobs_log.setLevel(logging.INFO)
    pf = flow()
    tz = timezone(tz_name)
    options = RetrainOptions(margin=margin, attempts=attempts, backoff_seconds=backoff,
                             webhook_url=webhook, keep_challengers=keep_challengers,
                             parallelism=parallelism)
    if not once:
        from scheduler.service import Service

        if now is not None:
            raise ConfigurationError("--now only applies with --once")
        pf.require_current_schema()
        Service(pf, _jobs(pf, job), tz, options, sweep_seconds=sweep,
                metrics_host=metrics_host, metrics_port=metrics_port).start()
        return
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    outcomes = pf.run_scheduled(now=_now(now), tz=tz, options=options, claimed_by=replica,
                                should_stop=lambda: stop["flag"], jobs=_jobs(pf, job))
    if as_json:
        print_json([asdict(o) for o in outcomes])
    else:
        table = new_table("job", "slot", "status", "attempt", "detail", title="Scheduled jobs")
        for o in outcomes:
            table.add_row(o.job, cell(o.slot), o.status, cell(o.attempts or None), o.detail)
        console.print(table)
    if any(o.status == "interrupted" for o in outcomes) or stop["flag"]:
        raise Interrupted()
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise ModelError(f"{len(failed)} scheduled job(s) failed; first: {failed[0].job}: "
                         f"{failed[0].detail}")


def _jobs(pf: Any, names: list[str] | None) -> list[Any]:
    found = pf.scheduled_jobs()
    if not names:
        return list(found)
    unknown = set(names) - {j.name for j in found}
    if unknown:
        raise ConfigurationError(f"unknown job(s) {', '.join(sorted(unknown))}; known: "
                                 f"{', '.join(j.name for j in found)}")
    return [j for j in found if j.name in names]


@scheduler_app.command("jobs")
def scheduler_jobs(
    now: NowOption = None,
    tz_name: TimezoneOption = "UTC",
    specs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """The scheduled jobs, their cron schedules, last due slot and next run."""
    when, tz = _now(now), timezone(tz_name)
    rows = [{"job": j.name, "schedule": j.schedule, "last_slot": latest_slot(j, when, tz),
             "next_run": next_slot(j, when, tz)}
            for j in flow().scheduled_jobs(_spec_files(specs))]
    if as_json:
        print_json(rows)
        return
    table = new_table("job", "schedule", "last slot", "next run", title=f"Jobs ({tz_name})")
    for r in rows:
        table.add_row(str(r["job"]), str(r["schedule"]), cell(r["last_slot"]), cell(r["next_run"]))
    console.print(table)


@scheduler_app.command("runs")
def scheduler_runs(
    job: Annotated[str | None, typer.Option("--job", envvar="PGML_FLOW_JOB",
                                            help="Only this job.")] = None,
    limit: Annotated[int, typer.Option("--limit", envvar="PGML_FLOW_RUNS_LIMIT",
                                       help="Newest N slots.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Job runs (ml_job_runs): one row per job and slot, newest first."""
    rows = flow().job_runs(job, limit)
    if as_json:
        print_json(rows)
        return
    table = new_table("job", "slot", "status", "by", "attempts", "started", "finished",
                      "detail", title="Job runs")
    for r in rows:
        table.add_row(r["job"], cell(r["slot"]), r["status"], r["claimed_by"] or r["requested_by"],
                      str(r["attempts"]), cell(r["started_at"]), cell(r["finished_at"]),
                      r["detail"] or r["error"] or "")
    console.print(table)


# -- pg_cron -------------------------------------------------------------------------------
@cron_app.command("install")
def cron_install(
    specs: SpecsOption = None,
    host: Annotated[str | None, typer.Option(
        "--host", envvar="PGML_FLOW_CRON_HOST",
        help="Host (or socket directory) pg_cron connects to for these jobs (default: "
             "cron.host, or pgml-flow's own socket when it uses one).")] = None,
    margin: MarginOption = 0.0,
    webhook: WebhookOption = None,
    keep_challengers: KeepOption = 3,
    as_json: JsonOption = False,
) -> None:
    """Register the refreshes and retrains with pg_cron (replacing earlier ones).

    The retrains then run entirely inside the server (pgml_flow.run_job), with this margin
    and webhook.
    """
    from pgml_flow.retraining import RetrainOptions

    options = RetrainOptions(margin=margin, webhook_url=webhook,
                             keep_challengers=keep_challengers)
    _cron_table(flow().cron_install(_spec_files(specs), host, options), as_json)


@cron_app.command("remove")
def cron_remove(as_json: JsonOption = False) -> None:
    """Unschedule this database's pg_cron jobs."""
    removed = flow().cron_remove()
    if as_json:
        print_json({"removed": removed})
        return
    console.print(f"removed {removed} pg_cron job(s)")


@cron_app.command("list")
def cron_list(as_json: JsonOption = False) -> None:
    """This database's pg_cron jobs."""
    _cron_table(flow().cron_jobs(), as_json)


@cron_app.command("history")
def cron_history(
    limit: Annotated[int, typer.Option("--limit", envvar="PGML_FLOW_CRON_LIMIT",
                                       help="Newest N runs.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """pg_cron's runs of this database's jobs (cron.job_run_details), newest first."""
    rows = flow().cron_history(limit)
    if as_json:
        print_json(rows)
        return
    table = new_table("job", "run", "status", "started", "ended", "message",
                      title="pg_cron runs")
    for r in rows:
        table.add_row(r["jobname"], str(r["runid"]), r["status"] or "", cell(r["start_time"]),
                      cell(r["end_time"]), r["return_message"] or "")
    console.print(table)


def _cron_table(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    table = new_table("id", "name", "schedule", "database", "command", title="pg_cron jobs")
    for r in rows:
        table.add_row(str(r["jobid"]), r["jobname"], r["schedule"], r["database"], r["command"])
    console.print(table)
