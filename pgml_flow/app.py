"""The library facade: every CLI command is one call on :class:`PgmlFlow`.

Keeping the CLI, the scheduler and the tests on this one object means the rules
(which database, is the schema current, how errors read) are written once.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pgml_flow import sqlfiles
from pgml_flow.cluster import Cluster, Status
from pgml_flow.errors import ConfigurationError
from pgml_flow.settings import Settings

# Imported where used, so that a command imports only what it needs: psycopg costs a tenth
# of a second, Alembic with SQLAlchemy a third, numpy (the seed) a tenth.
if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

    from pgml_flow import monitoring
    from pgml_flow.citus_cluster import CitusCluster, CitusStatus
    from pgml_flow.evaluation import Evaluation
    from pgml_flow.imports import ImportReport
    from pgml_flow.imports import Source as ImportSource
    from pgml_flow.isolation import AuditReport, BiLogin, BiUrl
    from pgml_flow.replica import Replica, ReplicaStatus
    from pgml_flow.retraining import Plan, RetrainOptions
    from pgml_flow.seed import SeedReport
    from pgml_flow.training import TrainingResult
    from pgml_models.client import PgmlClient
    from pgml_models.retraining import Decision
    from pgml_models.specs import ModelSpec
    from scheduler.jobs import Job
    from scheduler.runner import JobOutcome


@dataclass(frozen=True)
class DatabaseInfo:
    """Where pgml-flow's database is, for ``db status``."""

    embedded: bool
    url: str
    status: Status | None
    server_venv: str | None
    #: the C scorer: "installed" (pgml.predict is the C function), "available" (on the server,
    #: not in this database), "off" (pgml.native_scoring = off) or "missing"
    native_scoring: str | None = None


