"""Text features on real issues: tf-idf complexity models of the 16 Deep-SE projects.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/text_features.py --path ../shared/datasets/deepse-storypoints

Issue 13's targets: training all 16 Deep-SE clients' complexity models with text features
in under 2 minutes on this 2-core machine, and predicting through the BI view at 100k
rows/s or more.  In a scratch database (``--database``, default ``pgmlflow_bench_text``:
one per person measuring at the same time; dropped at the end unless ``--keep``) it
imports the dataset (``pgml-flow evaluate``'s machinery, as bench/deepse_complexity.py)
and trains, per project, the built-in complexity spec with its
title and description as tf-idf of words and word pairs (``--max-features``, default 2000)
instead of ``words``; it prints the training time and test MAE, then the prediction
throughput of every client's open feature rows, each the best of ``--repeat``. The
Deep-SE import closes every issue, so the scratch database reopens them all first (the BI
view reads open issues only). ``--reuse`` measures a database kept by ``--keep``.

* ``native``: ``pgml.predict(model_id, f)`` per row, the C scorer (what
  ``analytics.predictions`` runs for these models);
* ``python``: ``pgml_flow.predict_rows(model_id, array_agg(to_json(f)))``, the Python path
  the BI surface used before, one call per client;
* ``bi view``: ``analytics.predictions(model)``, what ``analytics.issue_story_points``
  reads, as each client's admin session (``pgml_flow.client_id``), logging included: the
  first reads of a client, each of which logs a sample of up to 200 predictions not in the
  log yet (an insert of about 25 µs per row);
* ``bi relog``: the same once the client's every prediction is in the log (one read logs
  them all first, the sample size and hourly cap lifted for it): a dashboard's later reads
  of unchanged predictions, whose sample the log already holds (a probe per sampled row);
* ``bi nolog``: the same in a read-only transaction (a BI tool's or a standby's), which
  logs nothing;
* ``view``: the feature view's rows alone (what every path reads first);
* ``view -idx`` and ``nolog -idx``: ``view`` and ``bi nolog`` in a transaction that drops
  ``issues_open_idx`` (revision 0016) and rolls back: the reads as they were planned
  before it, in the same run;
* ``--sessions N`` (default: the machine's cores): the server's aggregate throughput with
  N client sessions at once, each reading its own clients (a share of the 16, balanced by
  rows) through ``analytics.predictions``, read-only and with the log: all rows read / the
  wall time of the whole batch, and the CPU time of the N backends. The single-session
  figures stay the headline: a read's cost; this one shows what the server does with its
  cores.

``--classes`` trains the built-in spec's ``classes`` candidate instead (the story points'
classes, a logistic regression over the same tf-idf, the MAE-optimal point of its class
probabilities: docs/sql-api.md), served by the same C scorer.

Figures are ratios against the Python path measured in the same run, in wall time and,
where the server runs on this machine, in the backend's CPU time (Linux's schedstat): on a
shared machine the wall time says more about the load than about the query.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


#: --classes: the built-in complexity spec's "classes" candidate over the same tf-idf text
CLASSES = {
    'algorithm = "xgboost"': 'algorithm = "linear"',
    'objective = "reg:absoluteerror"\nn_estimators = 150\nmax_depth = 2\nlearning_rate = 0.05':
        "C = 1.0\nmax_iter = 2000",
    "\n[models.complexity.hyperparams]":
        '\nstory_points = { classes = "median", min_class = 5 }\n'
        'title_length = { scale = "max_abs" }\ndescription_words = { scale = "max_abs" }\n'
        "\n[models.complexity.hyperparams]",
}


def spec_text(max_features: int, classes: bool) -> str:
    text = SPEC.format(n=max_features)
    for old, new in (CLASSES.items() if classes else ()):
        assert old in text, old
        text = text.replace(old, new)
    return text


def backend_cpu(conn: psycopg.Connection) -> Callable[[], float | None]:
    """The CPU time (seconds) the connection's backend has used so far, from Linux's
    /proc/PID/schedstat, where the server runs on this machine (None elsewhere): on a
    machine shared with other work, wall time measures the load more than the query."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    path = Path(f"/proc/{pid}/schedstat")

    def read() -> float | None:
        try:
            return int(path.read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return None
    return read


def best(conn: psycopg.Connection, query: str, params: tuple[object, ...], repeat: int,
         cpu: Callable[[], float | None]) -> tuple[float, float | None, object]:
    """The fastest of ``repeat`` runs of a query: wall seconds, backend CPU seconds (None
    where unknown), and its first value."""
    times: list[float] = []
    cpus: list[float] = []
    value = None
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), cpu()
        value = conn.execute(query, params).fetchone()[0]  # type: ignore[index]
        times.append(time.perf_counter() - start)
        cpu_end = cpu()
        if cpu_start is not None and cpu_end is not None:
            cpus.append(cpu_end - cpu_start)
    return min(times), (min(cpus) if cpus else None), value


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--path", default="../shared/datasets/deepse-storypoints")
    parser.add_argument("--max-features", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--classes", action="store_true",
                        help="train the complexity spec's classes candidate instead")
    parser.add_argument("--reuse", action="store_true",
                        help="measure predictions in the database a --keep run left")
    parser.add_argument("--database", default="pgmlflow_bench_text",
                        help="the scratch database's name (one per concurrent user)")
    parser.add_argument("--sessions", type=int, default=os.cpu_count() or 2,
                        help="concurrent BI sessions for the aggregate figure (0: none)")
    args = parser.parse_args()
    flow = PgmlFlow()
    if not args.reuse:
        train(flow, args.path, args.max_features, args.classes, args.database)
    try:
        measure(with_dbname(flow.url, args.database), args.repeat, args.sessions)
    finally:
        if not args.keep:
            from pgml_flow.database import drop_database

            drop_database(with_dbname(flow.url, "postgres"), args.database)


