"""Story points: does the complexity spec's held-out share cost accuracy? (outer validation)

Run from the repository root (the embedded cluster must be running), niced::

    nice -n 10 .venv/bin/python bench/story_points_heldout.py --cache /tmp/h7/t2_rows.pkl

What it measures. The built-in complexity spec held out the newest ``test_size`` (0.25;
0.1 since this screen) of a client's rows: they decide promotion and are never learned
from. Story points drift
over time, so the newest rows may be the most useful to learn from; for lead time, cutting
the held-out share from 20 % to 5 % lowered validation MAE by 7 % (docs/models.md). This
screens the same for story points, for ``test_size`` 0.25, 0.15, 0.1, 0.05 and 0.0.

The rule (docs/models.md, "What the figures say"): decide on validation only. The test
split of the datasets is never read: the scratch database's evaluation view holds only the
``train`` and ``valid`` splits. Protocol ("outer validation"), per project of both story
point datasets:

* the project's ``train`` split rows (in file order, the creation order) are the client's
  training rows, its ``valid`` split rows the outer test;
* within the train rows, as :mod:`pgml_flow.selection` cuts them: the held-out rows are the
  newest ``ceil(n * test_size)``, the validation slice the ``ceil(before * 0.2)`` rows
  before them, the fit rows the rest;
* both candidates of the built-in spec (``classes``, then ``snap``, each as
  :func:`pgml_flow.selection.candidate_spec` makes it and :mod:`pgml_flow.engine` trains it,
  as ``pgml.train`` does) are trained on the fit rows and scored (MAE) on the validation
  slice; the lower is chosen (a tie goes to ``classes``, the first);
* the chosen one is refit on all rows before the held-out ones (all train rows when
  ``test_size`` is 0) and predicts the valid split: its MAE there is the spec's outer MAE.

Beside the spec as built: ``classes`` alone and ``snap`` alone (refit the same way), the
``median`` candidate (the spec's xgboost with no learning: the median of the rows before
the held-out ones) and the train split's Median as a constant (the published baseline).
Per dataset and ``test_size``: the mean outer MAE over the projects, and how many projects
have an outer MAE below the train-split Median's (ties do not count) and below it by at
least 5 %.

Data: in a scratch database (``pgmlflow_screen_t2``, dropped at the end) both datasets are
imported as ``pgml-flow evaluate`` imports them (as ``bench/story_points_screen.py``
does), and each client's rows of the complexity spec's training view are read with their
``dataset_split``; ``--cache`` keeps them in a pickle for the next run. The train and valid
counts are checked against the splits (Deep-SE: ``splits/*_3sets.txt``; both: train has
``floor(0.6n) - 1`` rows, valid ``floor(0.2n)``).

``--variants`` (instead of the table above; at the spec's ``test_size`` 0.1 only): the spec
with ONE change at a time, each judged exactly as the spec is (all its candidates trained on
the fit rows, the choice on the validation slice as :func:`pgml_flow.selection.slices` cuts
it, the first of equals winning, the chosen one refit on the rows before the held-out ones,
its MAE on the valid split). Each variant is the built-in spec's dict edited here, never
builtin.toml: ``classes`` with C 0.3 or 3 (1.0), with ``min_class`` 3 or 10 (5), with
tf-idf ``max_features`` 1000 or 4000 on title and description (2000); ``snap`` with
``n_estimators`` 300 (150) or ``max_depth`` 3 (2); ``validation_size`` 0.3 (0.2); and a
third candidate ``median`` after the two (the spec's xgboost with learning_rate 0, one tree:
the training median, snapped). One table: per variant and dataset, the mean outer MAE, the
projects below the train-split Median, the change of the mean against the unchanged spec,
and how many projects chose snap / median. ``--combine "A+B"`` adds variants A and B
together (their labels as the table prints them). The bar for adopting a change: the mean
lower by at least 1 % on both datasets and no fewer projects below the Median on either.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import pickle
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import story_points_screen as sps

SCRATCH = "pgmlflow_screen_t2"
TEST_SIZES = (0.25, 0.15, 0.1, 0.05, 0.0)
METHODS = ("spec (classes|snap)", "classes", "snap", "median")


@dataclass
class SplitProject:
    """One project's train and valid split rows (COLUMNS order, the target last), in file
    order, and the issue counts of each split the import stored (a count, never a row, of
    the test split)."""

    dataset: str
    name: str
    train: list[tuple[Any, ...]]
    valid: list[tuple[Any, ...]]
    counts: dict[str, int]


def load(cache: Path | None, keep: bool) -> list[SplitProject]:
    """Every project's train and valid rows (from ``cache`` when it exists)."""
    if cache is not None and cache.exists():
        with cache.open("rb") as f:
            found: list[dict[str, Any]] = pickle.load(f)  # plain data: any importer reads it
        return [SplitProject(**p) for p in found]
    projects = []
    for conn, dataset, name, client, rows in sps.read_clients(SCRATCH, keep, ["dataset_split"]):
        parts: dict[str, list[tuple[Any, ...]]] = {"train": [], "valid": []}
        order = []
        for r in rows:
            parts[str(r[-1])].append(tuple(r[:-1]))
            order.append(str(r[-1]))
        # the splits are chronological: every train row before every valid row
        assert order == sorted(order, key=["train", "valid"].index), name
        counts = {str(s): int(c) for s, c in conn.execute(
            "SELECT dataset_split, count(*) FROM issues WHERE client_id = %s "
            "GROUP BY 1", (client,))}
        projects.append(SplitProject(dataset, name, parts["train"], parts["valid"], counts))
    if cache is not None:
        with cache.open("wb") as f:
            pickle.dump([vars(p) for p in projects], f)
    return projects


