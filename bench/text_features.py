"""Text features on real issues: tf-idf complexity models of the 16 Deep-SE projects.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/text_features.py --path ../shared/datasets/deepse-storypoints

Issue 13's targets: training all 16 Deep-SE clients' complexity models with text features
in under 2 minutes on this 2-core machine, and predicting through the BI view at 100k
rows/s or more.  In a scratch database ``pgmlflow_bench_text`` (dropped at the end unless
``--keep``) it imports the dataset (``pgml-flow evaluate``'s machinery, as
bench/deepse_complexity.py) and trains, per project, the built-in complexity spec with its
title and description as tf-idf of words and word pairs (``--max-features``, default 2000)
instead of ``words``; it prints the training time and test MAE, then the prediction
throughput of every client's feature rows three ways, each the best of ``--repeat``. The
Deep-SE import closes every issue, so the scratch database reopens them all first (the BI
view reads open issues only). ``--reuse`` measures a database kept by ``--keep``.

* ``native``: ``pgml.predict(model_id, f)`` per row, the C scorer (what
  ``analytics.predictions`` runs for these models);
* ``python``: ``pgml_flow.predict_rows(model_id, array_agg(to_json(f)))``, the Python path
  the BI surface used before, one call per client;
* ``bi view``: ``analytics.predictions(model)``, what ``analytics.issue_story_points``
  reads, as each client's admin session (``pgml_flow.client_id``), logging included.

Figures are ratios against the Python path measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg

from pgml_flow.app import PgmlFlow
from pgml_flow.database import with_dbname

SPEC = """
[models.complexity]
description = "Story points from type, priority, components, labels and tf-idf of the text"
task = "regression"
training_view = "pgml_flow.complexity_training"
feature_view = "pgml_flow.complexity_features"
target = "story_points"
features = [
    "issue_type", "priority", "components", "labels", "title", "description",
    "title_length", "description_words",
]
algorithm = "xgboost"
key_metric = "mean_absolute_error"
split = {{ by = "created" }}
seed = 42
test_size = 0.25
min_training_rows = 100

[models.complexity.preprocess]
issue_type = {{ encode = "one_hot", impute = "zero" }}
priority = {{ encode = "one_hot", impute = "zero" }}
components = {{ encode = "multi_hot", top_k = 20 }}
labels = {{ encode = "multi_hot", top_k = 20 }}
title = {{ text = "tfidf", max_features = {n}, ngram = [1, 2], sublinear_tf = true }}
description = {{ text = "tfidf", max_features = {n}, ngram = [1, 2], sublinear_tf = true }}

[models.complexity.hyperparams]
objective = "reg:absoluteerror"
n_estimators = 150
max_depth = 2
learning_rate = 0.05

[models.complexity.retraining]
schedule = "0 3 * * 3"
min_new_records = 200
performance_threshold = 3.0
data_freshness_days = 14
"""


def best(conn: psycopg.Connection, query: str, params: tuple[object, ...],
         repeat: int) -> tuple[float, object]:
    """The fastest of ``repeat`` runs of a query (seconds) and its first value."""
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = conn.execute(query, params).fetchone()[0]  # type: ignore[index]
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--path", default="../shared/datasets/deepse-storypoints")
    parser.add_argument("--max-features", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true",
                        help="measure predictions in the database a --keep run left")
    args = parser.parse_args()
    flow = PgmlFlow()
    if not args.reuse:
        train(flow, args.path, args.max_features)
    try:
        measure(with_dbname(flow.url, "pgmlflow_bench_text"), args.repeat)
    finally:
        if not args.keep:
            from pgml_flow.database import drop_database

            drop_database(with_dbname(flow.url, "postgres"), "pgmlflow_bench_text")


def train(flow: PgmlFlow, path: str, max_features: int) -> None:
    """Import the 16 projects and train each one's complexity model (evaluate's machinery)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as spec:
        spec.write(SPEC.format(n=max_features))
        spec.flush()
        evaluation = flow.evaluate(
            "complexity", "deepse-storypoints", Path(path), spec_files=[spec.name],
            keep=True, scratch="pgmlflow_bench_text", progress=lambda t: print(t, flush=True))
    maes = [p.ours for p in evaluation.projects if p.ours is not None]
    print(f"training with tf-idf text features ({max_features} terms, ngram [1, 2]): "
          f"{evaluation.training_seconds:.1f} s for {len(evaluation.projects)} clients "
          f"(target: under 120 s); import {evaluation.import_seconds:.1f} s"
          + (f"; mean test MAE {sum(maes) / len(maes):.2f}" if maes else ""))


def measure(url: str, repeat: int) -> None:
    """Rows per second of the deployed models: C per row, Python in one call, the BI read."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE issues SET status_category = 'in_progress'"
                     " WHERE status_category = 'done'")
        (name,) = conn.execute("SELECT model_name FROM ml_model_registry"
                               " WHERE model_name LIKE 'complexity%' ORDER BY 1 LIMIT 1"
                               ).fetchone() or ("complexity",)
        # evaluate registers its spec without the BI surface: serve it like complexity
        conn.execute("UPDATE ml_model_registry SET feature_view = 'pgml_flow.complexity_features'"
                     " WHERE model_name = %s AND feature_view IS NULL", (name,))
        models = conn.execute(
            "SELECT c.client_id, s.model_id FROM clients c CROSS JOIN LATERAL"
            " pgml_flow.serving_model(c.client_id, %s) s"
            " WHERE s.model_id IS NOT NULL ORDER BY c.client_id", (name,)).fetchall()
        native_rows = sum(bool(conn.execute("SELECT pgml_flow.native_rows(%s)", (m,))
                               .fetchone()[0]) for _, m in models)  # type: ignore[index]
        print(f"{len(models)} deployed {name} models, {native_rows} with a native ROW form")
        totals = {"native": [0.0, 0], "python": [0.0, 0], "bi view": [0.0, 0]}
        queries = {
            "native": ("SELECT count(pgml.predict(%s, f)) FROM pgml_flow.complexity_features f"
                       " WHERE client_id = %s"),
            "python": ("SELECT cardinality(pgml_flow.predict_rows(%s, array_agg(to_json(f))))"
                       " FROM pgml_flow.complexity_features f WHERE client_id = %s"),
        }
        for client, model in models:
            for path, query in queries.items():
                seconds, n = best(conn, query, (model, client), repeat)
                totals[path][0] += seconds
                totals[path][1] += int(n or 0)  # type: ignore[call-overload]
            conn.execute("SELECT set_config('pgml_flow.client_id', %s, false)", (str(client),))
            seconds, n = best(conn, "SELECT count(prediction) FROM analytics.predictions(%s)",
                              (name,), repeat)
            totals["bi view"][0] += seconds
            totals["bi view"][1] += int(n or 0)  # type: ignore[call-overload]
        python_rate = totals["python"][1] / max(totals["python"][0], 1e-9)
        for path, (seconds, rows) in totals.items():
            rate = rows / max(seconds, 1e-9)
            print(f"{path:8} {rows:>7,} rows in {seconds * 1000:8.1f} ms: {rate:>10,.0f} rows/s"
                  f" ({rate / max(python_rate, 1e-9):5.1f}x the Python path)")


if __name__ == "__main__":
    main()
