"""`pgml-flow bench train` judges pgml.train against the outside fit at its fastest thread
setting, and says which (issue 15, item 10).  No timing is run or asserted here: the
figures are made up, what is tested is how the benchmark reads them."""

from __future__ import annotations

import os

from pgml_flow.benchmarks import training
from pgml_flow.benchmarks.common import Figure


def test_targets_use_the_fastest_outside_setting_and_cpu_seconds() -> None:
    note = "idle, median of 5, load avg 0.3"
    figures = [
        Figure(training.OUTSIDE_THREADS.format(threads=1), "xgboost", 1347, 0.40, note),
        Figure(training.OUTSIDE_THREADS.format(threads=2), "xgboost", 1347, 2.31, note),
        Figure(training.OUTSIDE, "xgboost", 1347, 0.40,
               f"{note}, n_jobs 1: the fastest (n_jobs 2: 2.31 s)"),
        Figure(training.INSIDE, "xgboost", 1347, 0.50, note),
        Figure(training.OUTSIDE_CPU, "xgboost", 1347, 0.33, "idle, n_jobs 1"),
        Figure(training.INSIDE_CPU, "xgboost", 1347, 0.50, "idle"),
    ]
    found = {t.name: t for t in training.targets(figures)}
    single = found["pgml.train vs the same fit outside at its fastest (idle)"]
    assert single.measured == "1.25x (0.50 s vs 0.40 s, outside at n_jobs 1)" and single.met
    cpu = found["the same, in CPU seconds (idle)"]
    assert cpu.measured.startswith("1.52x") and cpu.met is False
    # the settings tried: one thread and the library's default (one per usable core)
    assert training.thread_settings()[0] == 1
    assert training.thread_settings()[-1] == len(os.sched_getaffinity(0))
    # CPU seconds of a process from /proc (here this one), None for a process not here
    assert (training._Cpu(os.getpid()).seconds() or 0) > 0
    assert training._Cpu(None).seconds() is None