def train(flow: PgmlFlow, path: str, max_features: int, classes: bool = False,
          database: str = "pgmlflow_bench_text") -> None:
    """Import the 16 projects and train each one's complexity model (evaluate's machinery)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as spec:
        spec.write(spec_text(max_features, classes))
        spec.flush()
        evaluation = flow.evaluate(
            "complexity", "deepse-storypoints", Path(path), spec_files=[spec.name],
            keep=True, scratch=database, progress=lambda t: print(t, flush=True))
    maes = [p.ours for p in evaluation.projects if p.ours is not None]
    print(f"training with tf-idf text features ({max_features} terms, ngram [1, 2]): "
          f"{evaluation.training_seconds:.1f} s for {len(evaluation.projects)} clients "
          f"(target: under 120 s); import {evaluation.import_seconds:.1f} s"
          + (f"; mean test MAE {sum(maes) / len(maes):.2f}" if maes else ""))


def measure(url: str, repeat: int, sessions: int = 0) -> None:
    """Rows per second of the deployed models: C per row, Python in one call, the BI read
    (one session, then ``sessions`` at once)."""
    with psycopg.connect(url, autocommit=True) as conn:
        # the import leaves status_category NULL or 'done': neither is open
        conn.execute("UPDATE issues SET status_category = 'in_progress'"
                     " WHERE status_category IS DISTINCT FROM 'in_progress'")
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
        # path: [wall seconds, backend CPU seconds (None: unknown), rows]
        totals: dict[str, list[Any]] = {path: [0.0, 0.0, 0] for path in (
            "view", "native", "python", "bi view", "bi relog", "bi nolog", "view -idx",
            "nolog -idx")}
        has_index = conn.execute("SELECT to_regclass('public.issues_open_idx') IS NOT NULL"
                                 ).fetchone() == (True,)
        rows_of: dict[int, int] = {}
        queries = {
            "view": ("SELECT count(f.*) + 0 * %s FROM pgml_flow.complexity_features f"
                     " WHERE client_id = %s AND is_open"),
            "native": ("SELECT count(pgml.predict(%s, f)) FROM pgml_flow.complexity_features f"
                       " WHERE client_id = %s AND is_open"),
            "python": ("SELECT cardinality(pgml_flow.predict_rows(%s, array_agg(to_json(f))))"
                       " FROM pgml_flow.complexity_features f WHERE client_id = %s AND is_open"),
        }
        bi = "SELECT count(prediction) FROM analytics.predictions(%s)"
        cpu = backend_cpu(conn)

        def add(path: str, figures: tuple[float, float | None, object]) -> None:
            seconds, cpu_seconds, n = figures
            totals[path][0] += seconds
            totals[path][1] = (None if cpu_seconds is None or totals[path][1] is None
                               else totals[path][1] + cpu_seconds)
            totals[path][2] += int(n or 0)  # type: ignore[call-overload]

        for client, model in models:
            for path, query in queries.items():
                add(path, best(conn, query, (model, client), repeat, cpu))
            conn.execute("SELECT set_config('pgml_flow.client_id', %s, false)", (str(client),))
            add("bi view", best(conn, bi, (name,), repeat, cpu))
            # a dashboard's next reads: once every prediction of the client is in the log
            # (one read that logs them all, uncapped), a read only probes for its sample
            log_everything(conn, client, bi, name)
            add("bi relog", best(conn, bi, (name,), repeat, cpu))
            # the same read in a read-only transaction (a BI tool's, a standby's): no log
            conn.execute("BEGIN READ ONLY")
            figures = best(conn, bi, (name,), repeat, cpu)
            add("bi nolog", figures)
            rows_of[client] = int(figures[2] or 0)  # type: ignore[call-overload]
            conn.execute("COMMIT")
            if has_index:
                # before revision 0016, in the same run: its index dropped, then rolled back
                conn.execute("BEGIN")
                conn.execute("DROP INDEX public.issues_open_idx")
                add("view -idx", best(conn, queries["view"], (model, client), repeat, cpu))
                conn.execute("SET transaction_read_only = on")
                add("nolog -idx", best(conn, bi, (name,), repeat, cpu))
                conn.execute("ROLLBACK")
        python_rate = totals["python"][2] / max(totals["python"][0], 1e-9)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; view: the"
              " feature view alone; bi nolog: the BI read in a read-only transaction;"
              " cpu: the backend's CPU time")
        for path, (seconds, cpu_seconds, rows) in totals.items():
            if not rows:
                continue
            rate = rows / max(seconds, 1e-9)
            print(f"{path:10} {rows:>7,} rows in {seconds * 1000:8.1f} ms: {rate:>10,.0f} rows/s"
                  f" ({rate / max(python_rate, 1e-9):5.1f}x the Python path)"
                  + (f"; cpu {cpu_seconds * 1000:7.1f} ms: {rows / max(cpu_seconds, 1e-9):>9,.0f}"
                     " rows/s" if cpu_seconds is not None else ""))

    if sessions > 0:
        for read_only in (True, False):
            seconds, cpu_seconds, rows = concurrent(url, name, rows_of, sessions, repeat,
                                                    read_only)
            label = "bi nolog" if read_only else "bi view"
            one_wall, one_cpu, one_rows = totals[label]
            print(f"concurrent: {sessions} sessions, {label}: {rows:,} rows in"
                  f" {seconds * 1000:.1f} ms: {rows / max(seconds, 1e-9):,.0f} rows/s (all"
                  " rows / the batch's wall time)"
                  + (f"; cpu of the {sessions} backends {cpu_seconds * 1000:.1f} ms:"
                     f" {rows / max(cpu_seconds, 1e-9):,.0f} rows/s"
                     if cpu_seconds is not None else "")
                  + f" [one session, the headline: {one_rows / max(one_wall, 1e-9):,.0f}"
                  + (f"; cpu {one_rows / max(one_cpu, 1e-9):,.0f}" if one_cpu else "")
                  + " rows/s]")


def log_everything(conn: psycopg.Connection, client: int, bi: str, name: str) -> None:
    """Log every prediction of one client's read: in one transaction, the log's sample
    size and the client's hourly cap lifted, one read, both put back as they were."""
    with conn.transaction():
        row = conn.execute("SELECT value FROM pgml_flow_settings"
                           " WHERE name = 'prediction_log_rows'").fetchone()
        cap = conn.execute("SELECT prediction_log_rows_per_hour FROM clients"
                           " WHERE client_id = %s", (client,)).fetchone()
        conn.execute("INSERT INTO pgml_flow_settings (name, value)"
                     " VALUES ('prediction_log_rows', '-1')"
                     " ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        conn.execute("UPDATE clients SET prediction_log_rows_per_hour = -1"
                     " WHERE client_id = %s", (client,))
        conn.execute(bi, (name,))
        if row is None:
            conn.execute("DELETE FROM pgml_flow_settings WHERE name = 'prediction_log_rows'")
        else:
            conn.execute("UPDATE pgml_flow_settings SET value = %s"
                         " WHERE name = 'prediction_log_rows'", (row[0],))
        conn.execute("UPDATE clients SET prediction_log_rows_per_hour = %s"
                     " WHERE client_id = %s", (cap[0] if cap else None, client))


