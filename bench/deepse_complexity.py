"""Story points on real issues: the built-in complexity model on the 16 Deep-SE projects.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/deepse_complexity.py --path ../shared/datasets/deepse-storypoints

It creates a scratch database ``pgmlflow_bench_deepse`` (dropped at the end unless
``--keep``), imports the dataset with ``pgml-flow import dataset deepse-storypoints``
(all 16 projects: the two Talend ones, which the import leaves out by default, are named
with ``--project``; Tawosi et al. withheld them from their replication for GDPR reasons,
so the table marks them) and, per project (one client each), trains a model on the
project's shipped ``train`` and ``valid`` rows with ``pgml_flow.training.train_client``,
then predicts its ``test`` rows (the chronological 60/20/20 split Deep-SE ships) and
prints the MAE per project and the mean, next to the Mean and Median baselines of
``reproduced_mean_median_baselines.csv`` (constant train mean / median; the bench checks
it computes the same). Two models:

* ``after``: the built-in ``complexity`` spec as it is (features learned per client,
  absolute-error XGBoost, the newest 25 % of the rows held out); only its training view
  is narrowed to the train and valid rows. Deep-SE has no dates, but its rows are in
  creation order: the view dates each issue by its row in the file, so the spec's time
  split holds out the newest train+valid rows, which are (nearly) the valid split. The
  test rows are never seen, and no choice was made on them (``valid`` is that held-out
  MAE);
* ``before`` (``--before``): the complexity spec and feature view of revision 0009, kept
  in this file: twelve component flags and ten title keyword flags of the synthetic
  generator, type and priority, two lengths; squared-error XGBoost; a hash-chosen 25 %
  held out. Issues without a type count as standard issues, as in ``after``.

Each model is scored through ``pgml.predict``'s ROW form on the feature view's test rows.
The results are also written to ``bench/results/deepse-<time>.json``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgml_flow.app import PgmlFlow
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.settings import Settings
from pgml_flow.training import train_client
from pgml_models.specs import builtin_specs, parse_spec

DATABASE = "pgmlflow_bench_deepse"
RESULTS = Path(__file__).resolve().parent / "results"
WITHHELD = ("talenddataquality", "talendesb")

#: the rows of a project's train and valid splits, dated by their row in the file
AFTER_VIEW = """
CREATE VIEW bench.complexity_deepse AS
SELECT t.client_id, t.entity_id,
       coalesce(t.created, timestamptz '2000-01-01 00:00+00'
                + (i.attributes ->> 'source_row')::integer * interval '1 minute') AS created,
       t.issue_type, t.priority, t.components, t.labels, t.title, t.description,
       t.title_length, t.description_words, t.story_points
  FROM pgml_flow.complexity_training t
  JOIN public.issues i ON i.client_id = t.client_id AND i.issue_id = t.entity_id
 WHERE i.dataset_split IN ('train', 'valid')
"""

#: revision 0009's complexity features (sql/idempotent/100_features.sql then), with issues
#: without a type (all of Deep-SE's) counted as standard ones and NULL components as none
BEFORE_VIEW = r"""
CREATE VIEW bench.complexity_before_features AS
SELECT i.client_id, i.issue_id AS entity_id, i.story_points::real AS story_points,
       i.dataset_split,
       coalesce(t.original_name = 'Story', false)::integer::real AS type_story,
       coalesce(t.original_name = 'Task', false)::integer::real AS type_task,
       coalesce(t.original_name = 'Bug', false)::integer::real AS type_bug,
       (CASE i.priority WHEN 'Highest' THEN 2 WHEN 'High' THEN 1 WHEN 'Low' THEN -1
                        WHEN 'Lowest' THEN -2 ELSE 0 END)::real AS priority_rank,
       coalesce(cardinality(i.components), 0)::real AS n_components,
       coalesce('api' = ANY (i.components), false)::integer::real AS comp_api,
       coalesce('frontend' = ANY (i.components), false)::integer::real AS comp_frontend,
       coalesce('backend' = ANY (i.components), false)::integer::real AS comp_backend,
       coalesce('database' = ANY (i.components), false)::integer::real AS comp_database,
       coalesce('infra' = ANY (i.components), false)::integer::real AS comp_infra,
       coalesce('mobile' = ANY (i.components), false)::integer::real AS comp_mobile,
       coalesce('auth' = ANY (i.components), false)::integer::real AS comp_auth,
       coalesce('billing' = ANY (i.components), false)::integer::real AS comp_billing,
       coalesce('search' = ANY (i.components), false)::integer::real AS comp_search,
       coalesce('reporting' = ANY (i.components), false)::integer::real AS comp_reporting,
       coalesce('notifications' = ANY (i.components), false)::integer::real AS comp_notifications,
       coalesce('integrations' = ANY (i.components), false)::integer::real AS comp_integrations,
       coalesce(i.title ~* '\mtypo\M', false)::integer::real AS kw_typo,
       coalesce(i.title ~* '\mtweak', false)::integer::real AS kw_tweak,
       coalesce(i.title ~* '\mupdate', false)::integer::real AS kw_update,
       coalesce(i.title ~* '\mfix', false)::integer::real AS kw_fix,
       coalesce(i.title ~* '\madd', false)::integer::real AS kw_add,
       coalesce(i.title ~* '\mimprove', false)::integer::real AS kw_improve,
       coalesce(i.title ~* '\mimplement', false)::integer::real AS kw_implement,
       coalesce(i.title ~* '\mrefactor', false)::integer::real AS kw_refactor,
       coalesce(i.title ~* '\mmigrat', false)::integer::real AS kw_migrate,
       coalesce(i.title ~* '\mredesign', false)::integer::real AS kw_redesign,
       coalesce(length(i.title), 0)::real AS title_length,
       (CASE WHEN coalesce(btrim(i.description), '') = '' THEN 0
             ELSE length(btrim(i.description))
                  - length(replace(btrim(i.description), ' ', '')) + 1 END)::real
           AS description_words
  FROM public.issues i
  LEFT JOIN public.issuetypes t ON t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id
 WHERE i.active AND coalesce(t.hierarchy_level, 0) = 0 AND i.story_points IS NOT NULL;
