"""Which learner the ICSE 2014 merge-decision replication uses: trees, and boosted trees.

Run from the repository root::

    .venv/bin/python bench/merge_decision_trees.py \
        --path ../shared/datasets/gousios-pullreqs-icse2014
    .venv/bin/python bench/merge_decision_trees.py \
        --path ../shared/datasets/gousios-pullreqs-icse2014 --learners --runs 10

Gousios, Pinzger and van Deursen (ICSE 2014) trained R's ``randomForest`` with its
defaults, 500 trees, on the paper's 16 features. ``pgml-flow evaluate rework --dataset
gousios-pullreqs-icse2014`` trained 100 before it trained boosted trees (see
``--learners``), because each of its 10 runs is a training that pgml.train stores, and 500
fully grown trees on 75,000 rows make a model five times the size and the time. By
default this measures what 100 trees cost in AUC against ``--trees``, on
the protocol's draws (a random half of the pull requests, 90/10 at random), outside the
database: scikit-learn's random forest (what pgml.train runs) with 100 and with
``--trees`` trees on the same rows, and prints the AUC of each, the fit time and the
pickled size as ratios against 100 trees measured in the same run. The dataset is read
from ``--path`` at run time.

``--learners``: the protocol fixes the data, the features and the split, not the learner.
On the same draws, the random forest of 100 trees (the baseline, what the spec trained
before) against boosted trees with the settings of the evaluation spec ``merge_decision``
(read from pgml_flow/evaluation/rework.toml, so the figures are the spec's) and lightgbm
with 63 leaves, each printed with its AUC, fit time and model size as ratios against the
forest's. ``--with-commits-only``: only the pull requests with at least one commit
(166,908 rows), the nearest we found to the paper's 166,884: its R code at the time of
the data (R/utils.R ``load.data``) drops rows without ``src_churn`` or ``intra_branch``,
and these files have none, so its filter is not known; this shows whether such a filter
moves the AUC.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import pickle
import random
import time
import tomllib
from pathlib import Path
from typing import Any

SPECS = Path(__file__).resolve().parent.parent / "pgml_flow" / "evaluation" / "rework.toml"

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


def _learners() -> dict[str, Any]:
    """The baseline forest, the evaluation spec's boosted trees and lightgbm, unfitted."""
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier

    spec = tomllib.loads(SPECS.read_text())["models"]["merge_decision"]
    if spec["algorithm"] != "xgboost":
        raise SystemExit(f"{SPECS}: merge_decision is no longer xgboost; update this bench")
    return {
        "random forest, 100 trees": RandomForestClassifier(
            100, max_features="sqrt", min_samples_leaf=1, n_jobs=2, random_state=42),
        "xgboost (the spec)": xgboost.XGBClassifier(**spec["hyperparams"],
                                                    random_state=spec.get("seed", 42)),
        "lightgbm, 63 leaves": lightgbm.LGBMClassifier(
            n_estimators=1000, num_leaves=63, learning_rate=0.03, min_child_samples=5,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.8, n_jobs=2,
            random_state=42, verbose=-1),
    }


def _size(model: Any) -> float:
    """MB as stored: xgboost and lightgbm in their own format, scikit-learn pickled."""
    if hasattr(model, "get_booster"):
        return len(model.get_booster().save_raw("ubj")) / 1e6
    if hasattr(model, "booster_"):
        return len(model.booster_.model_to_string().encode()) / 1e6
    return len(pickle.dumps(model)) / 1e6


def compare_learners(x: list[list[float]], y: list[int], runs: int) -> None:
    """Each learner on the same draws; means over the runs at the end."""
    from sklearn.metrics import roc_auc_score

    aucs: dict[str, list[float]] = {}
    for run in range(1, runs + 1):
        order = random.Random(run).sample(range(len(y)), len(y) // 2)
        cut = int(0.9 * len(order))
        train, test = order[:cut], order[cut:]
        base: tuple[float, float] | None = None
        for name, model in _learners().items():
            started = time.perf_counter()
            model.fit([x[i] for i in train], [y[i] for i in train])
            seconds = time.perf_counter() - started
            auc = roc_auc_score([y[i] for i in test],
                                model.predict_proba([x[i] for i in test])[:, 1])
            aucs.setdefault(name, []).append(auc)
            size = _size(model)
            base = base or (seconds, size)
            print(f"run {run}: {name}: AUC {auc:.4f}, fit x{seconds / base[0]:.2f} "
                  f"({seconds:.0f} s), model x{size / base[1]:.3f} ({size:.1f} MB)",
                  flush=True)
    for name, found in aucs.items():
        print(f"{name}: mean AUC {sum(found) / len(found):.4f} over {len(found)} runs "
              f"({min(found):.4f} to {max(found):.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--learners", action="store_true",
                        help="forest against boosted trees on the same draws")
    parser.add_argument("--with-commits-only", action="store_true",
                        help="only pull requests with at least one commit")
    args = parser.parse_args()

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    x, y = load(args.path)
    if args.with_commits_only:
        kept = [i for i, row in enumerate(x) if row[FEATURES.index("num_commits")] > 0]
        x, y = [x[i] for i in kept], [y[i] for i in kept]
    print(f"{len(y):,} pull requests, {sum(y) / len(y):.1%} merged")
    if args.learners:
        compare_learners(x, y, args.runs)
        return
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
