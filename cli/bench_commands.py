"""``pgml-flow bench ...``: benchmarks that print figures and save them as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.output import console, err_console, flow
from pgml_flow import benchmarks

RESULTS = Path("bench/results")
app = typer.Typer(help="Benchmarks that print figures (and save them as JSON).",
                  no_args_is_help=True)


@app.command("predict")
def predict(
    rows: Annotated[int, typer.Option(envvar="PGML_FLOW_BENCH_ROWS",
                                      help="Rows scored per measurement.")] = 100_000,
    out: Annotated[Path, typer.Option(
        envvar="PGML_FLOW_BENCH_DIR", help="Directory for the JSON results.")] = RESULTS,
) -> None:
    """Per-row pgml.predict and predict_batch throughput, and cold-start latency."""
    pf = flow()
    pf.require_current_schema()
    figures = benchmarks.predict_benchmark(pf.url, rows, lambda msg: err_console.print(msg))
    table = Table("benchmark", "model", "rows", "seconds", "rows/s", "µs/row",
                  title="pgml.predict: per row, batch, cold start")
    for f in figures:
        table.add_row(f.benchmark, f.model, f"{f.rows:,}", f"{f.seconds:.3f}",
                      f"{f.rows_per_second:,.0f}", f"{f.us_per_row:,.1f}")
    console.print(table)
    for model in dict.fromkeys(f.model for f in figures):
        speed = {f.benchmark: f.rows_per_second for f in figures if f.model == model}
        native = speed.get("predict per row (native)")
        python = speed.get("predict per row (python)")
        if native and python:
            console.print(f"{model}: native per-row scoring is {native / python:,.0f}x the "
                          "Python path")
    console.print(f"saved {benchmarks.save(figures, 'predict', out)}")