def concurrent(url: str, name: str, rows_of: dict[int, int], sessions: int, repeat: int,
               read_only: bool) -> tuple[float, float | None, int]:
    """The best of ``repeat`` batches of ``sessions`` sessions reading at once, each its
    own clients (the largest first to the session with the fewest rows so far) through
    analytics.predictions, one read per client: the batch's wall seconds (all sessions
    started together, until the last one ends), the CPU seconds of their backends (None
    where unknown) and the rows read. A BI tool runs several queries at once; one
    session's figure says what a read costs, this one what the server does with its cores."""
    shares: list[list[int]] = [[] for _ in range(sessions)]
    loads = [0] * sessions
    for client, rows in sorted(rows_of.items(), key=lambda kv: -kv[1]):
        least = loads.index(min(loads))
        shares[least].append(client)
        loads[least] += rows
    conns = [psycopg.connect(url, autocommit=True) for _ in range(sessions)]
    try:
        cpus = [backend_cpu(c) for c in conns]
        best_wall, best_cpu, total = float("inf"), None, 0
        for _ in range(repeat):
            barrier = threading.Barrier(sessions + 1)

            def session(i: int, barrier: threading.Barrier) -> int:
                conn, n = conns[i], 0
                barrier.wait()
                for client in shares[i]:
                    conn.execute("SELECT set_config('pgml_flow.client_id', %s, false)",
                                 (str(client),))
                    if read_only:
                        conn.execute("BEGIN READ ONLY")
                    n += conn.execute("SELECT count(prediction) FROM analytics.predictions(%s)",
                                      (name,)).fetchone()[0]  # type: ignore[index]
                    if read_only:
                        conn.execute("COMMIT")
                return n

            before = [read() for read in cpus]
            with ThreadPoolExecutor(sessions) as pool:
                futures = [pool.submit(session, i, barrier) for i in range(sessions)]
                barrier.wait()
                start = time.perf_counter()
                total = sum(f.result() for f in futures)
                wall = time.perf_counter() - start
            after = [read() for read in cpus]
            used: float | None = None
            if None not in before and None not in after:
                used = sum((a or 0.0) - (b or 0.0) for a, b in zip(after, before, strict=True))
            best_wall = min(best_wall, wall)
            if used is not None:
                best_cpu = used if best_cpu is None else min(best_cpu, used)
        return best_wall, best_cpu, total
    finally:
        for conn in conns:
            conn.close()


if __name__ == "__main__":
    main()
