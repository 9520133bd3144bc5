"""Screening of lead-time features on the validation split of TAWOS, outside the database.

Run from the repository root (the embedded cluster must be running)::

    nice -n 10 .venv/bin/python bench/lead_time_screen.py

The rule of docs/models.md#lead-time-tawos: feature sets and candidates are decided on
each project's **validation** split (its rows 60-80 %), with models fitted on the first
60 %, never on test. This is a mimic of the spec's machinery (``pgml_flow.selection``,
``pgml_flow/evaluation/lead_time.toml``) outside the database, which screens in minutes
what the real evaluation would take an hour to try:

1. the rows and the view's features come from the database: the dataset is imported
   once into the scratch database ``pgmlflow_screen_lead_time`` (kept for the next run;
   ``--reimport`` makes it again) and ``pgml_flow.lead_time_training`` is read with each
   row's split, the issue's title and description (joined at import from the story-point
   datasets beside it) and its place in the file;
2. per project, of the rows of the ``train`` split: the held-out rows are the newest 5 %,
   the validation slice the newest 25 % of the rest; each candidate fits the rows before
   it and is judged on it; the best is refitted on fit + validation slice (what
   ``pgml-flow`` trains) and predicts the ``valid`` split;
3. printed per variant: the mean validation MAE of log(1 + days) over the 29 projects, the
   projects at least 10 % below the train split's Median, and those below it.

The figures are ratios against the Median of the same run; nothing here is timed.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

SCRATCH = "pgmlflow_screen_lead_time"
NUMERIC = ["story_points", "open_backlog", "created_30d", "resolved_90d", "recent_log_lead",
           "recent_log_lead_30d", "fast_share_90d", "project_age_days", "type_log_lead",
           "type_log_lead_180d", "points_log_lead"]
CACHE = Path("/tmp") / f"{SCRATCH}.pkl"
#: the tokenizer of the spec's text features, close enough for screening (runs of two or
#: more word characters; docs/sql-api.md#text-features)
TOKENS = r"(?u)[^\W_]{2,}"


def load(reimport: bool) -> pd.DataFrame:
    """The training view's rows of every project, with split, order, title, description."""
    if CACHE.exists() and not reimport:
        frame: pd.DataFrame = pd.read_pickle(CACHE)
        return frame
    from pgml_flow.app import PgmlFlow
    from pgml_flow.database import with_dbname
    from pgml_flow.evaluation.run import scratch_database
    from pgml_flow.imports import DatasetSource
    from pgml_flow.imports import run as run_import
    from pgml_flow.shared import shared_path

    url = PgmlFlow().url
    root = shared_path("datasets", "tawos-resolution-time-esem2022")
    with psycopg.connect(with_dbname(url, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (SCRATCH,)).fetchone()
    if reimport or not exists:
        with scratch_database(url, SCRATCH, keep=True) as scratch, \
                psycopg.connect(scratch) as conn:
            report = run_import(conn, DatasetSource("tawos-resolution-time-esem2022", root))
            print(f"imported {report.rows:,} rows", flush=True)
    with psycopg.connect(with_dbname(url, SCRATCH)) as conn:
        cur = conn.execute(
            "SELECT c.slug AS project, i.dataset_split, "
            "       (i.attributes ->> 'source_row')::int AS source_row, i.title, i.description, "
            "       i.resolved_at, "
            "       f.* "
            "  FROM pgml_flow.lead_time_training f "
            "  JOIN public.issues i ON i.client_id = f.client_id AND i.issue_id = f.entity_id "
            "  JOIN public.clients c ON c.client_id = f.client_id")
        names = [d.name for d in cur.description or ()]
        frame = pd.DataFrame(cur.fetchall(), columns=names)
    frame = frame.sort_values(["project", "source_row"]).reset_index(drop=True)
    frame.to_pickle(CACHE)
    return frame


def word_history(frame: pd.DataFrame, column: str = "title", prior: float = 5.0,
                 min_count: int = 3) -> pd.Series:
    """Per issue: the mean, over the words of its ``column``, of the mean log(1 + days) of
    the client's issues with that word resolved before it was created, each shrunk to the
    client's history mean by ``prior`` pseudo-issues (words seen in fewer than
    ``min_count`` such issues are skipped); NaN without such words. Known at creation."""
    import re
    token = re.compile(TOKENS)
    out = pd.Series(np.nan, index=frame.index)
    for _, rows in frame.groupby("project", sort=False):
        events = []
        for idx, created, resolved, text in zip(rows.index, rows["created"], rows["resolved_at"],
                                                rows[column].fillna(""), strict=True):
            words = set(token.findall(text.lower()))
            v = math.log1p(max((resolved - created).total_seconds() / 86400, 0))
            events.append((created, 0, idx, words, v))
            events.append((max(resolved, created + pd.Timedelta(microseconds=1)), -1, idx,
                           words, v))
        events.sort(key=lambda e: (e[0], e[1]))
        sums: dict[str, list[float]] = {}
        total, count = 0.0, 0
        for _, kind, idx, words, v in events:
            if kind == 0:
                mean = total / count if count else np.nan
                found = [(sums[w][0] + prior * mean) / (sums[w][1] + prior)
                         for w in words if w in sums and sums[w][1] >= min_count]
                if found and count:
                    out[idx] = float(np.mean(found))
            else:
                total += v
                count += 1
                for w in words:
                    entry = sums.setdefault(w, [0.0, 0])
                    entry[0] += v
                    entry[1] += 1
    return out


def backlog_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Per issue, at its creation: log(1 + mean age in days) of the client's open issues,
    the share of them younger than 30 days, and the median log(1 + days) of the issues
    resolved in the 90 days before (the client's mean history when none)."""
    out = pd.DataFrame(np.nan, index=frame.index,
                       columns=["open_age", "open_young_share", "recent_median_90d"])
    for _, rows in frame.groupby("project", sort=False):
        events = []
        for idx, created, resolved in zip(rows.index, rows["created"], rows["resolved_at"],
                                          strict=True):
            v = math.log1p(max((resolved - created).total_seconds() / 86400, 0))
            events.append((created, 0, idx, created, v))
            events.append((max(resolved, created + pd.Timedelta(microseconds=1)), -1, idx,
                           created, v))
        events.sort(key=lambda e: (e[0], e[1]))
        opened: dict[Any, Any] = {}
        times: list[Any] = []
        values: list[float] = []
        for at, kind, idx, created, v in events:
            if kind == 0:
                ages = [(at - c).total_seconds() / 86400 for c in opened.values()]
                out.at[idx, "open_age"] = math.log1p(float(np.mean(ages))) if ages else 0.0
                out.at[idx, "open_young_share"] = float(np.mean([a < 30 for a in ages])) \
                    if ages else 0.0
                since = at - pd.Timedelta(days=90)
                recent = values[bisect.bisect_left(times, since):]
                out.at[idx, "recent_median_90d"] = float(np.median(recent)) if recent else \
                    frame.at[idx, "recent_log_lead"]
                opened[idx] = created
            else:
                opened.pop(idx, None)
                times.append(at)
                values.append(v)
    return out


@dataclass
class Variant:
    """One spec to screen: its candidates, each a function of (fit, judged) frames to
    predictions for judged."""

    name: str
    candidates: dict[str, Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]] = field(
        default_factory=dict)


def _types(fit: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The spec's one_hot of issue_type, learned on the fit rows."""
    kinds = sorted(fit["issue_type"].dropna().unique())
    def enc(f: pd.DataFrame) -> np.ndarray:
        return np.stack([(f["issue_type"] == k).to_numpy(float) for k in kinds], axis=1) \
            if kinds else np.zeros((len(f), 0))
    return enc(fit), enc(other)


def design(fit: pd.DataFrame, other: pd.DataFrame, text: dict[str, dict[str, Any]] | None,
           extra: tuple[str, ...] = (), numeric: bool = True) -> tuple[Any, Any]:
    """Feature matrices of the fit rows and the rows to predict."""
    a, b = _types(fit, other)
    cols_a, cols_b = [a], [b]
    if numeric:
        cols_a.append(fit[NUMERIC].to_numpy(float))
        cols_b.append(other[NUMERIC].to_numpy(float))
    for name in extra:
        cols_a.append(fit[[name]].to_numpy(float))
        cols_b.append(other[[name]].to_numpy(float))
    dense_a, dense_b = sp.csr_matrix(np.hstack(cols_a)), sp.csr_matrix(np.hstack(cols_b))
    parts_a, parts_b = [dense_a], [dense_b]
    for column, options in (text or {}).items():
        vec = TfidfVectorizer(token_pattern=TOKENS, lowercase=True, **options)
        texts = fit[column].fillna("")
        if (texts.str.len() > 0).sum() < 5:
            continue
        try:
            parts_a.append(vec.fit_transform(texts))
        except ValueError:  # an empty vocabulary
            continue
        parts_b.append(vec.transform(other[column].fillna("")))
    return sp.hstack(parts_a).tocsr(), sp.hstack(parts_b).tocsr()


def xgb(params: dict[str, Any], text: dict[str, dict[str, Any]] | None = None,
        extra: tuple[str, ...] = (), numeric: bool = True
        ) -> Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]:
    import xgboost
    base = {"objective": "reg:absoluteerror", "n_estimators": 100, "max_depth": 2,
            "learning_rate": 0.05, "random_state": 42, "n_jobs": 1, "verbosity": 0}
    def run(fit: pd.DataFrame, other: pd.DataFrame) -> np.ndarray:
        xa, xb = design(fit, other, text, extra, numeric)
        model = xgboost.XGBRegressor(**{**base, **params})
        model.fit(xa, fit["log_lead_time_days"].to_numpy(float))
        return np.asarray(model.predict(xb), dtype=float)
    return run


def median(fit: pd.DataFrame, other: pd.DataFrame) -> np.ndarray:
    return np.full(len(other), float(np.median(fit["log_lead_time_days"])))


def spec_variant(name: str, **kw: Any) -> Variant:
    """The built-in candidates (trees, stumps, median) with ``kw`` given to the trees."""
    stumps_kw = dict(kw)
    stumps_kw["params"] = {**kw.get("params", {}), "max_depth": 1, "min_child_weight": 5}
    return Variant(name, {"trees": xgb(**{"params": {}, **kw}), "stumps": xgb(**stumps_kw),
                          "median": median})


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y - p)))