def check_counts(projects: Sequence[SplitProject]) -> None:
    """The train and valid rows against the splits: the issues imported per split must be
    ``floor(0.6n) - 1`` and ``floor(0.2n)`` (and for Deep-SE the 0/1 columns of
    ``splits/<project>_3sets.txt``, only the train and valid columns counted); the rows read
    at most those (the training view leaves out issues without points), said when fewer."""
    for p in projects:
        n = sum(p.counts.values())
        expected = {"train": math.floor(0.6 * n) - 1, "valid": math.floor(0.2 * n)}
        got = {"train": len(p.train), "valid": len(p.valid)}
        problems = [f"{k}: read {got[k]}, imported {p.counts.get(k)}, "
                    f"floor rule {expected[k]}"
                    for k in got if not got[k] <= p.counts.get(k, 0) == expected[k]]
        dropped = {k: p.counts[k] - got[k] for k in got if p.counts.get(k, 0) > got[k]}
        if dropped and not problems:
            print(f"  {p.dataset} {p.name}: imported rows not in the training view (no "
                  f"points, or not a standard issue): {dropped}")
        if p.dataset == "deepse-storypoints":
            split_file = Path(sps.DATASETS[p.dataset]) / "splits" / f"{p.name}_3sets.txt"
            lines = split_file.read_text().split("\n")
            header = lines[0].split()
            flags = [line.split() for line in lines[1:] if line.strip()]
            for k in got:
                in_file = sum(1 for f in flags if f[header.index(k)] == "1")
                if in_file != p.counts.get(k):
                    problems.append(f"{k}: imported {p.counts.get(k)}, split file {in_file}")
        if problems:
            raise SystemExit(f"{p.dataset} {p.name}: " + "; ".join(problems))
    print(f"counts checked: {len(projects)} projects, train and valid imported as the splits "
          "say", flush=True)


def candidates() -> dict[str, Any]:
    """The built-in spec's candidates (name: the spec it makes), and ``median``: the
    spec's xgboost with no learning, as story_points_screen trains it."""
    import dataclasses

    from pgml_flow.selection import candidate_spec
    from pgml_models.specs import builtin_specs

    spec = builtin_specs()["complexity"]
    out = {str(c["name"]): candidate_spec(spec, c) for c in spec.candidates}
    assert list(out) == ["classes", "snap"], list(out)
    out["median"] = dataclasses.replace(spec, hyperparams=dict(sps.MEDIAN), candidates=())
    return out


