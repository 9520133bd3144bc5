"""Per-row ``pgml.predict`` in SQL (native against the Python path) and ``predict_batch``.

Per-row figures are for one backend on one core (no parallel workers): ``SELECT
sum(pgml.predict(project, features)) FROM rows``, and for models whose ROW form is native
the same rows as records (``pgml.predict(project, r)`` over a subquery with the training
view's column names: the record is formed, then read by name and preprocessed in C).
The Python path (``pgml._py_predict``, what serves models without a native file) is two
to four orders of magnitude slower, so it is measured on the first rows only, sized to
take about ``PYTHON_SECONDS``; the figure names how many rows it scored.
"""

from __future__ import annotations

from pgml_flow.benchmarks.common import (
    Figure,
    Progress,
    Workload,
    query,
    quiet,
    sample_size,
    timed,
)

#: most rows the Python path scores as the baseline of a native run
PYTHON_SAMPLE_ROWS = 5_000
#: about how long the Python-path sample should take
PYTHON_SECONDS = 3.0
#: rows of the probe that warms the Python path and sizes its sample
PYTHON_PROBE_ROWS = 100
PER_ROW_NATIVE = "predict per row (native)"
PER_ROW_PYTHON = "predict per row (python)"
PER_ROW_NATIVE_ROW = "predict per row, ROW form (native)"
SCAN_ONLY = "scan only (no predict)"
BATCH = "predict_batch"


def per_row(work: Workload, progress: Progress = quiet, repeat: int = 2) -> list[Figure]:
    """Per-row scoring of every model of ``work`` over all its rows, and the Python path."""
    figures: list[Figure] = []
    rows = work.rows
    with work.connect() as conn:
        conn.execute(query("one_core"))
        scan = min(timed(conn, "scan_only", {"rows": rows}) for _ in range(repeat))
        figures.append(Figure(SCAN_ONLY, "-", rows, scan,
                              "scan + detoast, part of all"))
        for model in work.models.values():
            params = {"project": model.project, "rows": rows}
            progress(f"{model.name}: per-row pgml.predict over {rows:,} rows")
            conn.execute(query("warm_predict"), params)  # load the model in this backend
            seconds = min(timed(conn, "predict_per_row", params) for _ in range(repeat))
            if not model.native:
                figures.append(Figure(PER_ROW_PYTHON, model.name, rows, seconds,
                                      "no native file"))
                continue
            figures.append(Figure(PER_ROW_NATIVE, model.name, rows, seconds,
                                  f"best of {repeat}"))
            row_native = conn.execute(query("row_form_native"),
                                      {"model_id": model.model_id}).fetchone()
            if row_native and row_native[0]:
                progress(f"{model.name}: per-row pgml.predict(project, record) over {rows:,} rows")
                conn.execute(query("predict_row_per_row"), {**params, "rows": 1})  # warm
                seconds = min(timed(conn, "predict_row_per_row", params) for _ in range(repeat))
                figures.append(Figure(PER_ROW_NATIVE_ROW, model.name, rows, seconds,
                                      f"best of {repeat}, record read by name"))
            probe = min(rows, PYTHON_PROBE_ROWS)
            progress(f"{model.name}: the Python path (pgml._py_predict), sampled")
            conn.execute(query("warm_python_predict"), params)  # import, load the model
            sample = sample_size(
                rows, probe, timed(conn, "python_predict_per_row", {**params, "rows": probe}),
                PYTHON_SAMPLE_ROWS, PYTHON_SECONDS)
            python = timed(conn, "python_predict_per_row", {**params, "rows": sample})
            figures.append(Figure(PER_ROW_PYTHON, model.name, sample, python,
                                  f"sample of {sample:,} rows"))
    return figures


def batch(work: Workload, progress: Progress = quiet) -> list[Figure]:
    """``pgml.predict_batch(model_id, all rows flattened)`` for every model of ``work``."""
    figures: list[Figure] = []
    with work.connect() as conn:
        conn.execute(query("one_core"))
        for model in work.models.values():
            progress(f"{model.name}: predict_batch over {work.rows:,} rows")
            seconds = timed(conn, "predict_batch",
                            {"model_id": model.model_id, "rows": work.rows})
            figures.append(Figure(BATCH, model.name, work.rows, seconds,
                                  "with array_agg"))
    return figures


def speedups(figures: list[Figure]) -> dict[str, float]:
    """Native per-row rows/s over the Python path's, per model."""
    out: dict[str, float] = {}
    for model in dict.fromkeys(f.model for f in figures):
        speed = {f.benchmark: f.rows_per_second for f in figures if f.model == model}
        if PER_ROW_NATIVE in speed and PER_ROW_PYTHON in speed:
            out[model] = speed[PER_ROW_NATIVE] / speed[PER_ROW_PYTHON]
    return out