def screen(frame: pd.DataFrame, variant: Variant) -> dict[str, tuple[float, float, str]]:
    """Per project: (validation MAE, Median's validation MAE, chosen candidate)."""
    out = {}
    for project, rows in frame.groupby("project", sort=True):
        train = rows[rows["dataset_split"] == "train"]
        valid = rows[rows["dataset_split"] == "valid"]
        n = len(train)
        before = n - math.ceil(n * 0.05)
        vsize = math.ceil(before * 0.25)
        fit, judged = train.iloc[: before - vsize], train.iloc[before - vsize: before]
        scores = {c: mae(judged["log_lead_time_days"].to_numpy(float), f(fit, judged))
                  for c, f in variant.candidates.items()}
        chosen = min(scores, key=lambda c: scores[c])  # first on a tie: dicts keep order
        refit = train.iloc[:before]
        y = valid["log_lead_time_days"].to_numpy(float)
        ours = mae(y, variant.candidates[chosen](refit, valid))
        base = mae(y, np.full(len(y), statistics.median(train["log_lead_time_days"])))
        out[str(project)] = (ours, base, chosen)
    return out


def summary(name: str, result: dict[str, tuple[float, float, str]]) -> str:
    mean = statistics.fmean(v[0] for v in result.values())
    base = statistics.fmean(v[1] for v in result.values())
    ten = sum(1 for v in result.values() if v[0] <= 0.9 * v[1])
    below = sum(1 for v in result.values() if v[0] < v[1])
    return (f"{name:<40} mean {mean:.3f} (Median {base:.3f}, ratio {mean / base:.3f})  "
            f"10% below {ten:2d}  below {below:2d}")