def engine_mae(spec: Any, train_rows: Sequence[tuple[Any, ...]],
               test_rows: Sequence[tuple[Any, ...]]) -> float:
    """MAE on ``test_rows`` of the candidate ``spec`` trained on ``train_rows`` exactly as
    pgml.train trains it (the test rows last: ``test_sampling => 'last'``)."""
    from pgml_flow.engine.dataset import prepare_dataset
    from pgml_flow.engine.training import train

    rows = list(train_rows) + list(test_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = prepare_dataset("regression", sps.COLUMNS, rows, sps.TARGET,
                             test_size=float(len(test_rows)), test_sampling="last",
                             preprocess=dict(spec.preprocess), seed=spec.seed)
        assert ds.y_test is not None and len(ds.y_test) == len(test_rows)
        result = train("regression", spec.algorithm, ds, dict(spec.hyperparams),
                       seed=spec.seed)
    return float(result.metrics["mean_absolute_error"])


def project_scores(p: SplitProject, specs: dict[str, Any]
                   ) -> dict[float, dict[str, Any]]:
    """Per test_size: each method's outer MAE on the valid split, and the chosen name."""
    import dataclasses

    from pgml_flow.selection import slices

    out: dict[float, dict[str, Any]] = {}
    for test_size in TEST_SIZES:
        # cut as pgml_flow.selection cuts a client's rows, with this held-out share
        fit, val = slices(dataclasses.replace(specs["classes"], test_size=test_size),
                          len(p.train))
        before = p.train[: fit + val]
        scored = {k: engine_mae(specs[k], before[:fit], before[fit:])
                  for k in ("classes", "snap")}
        chosen = "snap" if scored["snap"] < scored["classes"] else "classes"
        outer = {k: engine_mae(specs[k], before, p.valid) for k in ("classes", "snap",
                                                                    "median")}
        out[test_size] = {"spec (classes|snap)": outer[chosen], **outer, "chosen": chosen,
                          "validation": scored, "rows": (fit, val, len(p.train) - fit - val)}
    return out


def median_baseline(p: SplitProject) -> float:
    """The outer MAE of the train split's Median as a constant."""
    y_train = [float(r[-1]) for r in p.train]
    y_valid = np.array([float(r[-1]) for r in p.valid])
    return sps.mae(y_valid, np.full(len(y_valid), statistics.median(y_train)))


# -- --variants: the spec with one change at a time, at test_size 0.1 ----------------------
VARIANT_TEST_SIZE = 0.1
UNCHANGED = "spec (unchanged)"


def _changed(candidate: str, hyperparams: dict[str, Any] | None = None,
             preprocess: dict[str, dict[str, Any]] | None = None) -> Callable[[Any], Any]:
    """A change of the spec: candidate ``candidate``'s hyperparams and per-column preprocess
    options merged onto its own (a column's options key by key)."""
    import dataclasses

    def change(spec: Any) -> Any:
        out = []
        for c in spec.candidates:
            c = copy.deepcopy(dict(c))
            if c.get("name") == candidate:
                c["hyperparams"] = {**dict(c.get("hyperparams", {})), **(hyperparams or {})}
                rules = dict(c.get("preprocess", {}))
                for column, options in (preprocess or {}).items():
                    rules[column] = {**dict(rules.get(column) or spec.preprocess[column]),
                                     **options}
                c["preprocess"] = rules
            out.append(c)
        assert [c["name"] for c in out] == [c["name"] for c in spec.candidates]
        return dataclasses.replace(spec, candidates=tuple(out))
    return change


def _validation_size(size: float) -> Callable[[Any], Any]:
    import dataclasses
    return lambda spec: dataclasses.replace(spec, validation_size=size)


def _median_candidate(spec: Any) -> Any:
    """A third candidate after the two: the spec's xgboost with learning_rate 0 (one tree:
    with no learning more trees change nothing), the training median, snapped."""
    import dataclasses
    median = {"name": "median", "hyperparams": {"n_estimators": 1, "learning_rate": 0.0},
              "preprocess": {"story_points": {"snap": True}}}
    return dataclasses.replace(spec, candidates=(*spec.candidates, median))


def _tfidf(n: int) -> dict[str, dict[str, Any]]:
    return {"title": {"max_features": n}, "description": {"max_features": n}}


VARIANTS: dict[str, Callable[[Any], Any]] = {
    UNCHANGED: lambda spec: spec,
    "classes C=0.3": _changed("classes", hyperparams={"C": 0.3}),
    "classes C=3": _changed("classes", hyperparams={"C": 3.0}),
    "classes min_class=3": _changed("classes", preprocess={"story_points": {"min_class": 3}}),
    "classes min_class=10": _changed("classes",
                                     preprocess={"story_points": {"min_class": 10}}),
    "classes tfidf 1000": _changed("classes", preprocess=_tfidf(1000)),
    "classes tfidf 4000": _changed("classes", preprocess=_tfidf(4000)),
    "snap n_estimators=300": _changed("snap", hyperparams={"n_estimators": 300}),
    "snap max_depth=3": _changed("snap", hyperparams={"max_depth": 3}),
    "validation_size=0.3": _validation_size(0.3),
    "+ median candidate": _median_candidate,
}


def variant_specs(combine: Sequence[str]) -> dict[str, Any]:
    """Each variant's spec (the built-in complexity spec with its change), and each
    ``combine`` entry (variant labels joined by ``+``, e.g. ``classes C=3+snap max_depth=3``)
    with all its changes."""
    from pgml_models.specs import builtin_specs

    spec = builtin_specs()["complexity"]
    assert spec.test_size == VARIANT_TEST_SIZE, spec.test_size
    out = {label: change(spec) for label, change in VARIANTS.items()}
    for combined in combine:
        labels = [s.strip() for s in combined.split("+") if s.strip()]
        unknown = [s for s in labels if s not in VARIANTS]
        if unknown:
            raise SystemExit(f"--combine: unknown variants {unknown}; known: {list(VARIANTS)}")
        s = spec
        for label in labels:
            s = VARIANTS[label](s)
        out[" + ".join(labels)] = s
    return out


def variant_scores(p: SplitProject, variants: dict[str, Any]
                   ) -> dict[str, tuple[float, str]]:
    """Per variant: the outer MAE on the valid split of the candidate its validation slice
    chooses (refit on the rows before the held-out ones), and that candidate's name. Each
    training is done once per project (a variant that leaves a candidate and the slices as
    the spec has them reuses the spec's)."""
    from pgml_flow.selection import candidate_spec
    from pgml_flow.selection import slices as selection_slices

    memo: dict[tuple[str, int, int, bool], float] = {}

    def mae(spec: Any, fit: int, end: int, outer: bool) -> float:
        key = (json.dumps([spec.algorithm, spec.hyperparams, spec.preprocess],
                          sort_keys=True, default=str), fit, end, outer)
        if key not in memo:
            memo[key] = engine_mae(spec, p.train[:fit],
                                   p.valid if outer else p.train[fit:end])
        return memo[key]

    out = {}
    for label, spec in variants.items():
        fit, val = selection_slices(spec, len(p.train))
        made = {str(c["name"]): candidate_spec(spec, c) for c in spec.candidates}
        scored = {k: mae(s, fit, fit + val, False) for k, s in made.items()}
        chosen = min(scored, key=lambda k: scored[k])  # the first of equals, as select
        out[label] = (mae(made[chosen], fit + val, fit + val, True), chosen)
    return out


def variants_table(projects: Sequence[SplitProject],
                   results: dict[tuple[str, str], dict[str, tuple[float, str]]],
                   medians: dict[tuple[str, str], float]) -> None:
    datasets = list(dict.fromkeys(p.dataset for p in projects))
    labels = list(next(iter(results.values())))
    print(f"\nvariants at test_size {VARIANT_TEST_SIZE:g}: mean outer MAE on the valid split, "
          "projects below the train-split Median, change of the mean against the spec")
    head = f"{'variant':34}"
    for d in datasets:
        n = sum(1 for p in projects if p.dataset == d)
        head += f" | {d.split('-')[0][:12] + f' ({n})':>16} {'below':>6} {'vs spec':>8}"
    print(head + " | snap/median chosen")
    for label in labels:
        line = f"{label:34}"
        chosen = []
        for d in datasets:
            keys = [(p.dataset, p.name) for p in projects if p.dataset == d]
            mean = statistics.fmean(results[k][label][0] for k in keys)
            ref = statistics.fmean(results[k][UNCHANGED][0] for k in keys)
            below = sum(1 for k in keys if results[k][label][0] < medians[k] - 1e-9)
            line += f" | {mean:16.3f} {below:>2} of {len(keys):<2} {100 * (mean / ref - 1):+7.2f}%"
            chosen.append(f"{sum(1 for k in keys if results[k][label][1] == 'snap')}/"
                          f"{sum(1 for k in keys if results[k][label][1] == 'median')}")
        print(line + " | " + " ".join(chosen))
    print(flush=True)


def run_variants(projects: Sequence[SplitProject], combine: Sequence[str],
                 per_project: bool) -> None:
    variants = variant_specs(combine)
    results, medians = {}, {}
    started = time.perf_counter()
    for p in projects:
        key = (p.dataset, p.name)
        results[key] = variant_scores(p, variants)
        medians[key] = median_baseline(p)
        r = results[key]
        print(f"  {p.dataset.split('-')[0]} {p.name}: Median {medians[key]:.3f}; spec "
              f"{r[UNCHANGED][0]:.3f}({r[UNCHANGED][1][0]}) "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        if per_project:
            print("    " + "; ".join(f"{k} {v:.3f}({c[0]})" for k, (v, c) in r.items()))
    variants_table(projects, results, medians)


def table(dataset: str, chosen: Sequence[SplitProject],
          results: dict[str, dict[float, dict[str, Any]]], medians: dict[str, float]) -> None:
    names = [p.name for p in chosen]
    base = statistics.fmean(medians[n] for n in names)
    print(f"\n{dataset}: outer MAE on the valid split, {len(names)} projects "
          f"(train-split Median: mean {base:.3f})")
    first = TEST_SIZES[0]
    print(f"{'test_size':>9}  {'method':20} {'mean':>7} {'below Median':>13} "
          f"{'by >= 5 %':>10} {'snap chosen':>12} {f'vs {first:g}: +/-':>13} "
          f"{'ratio':>6}")
    for test_size in TEST_SIZES:
        for m in METHODS:
            vals = [results[n][test_size][m] for n in names]
            below = sum(1 for n in names if results[n][test_size][m] < medians[n] - 1e-9)
            by5 = sum(1 for n in names if results[n][test_size][m] <= 0.95 * medians[n])
            snaps = (sum(1 for n in names if results[n][test_size]["chosen"] == "snap")
                     if m == METHODS[0] else None)
            extra = f"{snaps:>5} of {len(names)}" if snaps is not None else ""
            # paired with the same method at the spec's test_size: projects better / worse,
            # and the geometric mean of the per-project ratios (one project's scale does
            # not dominate it as it does the mean)
            ref = [results[n][first][m] for n in names]
            better = sum(1 for v, r in zip(vals, ref, strict=True) if v < r - 1e-9)
            worse = sum(1 for v, r in zip(vals, ref, strict=True) if v > r + 1e-9)
            ratio = math.exp(statistics.fmean(math.log(max(v, 1e-9) / max(r, 1e-9))
                                              for v, r in zip(vals, ref, strict=True)))
            print(f"{test_size:>9g}  {m:20} {statistics.fmean(vals):7.3f} "
                  f"{below:>6} of {len(names):<3} {by5:>4} of {len(names):<3} {extra:>10} "
                  f"{better:>6} / {worse:<4} {ratio:6.3f}")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, help="a pickle of the rows (made when absent)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--dataset", action="append", choices=list(sps.DATASETS),
                        help="only this dataset (default: both)")
    parser.add_argument("--project", action="append", default=[], help="only this project")
    parser.add_argument("--per-project", action="store_true",
                        help="print each project's figures as well")
    parser.add_argument("--variants", action="store_true",
                        help="at test_size 0.1, the spec with one change at a time instead")
    parser.add_argument("--combine", action="append", default=[],
                        help="with --variants, also these variants together (labels "
                             "joined by '+')")
    args = parser.parse_args()
    projects = [p for p in load(args.cache, args.keep)
                if (not args.dataset or p.dataset in args.dataset)
                and (not args.project or p.name in args.project)]
    check_counts(projects)
    if args.variants:
        run_variants(projects, args.combine, args.per_project)
        return
    specs = candidates()
    for dataset in dict.fromkeys(p.dataset for p in projects):
        chosen = [p for p in projects if p.dataset == dataset]
        started = time.perf_counter()
        results, medians = {}, {}
        for p in chosen:
            results[p.name] = project_scores(p, specs)
            medians[p.name] = median_baseline(p)
            r = results[p.name]
            line = " ".join(f"{t:g}:{r[t]['spec (classes|snap)']:.3f}({r[t]['chosen'][0]})"
                            for t in TEST_SIZES)
            print(f"  {p.name} ({len(p.train)} train, {len(p.valid)} valid): Median "
                  f"{medians[p.name]:.3f}; spec {line}", flush=True)
            if args.per_project:
                for t in TEST_SIZES:
                    print(f"    {t:g} rows fit/val/held {r[t]['rows']} validation "
                          + " ".join(f"{k} {v:.3f}" for k, v in r[t]["validation"].items())
                          + " outer " + " ".join(f"{m} {r[t][m]:.3f}" for m in METHODS[1:]))
        print(f"({time.perf_counter() - started:.0f} s)")
        table(dataset, chosen, results, medians)


if __name__ == "__main__":
    main()
