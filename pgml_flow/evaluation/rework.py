"""Rework and merge decisions of pull requests, on the two Gousios datasets.

``gousios-pullreqs-2015`` (29 projects, 10,693 pull requests; no paper reports results on
these files, SOURCE.txt): will a pull request get commits after it opened (its rework
label, 39.9 % positive), from what is known when it opens: the evaluation spec
``rework_at_open`` (:file:`rework.toml`; the columns and why each is known at opening in
``sql/idempotent/155_rework_open_features.sql``). One client per project, split
chronologically 60/20/20 by ``created_at`` at import; trained per client on train and
valid (the candidate chosen on a validation slice of them), judged on test by ROC AUC of
the predicted probability (``pgml.predict_proba``): the risk ranking is what a team reads,
and AUC does not depend on a threshold. The built-in ``rework`` spec is not judged here:
its label (more than two review cycles or more than three rework commits) needs review
cycles, which the dataset does not have.

``gousios-pullreqs-icse2014`` (291 projects, 170,601 pull requests): the merge decision
of Gousios, Pinzger, van Deursen, ICSE 2014, by its published protocol (gousiosg/pullreqs,
R/merge-decision.R): one model over all projects (the import makes one client of them) on
the paper's 16 features, 10 runs, each on a random half of the pull requests split 90/10
at random, AUC averaged (SOURCE.txt; the paper's own filter, 166,884 of the rows, is not
replicated: its R code drops rows these files do not have). The protocol fixes data,
features and split, not the learner: the paper's random forest, or boosted trees, which
do better on the same draws (rework.toml says how their settings were chosen, on training
rows only). Each run is a training of the spec ``merge_decision``
whose held-out rows are that 10 % (the view's ``draw`` order). Beside the paper's table
(0.94), the paper's own per-run results (``published_results/merge-decision-cv-N.csv``:
the random forest's AUC of each of its 10 runs at N rows) are shown for the half
(N = 83,442, what each run here samples) and all the rows: they are what the protocol
gave its authors. Three feature sets: the paper's (10 runs); those known when the pull
request arrives (without the counts of commits, comments and participants and the
conflict and forward-link flags, which accumulate during review); and those review-time
ones only (``VARIANT_RUNS`` runs each, on the same draws: our reading of the paper, not a
replication; each run is a training of 20-60 s on the shared cores). ``PGML_FLOW_EVALUATION_RUNS``
lowers the number of runs (a quick look; the figures of docs/models.md use 10).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from pgml_flow import sqlfiles, training
from pgml_flow.errors import ConfigurationError
from pgml_flow.evaluation.registry import Benchmark, ProjectResult, Target, register
from pgml_flow.evaluation.run import Evaluation
from pgml_models.specs import ModelSpec

SOURCE = "evaluation_rework"
SPECS = Path(__file__).resolve().parent / "rework.toml"
SCHEMA = "pgml_flow_evaluation"
#: the published merge-decision results (published_results_table.csv), by our label
PUBLISHED_2014 = {"randomforest": "random forest (published)",
                  "binlogregr": "logistic regression (published)",
                  "naivebayes": "naive Bayes (published)"}
#: the paper's own per-run results of its random forest (published_results/), by sample size
PER_RUN_2014 = {83442: "random forest, paper's 10 runs on half",
                166884: "random forest, paper's 10 runs on all"}
#: features of the merge decision that accumulate during review (SOURCE.txt: excluded by
#: the paper for merge time, "not known at PR arrival"; conflict and forward_links come
#: from the comments)
REVIEW_TIME = ("num_commits", "num_comments", "num_participants", "conflict", "forward_links")
RUNS = 10
#: runs of the two feature subsets (arrival, review-time): not part of the replication
VARIANT_RUNS = RUNS
RUNS_ENV = "PGML_FLOW_EVALUATION_RUNS"
Progress = Callable[[str], None] | None


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _import(conn: psycopg.Connection, dataset: str, root: Path,
            names: Sequence[str]) -> float:
    from pgml_flow.imports import DatasetSource
    from pgml_flow.imports import run as run_import

    started = time.perf_counter()
    run_import(conn, DatasetSource(dataset, root, tuple(names)))
    return time.perf_counter() - started


def _serial(conn: psycopg.Connection) -> None:
    """No parallel plans in this session: pgml_flow.predict_rows is declared PARALLEL SAFE
    but starts subtransactions, which a parallel plan refuses (a heavier rework view made
    the planner choose one for the held-out predictions, and the backend then crashed in
    the next pgml.train: reported)."""
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.commit()


def _auc(y: Sequence[float], scores: Sequence[float | None]) -> float | None:
    """ROC AUC of ``scores`` against 0/1 ``y``; None without both classes or a score."""
    if not y or any(s is None for s in scores) or len(set(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, [float(s) for s in scores if s is not None]))


# -- gousios-pullreqs-2015: rework known at opening, per project ---------------------------------
def _evaluate_2015(url: str, benchmark: Benchmark, root: Path, spec: ModelSpec, *,
                   projects: Sequence[str] = (), progress: Progress = None) -> Evaluation:
    from pgml_flow.imports import datasets

    dataset = datasets.DATASETS[benchmark.dataset]
    names = list(projects) or sorted(dataset.projects(root))
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        _serial(conn)
        imported = _import(conn, benchmark.dataset, root, names)
        if progress:
            progress(f"imported {len(names)} projects in {imported:.1f} s")
        conn.execute(sqlfiles.query("create_schema", "evaluation"))
        views = {kind: f"{spec.name}_{kind}" for kind in ("training", "test")}
        for kind, splits in (("training", list(benchmark.train_splits)),
                             ("test", [benchmark.test_split])):
            conn.execute(sql.SQL(_query("create_split_view")).format(
                view=sql.Identifier(views[kind]),
                source=sql.Identifier(*spec.training_view.split(".")),
                splits=sql.Literal(splits)))
        conn.commit()
        evaluated = dataclasses.replace(
            spec, name=f"{spec.name}_evaluation"[:40], feature_view=None,
            training_view=f"{SCHEMA}.{views['training']}", timestamp_column=None)
        trained = time.perf_counter()
        results = []
        for name in names:
            slug = dataset.project(name.replace("@", "/", 1)).slug
            row = conn.execute(sqlfiles.query("client_by_slug", "evaluation"),
                               {"slug": slug}).fetchone()
            if row is None:
                raise ConfigurationError(f"the import made no client {slug!r} for {name}")
            results.append(_project_2015(conn, evaluated, spec, views, name, int(row[0]),
                                         benchmark))
            if progress:
                progress(f"{name}: {results[-1].status}, AUC {results[-1].ours}")
        training_seconds = time.perf_counter() - trained
    return Evaluation(benchmark.task, benchmark.dataset, benchmark.metric, evaluated,
                      tuple(results), (), tuple(benchmark.targets(results)),
                      benchmark.citation, benchmark.footnotes,
                      time.perf_counter() - started, training_seconds, imported)


def _project_2015(conn: psycopg.Connection, evaluated: ModelSpec, spec: ModelSpec,
                  views: dict[str, str], name: str, client_id: int,
                  benchmark: Benchmark) -> ProjectResult:
    started = time.perf_counter()
    result = training.train_client(conn, evaluated, client_id, reason="evaluation")
    target = sql.Identifier(spec.target)
    ours, chosen, y = None, None, []
    if result.model_id is not None:
        found = conn.execute(sql.SQL(_query("test_probabilities")).format(
            target=target, view=sql.Identifier(views["test"]),
            features=sql.SQL(", ").join(sql.Identifier(f) for f in spec.features)),
            {"client_id": client_id, "model_id": result.model_id}).fetchone()
        y = [float(v) for v in (found[0] if found and found[0] else [])]
        ours = _auc(y, list(found[1] or []) if found else [])
        _SCORES[(benchmark.dataset, client_id)] = (y, list(found[1] or []) if found else [])
        row = conn.execute(sqlfiles.query("chosen_candidate", "evaluation"),
                           {"client_id": client_id, "model_id": result.model_id}).fetchone()
        chosen = str(row[0]) if row else None
    else:
        y = [float(r[0]) for r in conn.execute(sql.SQL(_query("split_labels")).format(
            target=target, view=sql.Identifier(views["test"])),
            {"client_id": client_id, "split": benchmark.test_split})]
    held = _held_out_auc(conn, result.model_id)
    conn.rollback()
    return ProjectResult(name, client_id, len(y), ours, held, {}, {},
                         chosen, time.perf_counter() - started, result.status,
                         result.detail)


def _held_out_auc(conn: psycopg.Connection, model_id: int | None) -> float | None:
    """The ROC AUC pgml.train stored for a model on its held-out rows (the spec's key
    metric is F1: pgml-flow scores held-out rows by their labels)."""
    if model_id is None:
        return None
    row = conn.execute(_query("model_metrics"), {"model_id": model_id}).fetchone()
    value = (row[0] or {}).get("roc_auc") if row else None
    return None if value is None else float(value)


#: the test labels and scores of each client of the last evaluation, for the pooled AUC
_SCORES: dict[tuple[str, int], tuple[list[float], list[float | None]]] = {}


def _targets_2015(results: Sequence[ProjectResult]) -> list[Target]:
    scored = [r for r in results if r.ours is not None]
    mean = statistics.fmean(r.ours for r in scored if r.ours is not None) if scored else None
    y: list[float] = []
    scores: list[float | None] = []
    for r in scored:
        got = _SCORES.get(("gousios-pullreqs-2015", r.client_id), ([], []))
        y += got[0]
        scores += got[1]
    pooled = _auc(y, scores)
    return [
        Target("ROC AUC at least 0.80, features known when the pull request opens, "
               "chronological split (mean over the projects)",
               "n/a" if mean is None else f"{mean:.3f} over {len(scored)} of {len(results)} "
               "projects", mean is not None and mean >= 0.80 and len(scored) == len(results)),
        Target("the same, all projects' test rows pooled (each scored by its own model)",
               "n/a" if pooled is None else f"{pooled:.3f} on {len(y):,} rows",
               pooled is not None and pooled >= 0.80),
    ]


# -- gousios-pullreqs-icse2014: the merge decision as published -----------------------------------
def _published_2014(root: Path) -> dict[str, dict[str, float]]:
    import csv

    path = root / "published_results_table.csv"
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing: give --path the folder of "
                                 "gousios-pullreqs-icse2014 (it ships that table)")
    found: dict[str, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = PUBLISHED_2014.get(row["classifier"])
            if label and row["task"].startswith("merge decision"):
                found[label] = {PAPER: float(row["AUC"])}
    for n, label in PER_RUN_2014.items():
        runs_file = root / "published_results" / f"merge-decision-cv-{n}.csv"
        if runs_file.is_file():
            with runs_file.open(newline="") as handle:
                aucs = [float(r["auc"]) for r in csv.DictReader(handle)
                        if r["classifier"] == "randomforest"]
            if aucs:
                found[label] = {PAPER: statistics.fmean(aucs)}
    return found


PAPER = "the paper's features"
ARRIVAL = "known at arrival"
REVIEW = "review-time only"
SHORT = {PAPER: "paper", ARRIVAL: "arrival", REVIEW: "review"}


def runs() -> int:
    raw = os.environ.get(RUNS_ENV, str(RUNS))
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{RUNS_ENV} must be a positive number of runs, got {raw!r}")
    return int(raw)


def _evaluate_2014(url: str, benchmark: Benchmark, root: Path, spec: ModelSpec, *,
                   projects: Sequence[str] = (), progress: Progress = None) -> Evaluation:
    from pgml_flow.imports import datasets

    published = benchmark.published(root)
    started = time.perf_counter()
    variants = {PAPER: tuple(spec.features),
                ARRIVAL: tuple(f for f in spec.features if f not in REVIEW_TIME),
                REVIEW: tuple(f for f in spec.features if f in REVIEW_TIME)}
    n_runs = runs()
    with psycopg.connect(url) as conn:
        _serial(conn)
        imported = _import(conn, benchmark.dataset, root, projects)
        if progress:
            progress(f"imported {len(projects) or 'all'} projects in {imported:.1f} s")
        row = conn.execute(sqlfiles.query("client_by_slug", "evaluation"),
                           {"slug": datasets.ICSE2014_CLIENT.slug}).fetchone()
        if row is None:
            raise ConfigurationError("the import made no client for gousios-pullreqs-icse2014")
        client_id = int(row[0])
        conn.execute(sqlfiles.query("create_schema", "evaluation"))
        conn.commit()
        trained = time.perf_counter()
        results = []
        for label, features in variants.items():
            variant = dataclasses.replace(
                spec, name=f"{spec.name}_{SHORT[label]}"[:40],
                features=features, feature_view=None, timestamp_column=None)
            aucs, held, rows, statuses = [], [], [], []
            began = time.perf_counter()
            variant_runs = n_runs if label == PAPER else min(n_runs, VARIANT_RUNS)
            for run in range(1, variant_runs + 1):
                conn.execute(sql.SQL(_query("create_merge_view")).format(
                    draw_seed=sql.Literal(2 * run), sample_seed=sql.Literal(2 * run + 1)))
                conn.commit()
                result = training.train_client(conn, variant, client_id, reason="evaluation")
                statuses.append(result.status)
                auc = _held_out_auc(conn, result.model_id)
                if auc is not None:
                    aucs.append(auc)
                rows.append(round(0.1 * result.training_rows))
                if progress:
                    progress(f"{label}, run {run}: AUC {auc} "
                             f"({result.training_rows:,} rows, {result.seconds:.0f} s)")
            held = aucs
            results.append(ProjectResult(
                label, client_id, round(statistics.fmean(rows)) if rows else 0,
                statistics.fmean(aucs) if len(aucs) == variant_runs else None,
                statistics.fmean(held) if len(held) == variant_runs else None, {},
                {m: v[PAPER] for m, v in published.items()} if label == PAPER else {},
                None, time.perf_counter() - began,
                ", ".join(sorted(set(statuses))),
                f"{variant_runs} runs; AUC of each: " + ", ".join(f"{a:.3f}" for a in aucs)))
        training_seconds = time.perf_counter() - trained
    return Evaluation(benchmark.task, benchmark.dataset, benchmark.metric, spec,
                      tuple(results), tuple(published), tuple(benchmark.targets(results)),
                      benchmark.citation, benchmark.footnotes,
                      time.perf_counter() - started, training_seconds, imported)


def _targets_2014(results: Sequence[ProjectResult]) -> list[Target]:
    by = {r.project: r for r in results}
    paper, arrival, review = by.get(PAPER), by.get(ARRIVAL), by.get(REVIEW)

    def shown(r: ProjectResult | None) -> str:
        return "n/a" if r is None or r.ours is None else f"{r.ours:.3f}"

    own = paper.published.get(PER_RUN_2014[83442]) if paper is not None else None
    return [
        Target("merge decision, the published protocol: AUC at least the published 0.94",
               shown(paper), paper is not None and paper.ours is not None
               and paper.ours >= 0.94),  # unrounded: 0.935 is below the 0.94 asked
        Target("the same protocol against the paper's own 10 runs on half the rows "
               "(published_results/merge-decision-cv-83442.csv)",
               f"{shown(paper)} against " + ("n/a" if own is None else f"{own:.3f}"),
               paper is not None and paper.ours is not None and own is not None
               and paper.ours >= own),
        Target("the AUC with review-time features only (and with those known at arrival "
               "only)", f"{shown(review)} (arrival only: {shown(arrival)})",
               review is not None and review.ours is not None),
    ]


BENCHMARK_2015 = register(Benchmark(
    task="rework", dataset="gousios-pullreqs-2015", metric="roc_auc",
    published=lambda root: {}, targets=_targets_2015, spec="rework_at_open",
    spec_file=SPECS, run=_evaluate_2015,
    citation="G. Gousios, A. Zaidman, A dataset for pull-based development research, MSR "
             "2014, doi:10.1145/2597073.2597122 (the 2015 regeneration of gousiosg/pullreqs)",
))

BENCHMARK_2014 = register(Benchmark(
    task="rework", dataset="gousios-pullreqs-icse2014", metric="roc_auc",
    published=_published_2014, targets=_targets_2014, spec="merge_decision",
    spec_file=SPECS, run=_evaluate_2014,
    citation="G. Gousios, M. Pinzger, A. van Deursen, An exploratory study of the "
             "pull-based software development model, ICSE 2014, doi:10.1145/2568225.2568260",
))