def variants() -> dict[str, Variant]:
    title: dict[str, Any] = {"max_features": 1000, "ngram_range": (1, 1), "min_df": 2}
    both: dict[str, dict[str, Any]] = {"title": title,
                                       "description": {"max_features": 1000, "min_df": 2}}
    ext = ("has_text", "description_words")
    small = {c: {"max_features": 200, "min_df": 5} for c in ("title", "description")}
    return {v.name: v for v in (
        spec_variant("spec"),
        spec_variant("+has_text,description_words", extra=ext),
        spec_variant("+tfidf title", text={"title": title}),
        spec_variant("+tfidf title,description", text=both),
        spec_variant("+tfidf title +has_text,words", text={"title": title}, extra=ext),
        spec_variant("+tfidf title 1-2 grams sublinear",
                     text={"title": {**title, "ngram_range": (1, 2), "sublinear_tf": True}}),
        spec_variant("+tfidf title,description 200 trees", text=both,
                     params={"n_estimators": 200}),
        spec_variant("+tfidf title,description 200 terms min_df 5", text=small),
        spec_variant("+word history of title", extra=("word_log_lead",)),
        spec_variant("+word history of title, filled", extra=("word_log_lead_fill",)),
        spec_variant("+word history of title and description",
                     extra=("word_log_lead", "word_log_lead_desc")),
        spec_variant("+open backlog age", extra=("open_age",)),
        spec_variant("+open backlog share under 30 days", extra=("open_young_share",)),
        spec_variant("+median of the 90 days before", extra=("recent_median_90d",)),
        with_candidate("spec + candidate trees with tfidf", "text trees", xgb({}, text=both)),
        with_candidate("spec + candidate trees with small tfidf", "text trees",
                       xgb({}, text=small)),
        with_candidate("spec + candidate L1 linear with tfidf", "text linear",
                       quantile(text=both)),
        with_candidate("spec + candidate text-only trees", "text only",
                       xgb({}, text=both, numeric=False)),
    )}


