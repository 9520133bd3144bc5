"""An evaluation: import a public dataset, train per client in the database, score its test split.

:func:`evaluate` works in one database (by default a scratch one, :func:`scratch_database`,
so that research data never mixes with a tenant's):

1. imports the dataset's projects (``pgml-flow import dataset``: one client per project,
   each row's split in ``issues.dataset_split``, its place in the file as ``source_row``);
2. makes two views in the schema ``pgml_flow_evaluation``: the spec's training view
   restricted to the training splits (``train`` and ``valid``), and to the test split;
3. trains, per client, the spec with that training view and the rows ordered by
   ``source_row`` (the datasets' files are in creation order, and their splits are by
   it) through :func:`pgml_flow.training.train_client`: the spec's own machinery, with its
   held-out rows (the newest training rows) and, when it lists candidates, the choice on
   a validation slice before them. Nothing is chosen on the test rows: they are not in
   the training view;
4. predicts each client's test rows with the model (``pgml_flow.predict_rows``, the ROW
   form) and computes the benchmark's metric, beside the constant Mean and Median of the
   train split and the published numbers.

The evaluation's spec is named ``<spec>_evaluation`` (projects
``complexity_evaluation__client_<id>``), so that in a database that serves the real
model nothing of it is replaced.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pgml_flow import holdout, sqlfiles, training
from pgml_flow.errors import ConfigurationError
from pgml_flow.evaluation.registry import Benchmark, ProjectResult, Target, find
from pgml_models.specs import ModelSpec, split_relation

SOURCE = "evaluation"
#: the scratch database of `pgml-flow evaluate` (on the server of DATABASE_URL)
SCRATCH = "pgmlflow_evaluate"


@dataclass(frozen=True)
class Evaluation:
    """The results of one evaluation, per project, with the published methods beside."""

    task: str
    dataset: str
    metric: str
    spec: ModelSpec
    projects: tuple[ProjectResult, ...]
    #: the published methods, in the order they are shown
    methods: tuple[str, ...]
    targets: tuple[Target, ...]
    citation: str
    footnotes: dict[str, str]
    seconds: float
    #: seconds spent training (all clients), and importing
    training_seconds: float
    import_seconds: float

    def mean(self, get: Callable[[ProjectResult], float | None]) -> float | None:
        """The mean over the projects of one column; None when a project lacks it."""
        values = [get(p) for p in self.projects]
        if not values or any(v is None for v in values):
            return None
        return statistics.fmean(v for v in values if v is not None)


@contextmanager
def scratch_database(url: str, name: str = SCRATCH, *, keep: bool = False) -> Iterator[str]:
    """A fresh database ``name`` on the server of ``url``, migrated to head; dropped at the
    end unless ``keep``. The role needs CREATEDB."""
    from pgml_flow.app import PgmlFlow
    from pgml_flow.database import drop_database, recreate_database, with_dbname
    from pgml_flow.settings import Settings

    admin = with_dbname(url, "postgres")
    recreate_database(admin, name)
    scratch = with_dbname(url, name)
    try:
        PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=scratch)).upgrade()
        yield scratch
    finally:
        if not keep:
            drop_database(admin, name)


def evaluation_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` as the evaluation trains it: on the training splits, in file order."""
    return dataclasses.replace(
        spec, name=f"{spec.name}_evaluation"[:40], training_view=_view(spec, "training"),
        split={"by": "source_row"}, feature_view=None, timestamp_column=None)


