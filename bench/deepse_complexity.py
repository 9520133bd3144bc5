"""Story points on real issues: the built-in complexity model on the 16 Deep-SE projects.

Run from the repository root (the embedded cluster must be running)::

    .venv/bin/python bench/deepse_complexity.py --path ../shared/datasets/deepse-storypoints

The same as ``pgml-flow evaluate complexity --dataset deepse-storypoints`` (the library is
:mod:`pgml_flow.evaluation`; docs/models.md#evaluation): in a scratch database
``pgmlflow_bench_deepse`` (dropped at the end unless ``--keep``) it imports all 16
projects (one client each; the two Talend ones, which Tawosi et al. withheld from their
replication for GDPR reasons, are marked), trains the complexity spec per client on the
shipped ``train`` and ``valid`` rows (its held-out rows are the newest of them; with
candidates, the choice is made on a validation slice before those), predicts the ``test``
rows, and prints the MAE per project beside the published numbers and the Mean and Median
of the train split (which equal ``reproduced_mean_median_baselines.csv``). ``--specs FILE``
evaluates another complexity spec. The table, CSV and plot go to
``bench/results/deepse-<time>/``, with a JSON of the figures and timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path

from pgml_flow.app import PgmlFlow
from pgml_flow.evaluation import report

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--path", default="../shared/datasets/deepse-storypoints",
                        help="the dataset's folder")
    parser.add_argument("--project", action="append", default=[],
                        help="only this project (repeatable; default: all 16)")
    parser.add_argument("--specs", action="append", default=[],
                        help="a spec file whose complexity spec replaces the built-in one")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    evaluation = PgmlFlow().evaluate(
        "complexity", "deepse-storypoints", Path(args.path), projects=args.project,
        spec_files=args.specs, keep=args.keep, scratch="pgmlflow_bench_deepse",
        progress=lambda text: print(text, flush=True))
    head = report.columns(evaluation)
    lines = [head, *report.rows(evaluation)]
    widths = [max(len(line[k]) for line in lines) for k in range(len(head))]
    for line in lines:
        print("  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                        for k, (c, w) in enumerate(zip(line, widths, strict=True))))
    for target in evaluation.targets:
        print(f"{'met' if target.met else 'NOT met'}: {target.goal}: {target.result}")
    folder = RESULTS / f"deepse-{stamp}"
    files = report.write(evaluation, folder)
    data = dataclasses.asdict(evaluation)
    data["spec"] = evaluation.spec.to_json()
    (folder / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(f"training: {evaluation.training_seconds:.1f} s for {len(evaluation.projects)} "
          f"clients; import {evaluation.import_seconds:.1f} s; results: "
          f"{', '.join(str(f.relative_to(RESULTS.parent.parent)) for f in files)}")


if __name__ == "__main__":
    main()