def with_candidate(name: str, candidate: str,
                   run: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]) -> Variant:
    """The spec's candidates and one more, listed before the median (the floor)."""
    spec = spec_variant(name)
    spec.candidates = {"trees": spec.candidates["trees"], "stumps": spec.candidates["stumps"],
                       candidate: run, "median": median}
    return spec


def quantile(text: dict[str, dict[str, Any]] | None = None, alpha: float = 0.001
             ) -> Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]:
    """An L1 median regression on max-abs scaled features (the spec's linear candidates)."""
    from sklearn.linear_model import QuantileRegressor
    from sklearn.preprocessing import MaxAbsScaler

    def run(fit: pd.DataFrame, other: pd.DataFrame) -> np.ndarray:
        xa, xb = design(fit, other, text)
        scaler = MaxAbsScaler().fit(xa)
        model = QuantileRegressor(quantile=0.5, alpha=alpha, solver="highs")
        model.fit(scaler.transform(xa), fit["log_lead_time_days"].to_numpy(float))
        return np.asarray(model.predict(scaler.transform(xb)), dtype=float)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reimport", action="store_true",
                        help="import the dataset again into the scratch database and read "
                             "its rows again (they are cached in /tmp between runs)")
    parser.add_argument("--variant", action="append", default=[],
                        help="only this variant (repeatable)")
    parser.add_argument("--per-project", action="store_true")
    args = parser.parse_args()
    frame = load(args.reimport)
    frame["has_text"] = (frame["title"].fillna("").str.len() > 0).astype(float)
    frame["description_words"] = frame["description"].fillna("").str.count(r"\S+").astype(float)
    frame["word_log_lead"] = word_history(frame)
    frame["word_log_lead_desc"] = word_history(frame, "description")
    frame["word_log_lead_fill"] = frame["word_log_lead"].fillna(frame["type_log_lead"])
    frame = frame.join(backlog_history(frame))
    print(f"{len(frame):,} rows, {frame['project'].nunique()} projects, "
          f"{int(frame['has_text'].sum()):,} with a title", flush=True)
    chosen = variants()
    for name, variant in chosen.items():
        if args.variant and name not in args.variant:
            continue
        result = screen(frame, variant)
        print(summary(name, result), flush=True)
        if args.per_project:
            for project, (ours, base, cand) in result.items():
                print(f"    {project:<22} {ours:.3f} {base:.3f} {ours / base:.2f} {cand}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