def evaluate(url: str, task: str, dataset: str, path: Path, spec: ModelSpec, *,
             projects: Sequence[str] = (),
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Evaluate ``spec`` (the model ``task``) on ``dataset`` in the database at ``url``;
    see the module docstring."""
    from pgml_flow.imports import DatasetSource, datasets
    from pgml_flow.imports import run as run_import

    benchmark = find(task, dataset)
    root = Path(path)
    if not root.is_dir():
        raise ConfigurationError(f"{root} is not a folder: give --path the folder of {dataset} "
                                 f"(../shared/datasets/{dataset})")
    if benchmark.run is not None:
        found: Evaluation = benchmark.run(url, benchmark, root, spec, projects=projects,
                                          progress=progress)
        return found
    names = list(projects) or (benchmark.default_projects(root) if benchmark.default_projects
                               else sorted(datasets.DATASETS[dataset].projects(root)))
    published = benchmark.published(root)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        report = run_import(conn, DatasetSource(dataset, root, tuple(names)))
        imported = time.perf_counter() - started
        if progress:
            progress(f"imported {report.rows:,} rows of {len(names)} projects "
                     f"in {imported:.1f} s")
        _views(conn, spec, benchmark)
        evaluated = evaluation_spec(spec)
        results = []
        trained = time.perf_counter()
        for name in names:
            slug = datasets.DATASETS[dataset].project(name).slug
            row = conn.execute(_query("client_by_slug"), {"slug": slug}).fetchone()
            if row is None:
                raise ConfigurationError(f"the import made no client {slug!r} for {name}")
            results.append(_project(conn, benchmark, evaluated, spec, name, int(row[0]),
                                    {m: v[name] for m, v in published.items() if name in v}))
            if progress:
                progress(f"{name}: {results[-1].status}")
        training_seconds = time.perf_counter() - trained
    return Evaluation(
        task, dataset, benchmark.metric, evaluated, tuple(results), tuple(published),
        tuple(benchmark.targets(results)), benchmark.citation, benchmark.footnotes,
        time.perf_counter() - started, training_seconds, imported)


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _view(spec: ModelSpec, kind: str) -> str:
    return f"pgml_flow_evaluation.{spec.name}_{kind}"


def _views(conn: psycopg.Connection, spec: ModelSpec, benchmark: Benchmark) -> None:
    """The spec's training view, restricted to the training splits and to the test split."""
    conn.execute(_query("create_schema"))
    for kind, splits in (("training", list(benchmark.train_splits)),
                         ("test", [benchmark.test_split])):
        view = sql.Identifier(_view(spec, kind).split(".")[1])
        conn.execute(sql.SQL(_query("create_split_view")).format(
            view=view, source=sql.Identifier(*split_relation(spec.training_view)),
            splits=sql.Literal(splits)))
    conn.commit()


def _project(conn: psycopg.Connection, benchmark: Benchmark, evaluated: ModelSpec,
             spec: ModelSpec, name: str, client_id: int,
             published: dict[str, float]) -> ProjectResult:
    """Train one client's model on the training splits; score the test split."""
    started = time.perf_counter()
    result = training.train_client(conn, evaluated, client_id, reason="evaluation")
    target = sql.Identifier(spec.target)
    train_y = [float(r[0]) for r in conn.execute(
        sql.SQL(_query("split_targets")).format(
            target=target, view=sql.Identifier(_view(spec, "training").split(".")[1])),
        {"client_id": client_id, "split": "train"})]
    test = sql.SQL(_query("test_predictions")).format(
        target=target, view=sql.Identifier(_view(spec, "test").split(".")[1]))
    ours, chosen, y = None, None, []
    if result.model_id is not None:
        found = conn.execute(test, {"client_id": client_id,
                                    "model_id": result.model_id}).fetchone()
        y = [float(v) for v in (found[0] if found and found[0] else [])]
        predicted = list(found[1] or []) if found else []
        ours = holdout.metric(benchmark.metric, spec.task, y, predicted)
        row = conn.execute(_query("chosen_candidate"), {"client_id": client_id,
                                                        "model_id": result.model_id}).fetchone()
        chosen = str(row[0]) if row else None
    else:
        y = [float(r[0]) for r in conn.execute(sql.SQL(_query("split_targets")).format(
            target=target, view=sql.Identifier(_view(spec, "test").split(".")[1])),
            {"client_id": client_id, "split": benchmark.test_split})]
    conn.rollback()
    baselines = {}
    if train_y and y:
        for label, value in (("Mean", statistics.fmean(train_y)),
                             ("Median", statistics.median(train_y))):
            score = holdout.metric(benchmark.metric, spec.task, y, [value] * len(y))
            if score is not None:
                baselines[label] = score
    return ProjectResult(name, client_id, len(y), ours, result.key_metric_value, baselines,
                         published, chosen, time.perf_counter() - started, result.status,
                         result.detail)