class PgmlFlow:
    """pgml-flow bound to one database (embedded or external)."""

    def __init__(self, settings: Settings | None = None, *,
                 specs: Mapping[str, ModelSpec] | None = None) -> None:
        self.settings = settings or Settings.from_env()
        #: model specs to use instead of the built-ins and PGML_FLOW_MODEL_SPECS (the
        #: in-database job runner passes the ones registered in the database)
        self._specs_given = dict(specs) if specs is not None else None

    # -- database -------------------------------------------------------------------------
    @cached_property
    def cluster(self) -> Cluster:
        if self.settings.external:
            raise ConfigurationError(
                "DATABASE_URL (or PG* variables) points at an external server, which pgml-flow "
                "does not start or stop; unset it to use the embedded cluster"
            )
        return Cluster(self.settings)

    @property
    def url(self) -> str:
        """DATABASE_URL (or PG* variables) if set, else the embedded cluster's socket URL."""
        if self.settings.database_url is not None:
            return self.settings.database_url
        return self.cluster.url()

    def start_database(self) -> Status:
        """Create (first time) and start the embedded cluster, with its server-side venv."""
        from pgml_flow import server_venv

        cluster = self.cluster
        venv = server_venv.resolve(
            self.settings.home, self.settings.server_venv, cluster.server_user()
        )
        return cluster.start(server_venv=venv)

    def stop_database(self) -> Status:
        return self.cluster.stop()

    @cached_property
    def replica(self) -> Replica:
        """The embedded cluster's local hot standby (``pgml-flow db replica``)."""
        from pgml_flow.replica import Replica

        return Replica(self.cluster)

    def start_replica(self) -> ReplicaStatus:
        """Make (first time) and start a hot standby of the running embedded cluster."""
        from pgml_flow import server_venv

        venv = server_venv.resolve(self.settings.home, self.settings.server_venv,
                                   self.cluster.server_user())
        self.replica.start(server_venv=venv)
        return self.replica.replica_status()

    def stop_replica(self, *, remove: bool = False) -> ReplicaStatus:
        if remove:
            self.replica.remove()
        else:
            self.replica.stop()
        return self.replica.replica_status()

    @cached_property
    def citus(self) -> CitusCluster:
        """The local Citus cluster, or the one DATABASE_URL names (``pgml-flow db cluster``)."""
        from pgml_flow.citus_cluster import CitusCluster

        return CitusCluster(self.settings)

    def start_citus(self, workers: int | None = None) -> CitusStatus:
        """Start (first time: build Citus if missing, create) a coordinator and ``workers``
        workers, with the server venv on every node; more workers than before adds them."""
        return self.citus.start(workers)

    @property
    def read_url(self) -> str:
        """Where reads go: DATABASE_READ_URL (a standby) when set, else :attr:`url`."""
        return self.settings.read_url or self.url

    def read_connect(self) -> psycopg.Connection:
        """A connection for reads only (status, monitoring), to the standby when there is one."""
        from pgml_flow import database

        return database.connect(self.read_url)

    def database_info(self) -> DatabaseInfo:
        status = None if self.settings.external else self.cluster.status()
        facts: tuple[str | None, str | None] = (None, None)
        if status is None or status.running:
            with self.connect() as conn:
                facts = _server_facts(conn)
        if status is None:
            from pgml_flow import database

            return DatabaseInfo(False, database.describe(self.url), None, *facts)
        url = self.cluster.url() if status.initialized else "(not initialized)"
        return DatabaseInfo(True, url, status, *facts)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        from pgml_flow import database

        return database.connect(self.url, autocommit=autocommit)

    @contextmanager
    def pgml(self) -> Iterator[PgmlClient]:
        """A pgml API client on a fresh connection (schema checked first)."""
        from pgml_models.client import PgmlClient

        self.require_current_schema()
        with self.connect() as conn:
            yield PgmlClient(conn)

    # -- schema ---------------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> str | None:
        from pgml_flow import migrate, training

        result = migrate.upgrade(self.url, revision)
        if revision == "head":  # registered models whose spec changed: served as it says now
            with self.connect() as conn:
                training.refresh_registry(conn, self.model_specs().values())
        return result

    def downgrade(self, revision: str) -> str | None:
        from pgml_flow import migrate

        return migrate.downgrade(self.url, revision)

    def schema_revision(self) -> tuple[str | None, str]:
        """The database's revision and the head (read without importing Alembic)."""
        from pgml_flow import schema_version

        with self.connect() as conn:
            return schema_version.current(conn), schema_version.head()

    def require_current_schema(self) -> None:
        from pgml_flow import schema_version

        with self.connect() as conn:
            schema_version.check(conn)

    # -- data -----------------------------------------------------------------------------
    def seed(
        self,
        *,
        clients: int,
        issues: int,
        seed: int,
        as_of: dt.datetime | None = None,
        progress: Callable[[int], None] | None = None,
        first_client_id: int = 1,
        replace: bool = False,
    ) -> SeedReport:
        """Generate synthetic clients; existing ones in the range are replaced only with
        ``replace``, except synthetic ones on the embedded database (see pgml_flow.seed)."""
        from pgml_flow.seed import seed as run_seed

        self.require_current_schema()
        with self.connect() as conn:
            report = run_seed(
                conn, clients=clients, issues=issues, seed=seed, as_of=as_of, progress=progress,
                first_client_id=first_client_id, replace=replace,
                replace_synthetic=not self.settings.external,
            )
            conn.execute("SELECT pgml_flow.refresh_training_summary()")
            conn.commit()
        return report

    def import_data(self, source: ImportSource, *, client_id: int | None = None,
                    bi_logins: bool = False,
                    progress: Callable[[str, int], None] | None = None) -> ImportReport:
        """Import real data (Jira, GitHub, CSV, a public dataset): docs/import.md.

        Every file is read and checked first, then each is written in its own transaction,
        upserted on its natural key; one client per project, or ``client_id`` for all.
        """
        from pgml_flow import imports

        self.require_current_schema()
        with self.connect() as conn:
            return imports.run(conn, source, client_id=client_id, bi_logins=bi_logins,
                               progress=progress)

    def refresh_training_summary(self) -> None:
        """REFRESH ... CONCURRENTLY: readers of the old contents are never blocked."""
        self.require_current_schema()
        with self.connect(autocommit=True) as conn:
            conn.execute("SELECT pgml_flow.refresh_training_summary()")

    def training_summary(self) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        self.require_current_schema()
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sqlfiles.query("training_summary")).fetchall()


    # -- client-scoped models ---------------------------------------------------------------
    def model_specs(self, spec_files: Iterable[str] = ()) -> dict[str, ModelSpec]:
        """Built-in specs, then PGML_FLOW_MODEL_SPECS, then ``spec_files`` (later wins)."""
        from pgml_models.specs import load_specs

        if self._specs_given is not None:
            return {**self._specs_given, **load_specs(spec_files, use_env=False, builtin=False)}
        return load_specs(spec_files)

    def client_ids(self) -> list[int]:
        from pgml_flow import training

        self.require_current_schema()
        with self.connect() as conn:
            return training.active_client_ids(conn)

    def train(
        self,
        models: Sequence[str],
        client_ids: Sequence[int] | None = None,
        *,
        spec_files: Iterable[str] = (),
        reason: str = "manual",
        progress: Callable[[TrainingResult], None] | None = None,
    ) -> list[TrainingResult]:
        """Train each model for each client (every active client with None), in turn."""
        from pgml_flow import citus_tenants, database, training
        from pgml_models.specs import get_spec

        specs = self.model_specs(spec_files)
        chosen = [get_spec(specs, name) for name in (models or list(specs))]
        self.require_current_schema()
        with self.connect() as conn:
            ids = list(client_ids) if client_ids is not None else training.active_client_ids(conn)
            groups = citus_tenants.route(conn, self.url, ids)
            if len(groups) == 1 and groups[0].node is None:
                return training.train(conn, chosen, ids, reason=reason, progress=progress)
            # Citus: each client trains on the worker holding its rows (citus_tenants);
            # unknown clients are refused and the specs registered here first
            training.train(conn, [], ids)
            for spec in chosen:
                training.register(conn, spec)
            conn.commit()
        results = []
        for group in groups:
            with database.connect(group.url) as node:
                results.append(training.train(node, chosen, group.client_ids, reason=reason,
                                              progress=progress))
        return citus_tenants.in_order(results, ids)

    def retraining_events(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        from pgml_flow import training

        _check_limit(limit)
        self.require_current_schema()
        with self.connect() as conn:
            self._check_model(conn, model)
            return training.retraining_events(conn, model, limit)

    def evaluate(self, task: str, dataset: str, path: Path, *, projects: Sequence[str] = (),
                 spec_files: Iterable[str] = (), in_place: bool = False, keep: bool = False,
                 scratch: str = "pgmlflow_evaluate",
                 progress: Callable[[str], None] | None = None) -> Evaluation:
        """Judge a built-in model on a public dataset against its published numbers
        (pgml_flow.evaluation): in a scratch database on this server (dropped after, unless
        ``keep``), or, ``in_place``, in this database (a scratch one of yours)."""
        from pgml_flow import evaluation
        from pgml_models.specs import get_spec

        benchmark = evaluation.find(task, dataset)  # an unsupported pair fails first
        own = [str(benchmark.spec_file)] if benchmark.spec_file else []
        spec = get_spec(self.model_specs([*own, *spec_files]), benchmark.spec or task)
        if in_place:
            self.require_current_schema()
            return evaluation.evaluate(self.url, task, dataset, path, spec,
                                       projects=projects, progress=progress)
        with evaluation.scratch_database(self.url, scratch, keep=keep) as url:
            return evaluation.evaluate(url, task, dataset, path, spec, projects=projects,
                                       progress=progress)

    # -- retraining and scheduling -----------------------------------------------------------
    def _specs(self, models: Sequence[str] | None, spec_files: Iterable[str]) -> list[ModelSpec]:
        from pgml_models.specs import get_spec

        specs = self.model_specs(spec_files)
        return [get_spec(specs, name) for name in (models or list(specs))]

    def _ids(self, conn: psycopg.Connection, client_ids: Sequence[int] | None) -> list[int]:
        from pgml_flow import training

        ids = list(client_ids) if client_ids is not None else training.active_client_ids(conn)
        known = {int(r[0]) for r in conn.execute("SELECT client_id FROM clients").fetchall()}
        missing = [cid for cid in ids if cid not in known]
        if missing:
            from pgml_flow.errors import ClientNotFound

            raise ClientNotFound(f"client(s) {', '.join(map(str, missing))} do not exist; see "
                                 "the clients table, or seed clients with `pgml-flow seed`")
        return ids

    def _check_model(self, conn: psycopg.Connection, model: str | None) -> None:
        """Refuse a model filter that names no model spec and no model the database knows."""
        if model is None:
            return
        names = set(self.model_specs())
        names |= {str(r[0]) for r in conn.execute(sqlfiles.query("known_model_names"))}
        if model not in names:
            raise ConfigurationError(
                f"no model named {model!r}; known: {', '.join(sorted(names)) or 'none'} "
                "(`pgml-flow models list` shows the specs)")

    def retrain_decisions(
        self, models: Sequence[str] | None = None, client_ids: Sequence[int] | None = None, *,
        now: dt.datetime | None = None, force: bool = False, spec_files: Iterable[str] = (),
    ) -> list[Decision]:
        """Whether each client's model would be retrained now, and why (nothing written)."""
        from pgml_flow import retraining

        specs = self._specs(models, spec_files)
        self.require_current_schema()
        with self.connect() as conn:
            return retraining.decisions(conn, specs, self._ids(conn, client_ids),
                                        now or dt.datetime.now(dt.UTC), force=force)

    def retrain_plans(
        self, models: Sequence[str] | None = None, client_ids: Sequence[int] | None = None, *,
        now: dt.datetime | None = None, options: RetrainOptions | None = None,
        spec_files: Iterable[str] = (),
    ) -> list[Plan]:
        """What a retrain would do now, per due client and model (nothing written)."""
        from pgml_flow import retraining

        specs = self._specs(models, spec_files)
        self.require_current_schema()
        with self.connect() as conn:
            return retraining.plans(conn, specs, self._ids(conn, client_ids),
                                    now or dt.datetime.now(dt.UTC),
                                    options or retraining.RetrainOptions())

    def retrain(
        self, models: Sequence[str] | None = None, client_ids: Sequence[int] | None = None, *,
        now: dt.datetime | None = None, options: RetrainOptions | None = None,
        spec_files: Iterable[str] = (), progress: Callable[[TrainingResult], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[TrainingResult]:
        """Decide and retrain (challenger vs champion) each client's models; see retraining.

        On Citus each client is retrained on the worker holding its rows (citus_tenants),
        the nodes at the same time (one thread each), each with the options' parallelism:
        N workers retrain about N times as fast as one."""
        import dataclasses

        from pgml_flow import citus_tenants, database, retraining, training
        from pgml_models import retraining as retrain_policy

        specs = self._specs(models, spec_files)
        self.require_current_schema()
        chosen = options or retraining.RetrainOptions()
        with self.connect() as conn:
            ids = self._ids(conn, client_ids)
            groups = citus_tenants.route(conn, self.url, ids)
            if groups and groups[0].node is not None:
                for spec in specs:
                    training.register(conn, spec)
                # the data's age, from the coordinator's training summary: the workers
                # have none (pgml_models.retraining.gather)
                chosen = dataclasses.replace(chosen, summary=retrain_policy.summary_newest(
                    conn, ids))
                conn.commit()
        when = now or dt.datetime.now(dt.UTC)
        return citus_tenants.in_order(citus_tenants.per_group(groups, lambda group, report: (
            retraining.retrain(
                self.connect if group.node is None else functools.partial(database.connect,
                                                                          group.url),
                specs, group.client_ids, when, chosen, progress=report,
                should_stop=should_stop)), progress), ids)

    def deploy(self, model: str, client_id: int, model_id: int | None = None, *,
               rollback: bool = False, spec_files: Iterable[str] = ()) -> TrainingResult:
        """Deploy a given model of a client (or roll back to the previous one); recorded."""
        from pgml_flow import retraining

        spec = self._specs([model], spec_files)[0]
        self.require_current_schema()
        with self.connect() as conn:
            self._ids(conn, [client_id])
            return retraining.deploy(conn, spec, client_id, model_id, rollback=rollback)

    def events(self, *, model: str | None = None, client_id: int | None = None,
               status: str | None = None, since: dt.datetime | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
        from pgml_flow import retraining

        _check_limit(limit)
        if status is not None and status not in EVENT_STATUSES:
            raise ConfigurationError(f"no event status {status!r}; one of "
                                     f"{', '.join(EVENT_STATUSES)}")
        self.require_current_schema()
        with self.connect() as conn:
            if client_id is not None:
                self._ids(conn, [client_id])
            self._check_model(conn, model)
            return retraining.events(conn, model_name=model, client_id=client_id,
                                     status=status, since=since, limit=limit)

    def model_status(self, models: Sequence[str] | None = None,
                     client_ids: Sequence[int] | None = None, *, now: dt.datetime | None = None,
                     tz: dt.tzinfo = dt.UTC,
                     spec_files: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Per client and model: deployed model, metric, rows since, next run, last event.

        ``next_run`` is set only when something actually schedules the model's retrain job
        (``scheduled_by``: a running scheduler service and/or an active pg_cron job); a cron
        expression in a spec that nothing runs is not a next run.
        """
        from pgml_flow import metrics, retraining
        from scheduler.jobs import next_slot

        specs = self._specs(models, spec_files)
        now = now or dt.datetime.now(dt.UTC)
        jobs = {j.target: j for j in self.scheduled_jobs(spec_files) if j.kind == "retrain"}
        self.require_current_schema()
        with self.read_connect() as conn:  # a standby when DATABASE_READ_URL says so
            _, native = _server_facts(conn)
            rows = retraining.status_rows(conn, specs, self._ids(conn, client_ids), now, native)
        with self.connect() as conn:  # the primary: its locks say which services run
            active = metrics.schedulers(conn, self.url, jobs.values())
        for row in rows:
            job = jobs.get(row["model"])
            row["scheduled_by"] = active.get(job.name, []) if job else []
            row["next_run"] = next_slot(job, now, tz) if job and row["scheduled_by"] else None
        return rows

    def scheduled_jobs(self, spec_files: Iterable[str] = ()) -> list[Job]:
        from scheduler.jobs import jobs

        return jobs(self.model_specs(spec_files))

    def refresh(self, views: Sequence[str] | None = None) -> dict[str, str]:
        """REFRESH MATERIALIZED VIEW CONCURRENTLY each view (default: every refresh job's)."""
        import psycopg
        from psycopg import sql

        from pgml_flow.database import error_text

        chosen = list(views or [j.target for j in self.scheduled_jobs() if j.kind == "refresh"])
        self.require_current_schema()
        done: dict[str, str] = {}
        with self.connect(autocommit=True) as conn:
            for view in chosen:
                try:
                    row = conn.execute(sql.SQL("SELECT pgml_flow.refresh_materialized_view({})")
                                       .format(sql.Literal(view))).fetchone()
                except psycopg.OperationalError:
                    raise  # a lost connection: the CLI says so
                except psycopg.Error as exc:
                    refreshed = f" (refreshed before it: {', '.join(done)})" if done else ""
                    hint = ("" if exc.diag.message_hint else "; `pgml-flow refresh` takes "
                            "materialized views, listed in pg_matviews")
                    raise ConfigurationError(
                        f"cannot refresh {view!r}: {error_text(exc)}{hint}{refreshed}") from exc
                done[view] = str(row[0]) if row else ""
        return done

    # -- prediction log --------------------------------------------------------------------
    def prediction_log_status(self, client_ids: Sequence[int] | None = None
                              ) -> list[dict[str, Any]]:
        """Per client: logged rows and size, what a prune would delete, limits, usage."""
        from pgml_flow import prediction_log

        self.require_current_schema()
        with self.connect() as conn:
            if client_ids is not None:
                self._ids(conn, client_ids)
            return prediction_log.status(conn, client_ids)

    def prune_prediction_log(self, client_ids: Sequence[int] | None = None, *,
                             batch_size: int | None = None,
                             dry_run: bool = False) -> list[dict[str, Any]]:
        """Delete prediction-log rows past each client's age and size limits, in batches."""
        from pgml_flow import prediction_log

        self.require_current_schema()
        with self.connect(autocommit=True) as conn:
            if client_ids is not None:
                self._ids(conn, client_ids)
            return prediction_log.prune(conn, client_ids, dry_run=dry_run,
                                        batch_size=batch_size or prediction_log.BATCH_SIZE)

    # -- monitoring and drift (pgml_flow.monitoring) ----------------------------------------
    def check_drift(self, client_id: int | None = None, *, window: str | None = None
                    ) -> list[dict[str, Any]]:
        """Check drift now for every active client (or one), store and return the rows."""
        from pgml_flow import monitoring

        self.require_current_schema()
        with self.connect() as conn:
            if client_id is not None:
                self._ids(conn, [client_id])
            return monitoring.check_drift(conn, client_id, window)

    def latest_drift(self, client_id: int | None = None) -> list[dict[str, Any]]:
        """The latest stored drift check per client, model and feature."""
        from pgml_flow import monitoring

        self.require_current_schema()
        with self.connect() as conn:
            if client_id is not None:
                self._ids(conn, [client_id])
            return monitoring.latest_drift(conn, client_id)

    def monitor(self, client_id: int | None = None, since: str = "24h") -> monitoring.Snapshot:
        """The monitoring functions' figures over the last ``since``."""
        from pgml_flow import monitoring

        self.require_current_schema()
        with self.connect() as conn:
            if client_id is not None:
                self._ids(conn, [client_id])
            return monitoring.snapshot(conn, client_id, since)

    def report(self, out: str, client_id: int | None = None, since: str = "7d"
               ) -> monitoring.Report:
        """Write the static HTML monitoring report into directory ``out``."""
        from pathlib import Path

        from pgml_flow import monitoring

        return monitoring.write_report(self.monitor(client_id, since), Path(out))

    # -- kill switch, rollout, A/B tests (pgml_flow.rollout, pgml_flow.abtest) ---------------
    def set_rollout(self, state: str, *, model: str = "*", client_id: int | None = None,
                    percent: int | None = None, reason: str | None = None) -> str | None:
        """Flip a kill switch or a rollout; the BI surface's next query applies it."""
        from pgml_flow import rollout

        self.require_current_schema()
        with self.connect() as conn:
            return rollout.set_switch(conn, state, model=model, client_id=client_id,
                                      percent=percent, reason=reason)

    def rollout_status(self, client_ids: Sequence[int] | None = None,
                       model: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """``states``: per client and model what BI gets now and why; ``switches``: set."""
        from pgml_flow import rollout

        self.require_current_schema()
        with self.connect() as conn:
            if client_ids is not None:
                self._ids(conn, client_ids)
            return {"states": rollout.status(conn, client_ids, model),
                    "switches": rollout.switches(conn)}

    def abtest_start(self, model: str, client_id: int, challenger: int, *,
                     mode: str = "shadow", split_percent: int = 50, min_pairs: int = 30,
                     max_pairs: int = 1000, alpha: float = 0.05,
                     spec_files: Iterable[str] = ()) -> dict[str, Any]:
        """Attach a challenger to a client's deployed model (shadow or split)."""
        from pgml_flow import abtest

        spec = self._specs([model], spec_files)[0]
        self.require_current_schema()
        with self.connect() as conn:
            self._ids(conn, [client_id])
            return abtest.start(conn, spec, client_id, challenger, mode=mode,
                                split_percent=split_percent, min_pairs=min_pairs,
                                max_pairs=max_pairs, alpha=alpha)

    def abtest_status(self, client_ids: Sequence[int] | None = None, model: str | None = None,
                      *, apply: bool = True, limit: int = 50,
                      spec_files: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Each test with the paired test's verdict now; with ``apply``, running tests are
        decided: promote (deploy the challenger), keep the champion, or continue."""
        from pgml_flow import abtest

        _check_limit(limit)
        specs = self.model_specs(spec_files)
        self.require_current_schema()
        with self.connect() as conn:
            if client_ids is not None:
                self._ids(conn, client_ids)
            self._check_model(conn, model)
            return [abtest.review(conn, specs, t, apply=apply)
                    for t in abtest.tests(conn, client_ids, model, limit=limit)]

    def abtest_stop(self, model: str, client_id: int) -> dict[str, Any]:
        """End the client's running test of ``model``; the champion stays deployed."""
        from pgml_flow import abtest

        self.require_current_schema()
        with self.connect() as conn:
            self._ids(conn, [client_id])
            running = abtest.tests(conn, [client_id], model, limit=1, running=True)
            if not running:
                from pgml_flow.errors import ModelError

                raise ModelError(f"client {client_id} has no running A/B test of {model}; "
                                 f"see `pgml-flow abtest status --client {client_id}`")
            verdict = abtest.evaluate(conn, running[0])
            abtest.record(conn, running[0], "stopped", verdict,
                          f"stopped by the operator; at that point {verdict.detail}")
            return abtest.tests(conn, [client_id], model, limit=1)[0]

    def run_scheduled(self, *, now: dt.datetime | None = None, tz: dt.tzinfo = dt.UTC,
                      options: RetrainOptions | None = None, claimed_by: str | None = None,
                      should_stop: Callable[[], bool] = lambda: False,
                      jobs: Sequence[Job] | None = None) -> list[JobOutcome]:
        """Run the due jobs once (``pgml-flow scheduler run --once``)."""
        from scheduler.runner import run_once

        return run_once(self, now=now, tz=tz, options=options, claimed_by=claimed_by,
                        should_stop=should_stop, jobs=jobs)

    def job_runs(self, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        from scheduler.runner import job_runs

        _check_limit(limit)
        self.require_current_schema()
        with self.connect() as conn:
            if job is not None:
                names = {j.name for j in self.scheduled_jobs()}
                names |= {str(r[0]) for r in conn.execute(sqlfiles.query("known_job_names"))}
                if job not in names:
                    raise ConfigurationError(f"no job named {job!r}; known: "
                                             f"{', '.join(sorted(names))} (`pgml-flow scheduler "
                                             "jobs` lists them)")
            return job_runs(conn, job, limit)

    def cron_install(self, spec_files: Iterable[str] = (), host: str | None = None,
                     options: RetrainOptions | None = None) -> list[dict[str, Any]]:
        """Register the scheduled jobs with pg_cron (see pgml_flow.pgcron).

        The specs are registered in the database first: the server runs the retrains and
        reads them from there.
        """
        from pgml_flow import pgcron, training

        self.require_current_schema()
        specs = self.model_specs(spec_files)
        with self.connect() as conn:
            for spec in specs.values():
                training.register(conn, spec)
            conn.commit()
        return pgcron.install(self.url, self.scheduled_jobs(spec_files), host, options)

    def cron_remove(self) -> int:
        from pgml_flow import pgcron

        return pgcron.remove(self.url)

    def cron_jobs(self) -> list[dict[str, Any]]:
        from pgml_flow import pgcron

        return pgcron.list_jobs(self.url)

    def cron_history(self, limit: int = 50) -> list[dict[str, Any]]:
        from pgml_flow import pgcron

        _check_limit(limit)
        return pgcron.history(self.url, limit)

    # -- isolation --------------------------------------------------------------------------
    def grant_bi_access(
        self, client_ids: Sequence[int] | None = None, *, role: str | None = None,
        password: str | None = None,
    ) -> list[BiLogin]:
        """A BI login per client (every active client with None); idempotent."""
        from pgml_flow import isolation, training

        self.require_current_schema()
        with self.connect() as conn:
            ids = list(client_ids) if client_ids is not None else training.active_client_ids(conn)
            return [isolation.grant_bi_access(conn, cid, role=role, password=password)
                    for cid in ids]

    def revoke_bi_access(self, client_id: int | None = None) -> list[str]:
        from pgml_flow import isolation

        self.require_current_schema()
        with self.connect() as conn:
            return isolation.revoke_bi_access(conn, client_id)

    def bi_logins(self, client_id: int | None = None) -> list[dict[str, Any]]:
        from pgml_flow import isolation

        self.require_current_schema()
        with self.connect() as conn:
            return isolation.bi_logins(conn, client_id)

    def bi_urls(self, client_id: int, *, password: str | None = None,
                host: str | None = None) -> list[BiUrl]:
        """The TCP connection string of each BI login of a client, for its BI tool."""
        from pgml_flow import isolation

        self.require_current_schema()
        with self.connect() as conn:
            return isolation.bi_urls(conn, client_id, password=password, host=host)

    def audit_isolation(self, progress: Callable[[str, int], None] | None = None
                        ) -> AuditReport:
        """The tenant isolation audit; ``progress(role, logins)`` after each BI login.

        On Citus, each BI login logs in on every node (citus_tenants.audit_nodes)."""
        from pgml_flow import citus_tenants, isolation

        self.require_current_schema()
        with self.connect() as conn:
            if citus_tenants.is_citus(conn):
                conn.rollback()
                return citus_tenants.audit_nodes(conn, self.url, progress)
            return isolation.audit(conn, progress)

    @contextmanager
    def bi_session(self, client_id: int) -> Iterator[psycopg.Connection]:
        """A connection acting as the client's BI login (SET SESSION AUTHORIZATION).

        Needs a superuser connection (the embedded cluster's); a BI tool instead logs
        in as the role itself.
        """
        from psycopg import sql

        logins = self.bi_logins(client_id)
        if not logins:
            raise ConfigurationError(
                f"client {client_id} has no BI login; create one with "
                f"`pgml-flow bi grant --client {client_id}`"
            )
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
                sql.Identifier(str(logins[0]["role_name"]))))
            yield conn


#: the statuses of ml_retraining_events (its CHECK constraint)
EVENT_STATUSES = ("running", "promoted", "kept_champion", "skipped", "failed", "deployed",
                  "rolled_back")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ConfigurationError(f"--limit must be a positive number of rows, got {limit}")


def _server_facts(conn: psycopg.Connection) -> tuple[str | None, str]:
    """The server-side venv and the state of the native scorer, for ``db status``."""
    row = conn.execute(sqlfiles.query("server_facts")).fetchone()
    assert row is not None
    venv, installed, available, off = row
    native = ("installed" if installed else "off" if off else "available" if available
              else "missing")
    return venv, native
