"""How many trees the ICSE 2014 merge-decision replication needs: 100 against R's 500.

Run from the repository root::

    .venv/bin/python bench/merge_decision_trees.py \
        --path ../shared/datasets/gousios-pullreqs-icse2014

Gousios, Pinzger and van Deursen (ICSE 2014) trained R's ``randomForest`` with its
defaults, 500 trees, on the paper's 16 features. ``pgml-flow evaluate rework --dataset
gousios-pullreqs-icse2014`` trains 100 (pgml_flow/evaluation/rework.toml), because each of
its 10 runs is a training that pgml.train stores, and 500 fully grown trees on 75,000 rows
make a model five times the size and the time. This measures what that costs in AUC, on
the protocol's draws (a random half of the pull requests, 90/10 at random), outside the
database: scikit-learn's random forest (what pgml.train runs) with 100 and with
``--trees`` trees on the same rows, and prints the AUC of each, the fit time and the
pickled size as ratios against 100 trees measured in the same run. The dataset is read
from ``--path`` at run time.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import pickle
import random
import time
from pathlib import Path

#: the paper's model (gousiosg/pullreqs R/merge-decision.R), the spec's features
FEATURES = ("team_size", "num_commits", "files_changed", "perc_external_contribs", "sloc",
            "src_churn", "test_churn", "num_comments", "commits_on_files_touched",
            "test_lines_per_kloc", "prev_pullreqs", "requester_succ_rate", "main_team_member",
            "conflict", "forward_links", "num_participants")


def _value(cell: str) -> float:
    if cell in ("true", "false"):
        return float(cell == "true")
    return float(cell) if cell not in ("", "NA") else -1.0


def load(root: Path) -> tuple[list[list[float]], list[int]]:
    x: list[list[float]] = []
    y: list[int] = []
    for path in sorted((root / "data").glob("*.csv.gz")):
        with gzip.open(path, "rt", newline="") as handle:
            for row in csv.DictReader(handle):
                x.append([_value(row[f]) for f in FEATURES])
                y.append(int(bool(row["merged_at"])))
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    x, y = load(args.path)
    print(f"{len(y):,} pull requests, {sum(y) / len(y):.1%} merged")
    for run in range(1, args.runs + 1):
        order = random.Random(run).sample(range(len(y)), len(y) // 2)
        cut = int(0.9 * len(order))
        train, test = order[:cut], order[cut:]
        base: tuple[float, float] | None = None
        for trees in (100, args.trees):
            started = time.perf_counter()
            model = RandomForestClassifier(trees, max_features="sqrt", min_samples_leaf=1,
                                           n_jobs=2, random_state=42)
            model.fit([x[i] for i in train], [y[i] for i in train])
            seconds = time.perf_counter() - started
            auc = roc_auc_score([y[i] for i in test],
                                model.predict_proba([x[i] for i in test])[:, 1])
            size = len(pickle.dumps(model)) / 1e6
            base = base or (seconds, size)
            print(f"run {run}: {trees} trees: AUC {auc:.4f}, fit x{seconds / base[0]:.1f} "
                  f"({seconds:.0f} s), model x{size / base[1]:.1f} ({size:.0f} MB)")


if __name__ == "__main__":
    main()