CREATE VIEW bench.complexity_before AS
SELECT * FROM bench.complexity_before_features WHERE dataset_split IN ('train', 'valid');
"""
BEFORE_FEATURES = [
    "type_story", "type_task", "type_bug", "priority_rank", "n_components",
    "comp_api", "comp_frontend", "comp_backend", "comp_database", "comp_infra",
    "comp_mobile", "comp_auth", "comp_billing", "comp_search", "comp_reporting",
    "comp_notifications", "comp_integrations",
    "kw_typo", "kw_tweak", "kw_update", "kw_fix", "kw_add", "kw_improve", "kw_implement",
    "kw_refactor", "kw_migrate", "kw_redesign", "title_length", "description_words",
]
BEFORE_SPEC = {
    "task": "regression", "training_view": "bench.complexity_before",
    "target": "story_points", "features": BEFORE_FEATURES, "algorithm": "xgboost",
    "hyperparams": {"n_estimators": 80, "max_depth": 4, "learning_rate": 0.1},
    "test_size": 0.25, "min_training_rows": 100,
    "retraining": {"schedule": "0 3 * * 3", "min_new_records": 200,
                   "performance_threshold": 0.75, "data_freshness_days": 14},
}

#: the test rows of a project with a model's prediction of each (the ROW form)
SCORE = """
SELECT f.story_points::double precision, pgml.predict(%(model_id)s::bigint, f)
  FROM {features} f JOIN public.issues i ON i.client_id = f.client_id AND i.issue_id = f.entity_id
 WHERE f.client_id = %(client_id)s AND i.dataset_split = 'test' AND f.story_points IS NOT NULL
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="../shared/datasets/deepse-storypoints",
                        help="the dataset's folder")
    parser.add_argument("--before", action="store_true",
                        help="also train revision 0009's complexity model")
    parser.add_argument("--project", action="append", default=[],
                        help="only this project (repeatable; default: all 16)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    root = Path(args.path).resolve()
    projects = args.project or sorted(p.name.removesuffix(".csv.gz")
                                      for p in (root / "data").glob("*.csv.gz"))
    baselines = {r["project"]: r for r in
                 csv.DictReader((root / "reproduced_mean_median_baselines.csv").open())}

    base = PgmlFlow()
    admin = with_dbname(base.url, "postgres")
    recreate_database(admin, DATABASE)
    url = with_dbname(base.url, DATABASE)
    flow = PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))
    started = time.perf_counter()
    try:
        flow.upgrade()
        command = [sys.executable, "-m", "cli.app", "import", "dataset", "deepse-storypoints",
                   "--path", str(root)]
        for project in projects:
            command += ["--project", project]
        subprocess.run(command, check=True, env={**os.environ, "DATABASE_URL": url},
                       stdout=subprocess.DEVNULL)
        with psycopg.connect(url) as conn:
            conn.execute("CREATE SCHEMA bench")
            conn.execute(AFTER_VIEW)
            conn.execute(BEFORE_VIEW)
            conn.commit()
            clients = {str(r[0]).removeprefix("deepse_"): int(r[1]) for r in conn.execute(
                "SELECT slug, client_id FROM clients WHERE slug LIKE 'deepse\\_%'")}
            after_spec = dataclasses.replace(builtin_specs()["complexity"],
                                             training_view="bench.complexity_deepse")
            before_spec = parse_spec("complexity_before", BEFORE_SPEC, source="bench")
            rows = []
            for project in projects:
                client_id = clients[project]
                row: dict[str, Any] = {"project": project, "client_id": client_id}
                runs = [("after", after_spec, "pgml_flow.complexity_features")]
                if args.before:
                    runs.append(("before", before_spec, "bench.complexity_before_features"))
                for label, spec, features in runs:
                    result = train_client(conn, spec, client_id, reason="bench")
                    if result.model_id is None:
                        raise SystemExit(f"{project}: {label} did not train: {result.detail}")
                    y, predicted = _test(conn, features, client_id, result.model_id)
                    row[label] = _mae(y, predicted)
                    row[f"{label}_valid"] = _stored_mae(conn, result.model_id)
                    row[f"{label}_seconds"] = round(result.seconds, 2)
                row["test_rows"] = len(y)
                train_y = [float(r[0]) for r in conn.execute(
                    "SELECT story_points FROM issues WHERE client_id = %s"
                    " AND dataset_split = 'train'", (client_id,))]
                mean, median = statistics.fmean(train_y), statistics.median(train_y)
                row["mean"] = _mae(y, [mean] * len(y))
                row["median"] = _mae(y, [median] * len(y))
                expected = baselines.get(project)
                if expected and (round(row["mean"], 2) != float(expected["MAE_mean_baseline"])
                                 or round(row["median"], 2)
                                 != float(expected["MAE_median_baseline"])):
                    print(f"note: {project}: Mean/Median MAE {row['mean']:.2f}/"
                          f"{row['median']:.2f} differ from the reproduced "
                          f"{expected['MAE_mean_baseline']}/{expected['MAE_median_baseline']}")
                rows.append(row)
                print(f"{project}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        _print(rows, args.before)
        RESULTS.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        out = RESULTS / f"deepse-{stamp}.json"
        out.write_text(json.dumps({"projects": rows, "seconds": time.perf_counter() - started},
                                  indent=1) + "\n")
        print(f"results: {out.relative_to(RESULTS.parent.parent)}")
    finally:
        if not args.keep:
            drop_database(admin, DATABASE)


def _test(conn: psycopg.Connection, features: str, client_id: int,
          model_id: int) -> tuple[list[float], list[float]]:
    query = sql.SQL(SCORE).format(features=sql.Identifier(*features.split(".")))
    found = conn.execute(query, {"client_id": client_id, "model_id": model_id}).fetchall()
    conn.rollback()
    return [float(r[0]) for r in found], [float(r[1]) for r in found]


def _mae(y: list[float], predicted: list[float]) -> float:
    return statistics.fmean(abs(a - b) for a, b in zip(y, predicted, strict=True))


def _stored_mae(conn: psycopg.Connection, model_id: int) -> float:
    row = conn.execute("SELECT (metrics ->> 'mean_absolute_error')::float8 FROM pgml.models"
                       " WHERE id = %s", (model_id,)).fetchone()
    conn.rollback()
    return float(row[0]) if row and row[0] is not None else float("nan")


def _print(rows: list[dict[str, Any]], before: bool) -> None:
    columns = ["project", "test", "Mean", "Median"] + (["before"] if before else []) + [
        "after", "after valid"]
    lines = [columns]
    for r in rows:
        name = r["project"] + (" *" if r["project"] in WITHHELD else "")
        lines.append([name, str(r["test_rows"]), f"{r['mean']:.2f}", f"{r['median']:.2f}"]
                     + ([f"{r['before']:.2f}"] if before else [])
                     + [f"{r['after']:.2f}", f"{r['after_valid']:.2f}"])
    mean = [f"mean of {len(rows)}", str(sum(r["test_rows"] for r in rows)),
            f"{statistics.fmean(r['mean'] for r in rows):.2f}",
            f"{statistics.fmean(r['median'] for r in rows):.2f}"]
    if before:
        mean.append(f"{statistics.fmean(r['before'] for r in rows):.2f}")
    mean += [f"{statistics.fmean(r['after'] for r in rows):.2f}",
             f"{statistics.fmean(r['after_valid'] for r in rows):.2f}"]
    lines.append(mean)
    widths = [max(len(line[k]) for line in lines) for k in range(len(columns))]
    print("Test MAE (story points) per Deep-SE project; after valid: the model's own "
          "held-out rows (~ the valid split)")
    for line in lines:
        print("  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                        for k, (c, w) in enumerate(zip(line, widths, strict=True))))
    better = sum(r["after"] < r["median"] for r in rows)
    print(f"after beats the Median baseline on {better} of {len(rows)} projects"
          + (f"; before on {sum(r['before'] < r['median'] for r in rows)}" if before else "")
          + "; * withheld by Tawosi et al. (GDPR)")


if __name__ == "__main__":
    main()
