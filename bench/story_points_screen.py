"""Story points: screen new candidate ideas on the validation slices pgml-flow cuts.

Run from the repository root (the embedded cluster must be running), niced, since it
fits many small models outside the database::

    nice -n 10 .venv/bin/python bench/story_points_screen.py --cache /tmp/sp_rows.pkl

Why outside the database: a candidate is worth building into ``pgml.train`` (and the C
scorer) only if it wins where the built-in spec's choice is made, and screening a dozen
variants in Python costs minutes (about 3 per dataset on 2 shared cores) where a dozen
``pgml-flow evaluate`` runs cost an hour.
The rule (docs/models.md, "What the figures say"): decide on validation only. The test
split is never read here.

1. Data: in a scratch database (``pgmlflow_screen_sp``, dropped at the end) both story
   point datasets are imported as ``pgml-flow evaluate`` imports them, and each client's
   rows of the complexity spec's training view (the ``train`` and ``valid`` splits, in
   file order) are read, with every feature column of the built-in spec. ``--cache``
   keeps them in a pickle for the next run.
2. Slices: as :mod:`pgml_flow.selection` cuts them: the newest ``test_size`` (0.25) rows
   are the held-out ones (not used here), ``validation_size`` (0.2) of the rows before
   them the validation slice, the rest the fit rows.
3. Baselines, exactly as ``pgml.train`` trains them (:mod:`pgml_flow.engine`: the spec's
   own preprocessing, xgboost, snap): the built-in candidates ``snap`` and ``median``.
4. Ideas (each fitted on the fit rows only, scored on the validation slice):

   * ``dist``: a multiclass classifier over the client's own point values (classes with
     fewer than ``--min-class`` fit rows merged into their nearest frequent neighbour on
     the scale), predicting the MAE-optimal point of its class probabilities: the
     weighted median, which is the argmin over the scale of the expected absolute error;
     ``+prior w``: the probabilities mixed with the fit rows' class frequencies (weight
     ``w``). Two classifiers: xgboost ``multi:softprob`` on the spec's encoded features
     (its native form exists) and a logistic regression on tf-idf of title and
     description plus one-hot issue type and components.
   * ``l1 boost``: xgboost absolute error started at the median with a tiny learning
     rate, few trees and heavy regularisation, snapped.
   * ``recency``: sample weights halving every ``h`` of the fit rows (newest weighs 1),
     for the median, snap and ``dist xgb``.

Per idea: the mean validation MAE over each dataset's projects and the count of projects
whose validation MAE is below the ``median`` candidate's (ties do not count), beside
``snap`` and ``median``. ``--nested`` judges the idea as the spec would use it, one more
candidate: ``dist logreg`` on the spec's columns encoded as ``pgml.train`` encodes them
(``DIST_PREPROCESS``), the same through ``pgml.train``'s ``classes`` target option (which
must give the same figure), and the per-client choice among ``snap``, ``median`` (and
``dist``), ``dist`` or ``median``, ``dist`` or ``snap`` (the built-in spec's since), made
on an inner slice (the newest ``validation_size`` of the fit rows), the chosen one scored
on the validation slice, so that a choice is never judged on the rows it was made on. The
figures of 2026-12-02 are in docs/models.md ("What the figures say").
``--embeddings`` (needs ``pip install wordllama``; its 256-d weights and tokenizer ship in
the wheel and are read offline, nothing is downloaded) screens, beside ``snap``, ``median``
and ``dist logreg``: ``dist logreg`` on the embedding of title and of description (or of
"title. description") plus one-hot type and components, on tf-idf plus the embeddings, and
``knn emb``: the median points of the k nearest fit rows by cosine, shrunk halfway to the
fit rows' median, snapped.
"""

from __future__ import annotations

import argparse
import math
import pickle
import statistics
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = {
    "deepse-storypoints": "../shared/datasets/deepse-storypoints",
    "tawos-storypoints-tse2023": "../shared/datasets/tawos-storypoints-tse2023",
}
COLUMNS = [("issue_type", "text"), ("priority", "text"), ("components", "text[]"),
           ("labels", "text[]"), ("title", "text"), ("description", "text"),
           ("title_length", "real"), ("description_words", "real"),
           ("story_points", "real")]
TARGET = "story_points"


@dataclass
class Project:
    dataset: str
    name: str
    rows: list[tuple[Any, ...]]

    @property
    def y(self) -> np.ndarray:
        return np.array([float(r[-1]) for r in self.rows])


def read_clients(database: str, keep: bool, extra: Sequence[str] = ()
                 ) -> Iterator[tuple[Any, str, str, int, list[tuple[Any, ...]]]]:
    """Both datasets imported as ``pgml-flow evaluate`` imports them, in the scratch
    ``database``; per project: the connection, the dataset, the project, its client id and
    its rows of the complexity spec's training view (``COLUMNS``, then ``extra``) in file
    order. The view holds the ``train`` and ``valid`` splits only: never a test row."""
    import psycopg
    from psycopg import sql

    from pgml_flow.app import PgmlFlow
    from pgml_flow.evaluation import run as evaluation_run
    from pgml_flow.evaluation.registry import find
    from pgml_flow.imports import DatasetSource
    from pgml_flow.imports import datasets as known
    from pgml_flow.imports import run as run_import
    from pgml_models.specs import get_spec

    app = PgmlFlow()
    spec = get_spec(app.model_specs([]), "complexity")
    with evaluation_run.scratch_database(app.url, database, keep=keep) as url, \
            psycopg.connect(url) as conn:
        for dataset, folder in DATASETS.items():
            benchmark = find("complexity", dataset)
            assert set(benchmark.train_splits) == {"train", "valid"}, benchmark.train_splits
            root = Path(folder)
            names = (benchmark.default_projects(root) if benchmark.default_projects
                     else sorted(known.DATASETS[dataset].projects(root)))
            run_import(conn, DatasetSource(dataset, root, tuple(names)))
            evaluation_run._views(conn, spec, benchmark)
            view = sql.Identifier("pgml_flow_evaluation", f"{spec.name}_training")
            query = sql.SQL("SELECT {cols} FROM {view} WHERE client_id = %(c)s "
                            "ORDER BY source_row").format(
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in
                                        [*(c for c, _ in COLUMNS), *extra]), view=view)
            for name in names:
                slug = known.DATASETS[dataset].project(name).slug
                row = conn.execute("SELECT client_id FROM clients WHERE slug = %s",
                                   (slug,)).fetchone()
                assert row is not None
                client = int(row[0])
                yield (conn, dataset, name, client,
                       [tuple(r) for r in conn.execute(query, {"c": client})])
            print(f"read {dataset}: {len(names)} projects", flush=True)


def load(cache: Path | None, keep: bool) -> list[Project]:
    """Every project's training rows, in split order (from ``cache`` when it exists)."""
    if cache is not None and cache.exists():
        with cache.open("rb") as f:
            found: list[Project] = pickle.load(f)
        return found
    projects = [Project(dataset, name, rows)
                for _, dataset, name, _, rows in read_clients("pgmlflow_screen_sp", keep)]
    if cache is not None:
        with cache.open("wb") as f:
            pickle.dump(projects, f)
    return projects


def slices(n: int, test_size: float = 0.25, validation_size: float = 0.2) -> tuple[int, int]:
    """(fit rows, validation rows), as pgml_flow.selection.slices cuts ``n`` rows."""
    before = n - math.ceil(n * test_size)
    validation = math.ceil(before * validation_size)
    return before - validation, validation


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float))))


# -- the slices, encoded as pgml.train encodes them ---------------------------------------
@dataclass
class Slices:
    """One project's fit and validation rows: raw, and encoded by the spec's preprocess."""

    project: Project
    fit_rows: list[tuple[Any, ...]]
    val_rows: list[tuple[Any, ...]]
    x_fit: np.ndarray
    x_val: np.ndarray
    y_fit: np.ndarray
    y_val: np.ndarray
    dataset: Any  # pgml_flow.engine.dataset.Dataset, with snap


def cut(project: Project, preprocess: dict[str, Any], seed: int) -> Slices:
    """The project's fit and validation slices as pgml-flow cuts them."""
    fit, val = slices(len(project.rows))
    return cut_at(project, fit, val, preprocess, seed)


def cut_at(project: Project, fit: int, val: int, preprocess: dict[str, Any],
           seed: int) -> Slices:
    """:func:`cut` with the slices given (an inner split of the fit rows)."""
    from pgml_flow.engine.dataset import prepare_dataset

    rows = project.rows[: fit + val]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = prepare_dataset("regression", COLUMNS, rows, TARGET, test_size=float(val),
                             test_sampling="last",
                             preprocess={**preprocess, TARGET: {"snap": True}}, seed=seed)
    y = project.y[: fit + val]
    return Slices(project, rows[:fit], rows[fit:], ds.x_train, ds.x_test, y[:fit], y[fit:], ds)


def engine_mae(s: Slices, algorithm: str, hyperparams: dict[str, Any], seed: int,
               snap: bool) -> float:
    """A candidate's validation MAE exactly as pgml.train scores it (the selection)."""
    import dataclasses

    from pgml_flow.engine.targets import TargetOptions
    from pgml_flow.engine.training import train

    ds = s.dataset if snap else dataclasses.replace(s.dataset, target=TargetOptions())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train("regression", algorithm, ds, hyperparams, seed=seed)
    value = result.metrics.get("mean_absolute_error")
    assert value is not None
    return float(value)


# -- helpers of the ideas ------------------------------------------------------------------
def snap_to(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    from pgml_flow.engine.targets import snap

    return np.asarray(snap(values, np.asarray(scale, float)))


def recency(n: int, half_life: float | None) -> np.ndarray:
    """Weights of ``n`` rows in time order: the newest 1, halving every ``half_life`` rows
    (a share of ``n`` when at most 1); all 1 when None."""
    if half_life is None:
        return np.ones(n)
    h = half_life * n if half_life <= 1 else half_life
    age = np.arange(n)[::-1]
    return np.power(0.5, age / h)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    c = np.cumsum(w)
    return float(v[np.searchsorted(c, 0.5 * c[-1], side="left")])


def merge_classes(y: np.ndarray, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(class values, class index of each row): values with fewer than ``min_rows`` rows
    go to the nearest value on the scale that has enough (the smaller on a tie)."""
    values, counts = np.unique(y, return_counts=True)
    kept = values[counts >= min_rows]
    if len(kept) == 0:
        kept = values[[int(np.argmax(counts))]]
    nearest = {float(v): float(kept[np.argmin(np.abs(kept - v) + 1e-9 * (kept > v))])
               for v in values}
    mapped = np.array([nearest[float(v)] for v in y])
    return kept, np.searchsorted(kept, mapped)


def mae_optimal(proba: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the scale value with the least expected absolute error under ``proba``
    (columns in ``values`` order, sorted): the distribution's (lower) median."""
    c = np.cumsum(proba, axis=1)
    idx = (c < 0.5 * c[:, -1:] - 1e-12).sum(axis=1)
    return values[np.minimum(idx, len(values) - 1)]


def text_matrix(fit: Sequence[tuple[Any, ...]], val: Sequence[tuple[Any, ...]]
                ) -> tuple[Any, Any]:
    """tf-idf (1-2 grams, sublinear) of title and of description, plus one-hot issue type
    and components, fitted on the fit rows: a sparse (fit, val) pair."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    blocks_fit, blocks_val = [], []
    for k in (4, 5):
        vec = TfidfVectorizer(ngram_range=(1, 2), max_features=2000, sublinear_tf=True,
                              min_df=2)
        blocks_fit.append(vec.fit_transform([r[k] or "" for r in fit]))
        blocks_val.append(vec.transform([r[k] or "" for r in val]))
    onehot_fit, onehot_val = onehot_matrix(fit, val)
    blocks_fit.append(onehot_fit)
    blocks_val.append(onehot_val)
    return sparse.hstack(blocks_fit).tocsr(), sparse.hstack(blocks_val).tocsr()


def onehot_matrix(fit: Sequence[tuple[Any, ...]], val: Sequence[tuple[Any, ...]]
                  ) -> tuple[Any, Any]:
    """One-hot issue type and components (the columns ``dist logreg`` uses besides the
    text), fitted on the fit rows: a sparse (fit, val) pair."""
    from scipy import sparse
    from sklearn.preprocessing import MultiLabelBinarizer

    blocks_fit, blocks_val = [], []
    for k in (0, 2):
        def items(r: tuple[Any, ...], k: int = k) -> list[str]:
            v = r[k]
            return [] if v is None else ([v] if isinstance(v, str) else list(v))
        mlb = MultiLabelBinarizer()
        mlb.fit([items(r) for r in fit])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks_fit.append(sparse.csr_matrix(mlb.transform([items(r) for r in fit])))
            blocks_val.append(sparse.csr_matrix(mlb.transform([items(r) for r in val])))
    return sparse.hstack(blocks_fit).tocsr(), sparse.hstack(blocks_val).tocsr()


# -- the screen ----------------------------------------------------------------------------
SNAP = {"objective": "reg:absoluteerror", "n_estimators": 150, "max_depth": 2,
        "learning_rate": 0.05}
MEDIAN = {**SNAP, "n_estimators": 1, "learning_rate": 0.0}
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
HALF_LIVES = (0.25, 0.5, 1.0)
L1_BOOSTS = {  # label: the spec's hyperparams changed
    "l1 boost lr.01 n30 mcw20": {"learning_rate": 0.01, "n_estimators": 30,
                                 "min_child_weight": 20, "reg_lambda": 10.0},
    "l1 boost lr.02 n50 mcw20": {"learning_rate": 0.02, "n_estimators": 50,
                                 "min_child_weight": 20, "reg_lambda": 10.0},
    "l1 boost lr.05 n50 mcw40 d1": {"learning_rate": 0.05, "n_estimators": 50,
                                    "min_child_weight": 40, "max_depth": 1},
}


def _xgb_regressor(params: dict[str, Any], seed: int) -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(**{**SNAP, **params}, random_state=seed, verbosity=0, n_jobs=1)


def _dist_scores(label: str, proba: np.ndarray, values: np.ndarray, prior: np.ndarray,
                 y_val: np.ndarray, out: dict[str, float]) -> None:
    for w in PRIOR_WEIGHTS:
        mixed = (1 - w) * proba + w * prior[None, :]
        out[f"{label} +prior {w:g}"] = mae(y_val, mae_optimal(mixed, values))


def screen_project(project: Project, preprocess: dict[str, Any], seed: int,
                   min_class: int) -> dict[str, float]:
    from xgboost import XGBClassifier

    s = cut(project, preprocess, seed)
    out: dict[str, float] = {
        "median": engine_mae(s, "xgboost", MEDIAN, seed, snap=False),
        "snap": engine_mae(s, "xgboost", SNAP, seed, snap=True),
    }
    scale = np.unique(s.y_fit)
    own = _xgb_regressor({}, seed).fit(s.x_fit, s.y_fit)
    out["snap (own fit, check)"] = mae(s.y_val, snap_to(own.predict(s.x_val), scale))

    # 2. absolute-error boosting held near the median
    for label, params in L1_BOOSTS.items():
        model = _xgb_regressor(params, seed).fit(s.x_fit, s.y_fit)
        out[label] = mae(s.y_val, snap_to(model.predict(s.x_val), scale))

    # 3. recency weights: median, snap
    for h in HALF_LIVES:
        w = recency(len(s.y_fit), h)
        out[f"median recency {h:g}"] = mae(s.y_val, np.full(len(s.y_val),
                                                            weighted_median(s.y_fit, w)))
        model = _xgb_regressor({}, seed).fit(s.x_fit, s.y_fit, sample_weight=w)
        out[f"snap recency {h:g}"] = mae(s.y_val, snap_to(model.predict(s.x_val), scale))

    # 1. a distribution over the client's points, then its MAE-optimal point
    values, codes = merge_classes(s.y_fit, min_class)
    prior = np.bincount(codes, minlength=len(values)) / len(codes)
    if len(values) == 1:
        for label in ("dist xgb", "dist logreg", "dist xgb recency 0.5"):
            for weight in PRIOR_WEIGHTS:
                out[f"{label} +prior {weight:g}"] = mae(s.y_val,
                                                        np.full(len(s.y_val), values[0]))
        return out
    clf = XGBClassifier(n_estimators=100, max_depth=2, learning_rate=0.05,
                        objective="multi:softprob", random_state=seed, verbosity=0, n_jobs=1)
    clf.fit(s.x_fit, codes)
    _dist_scores("dist xgb", clf.predict_proba(s.x_val), values, prior, s.y_val, out)
    w_rec = recency(len(codes), 0.5)
    clf.fit(s.x_fit, codes, sample_weight=w_rec)
    prior_rec = np.bincount(codes, weights=w_rec, minlength=len(values)) / w_rec.sum()
    _dist_scores("dist xgb recency 0.5", clf.predict_proba(s.x_val), values, prior_rec,
                 s.y_val, out)
    t_fit, t_val = text_matrix(s.fit_rows, s.val_rows)
    _dist_scores("dist logreg", logreg_proba(t_fit, codes, t_val), values, prior, s.y_val,
                 out)
    return out


def logreg_proba(x_fit: Any, codes: np.ndarray, x_val: Any) -> np.ndarray:
    """``dist logreg``'s class probabilities of the validation rows: a logistic regression
    with the built candidate's hyperparams, fitted on the fit rows' class codes."""
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(**DIST_HYPERPARAMS).fit(x_fit, codes)
    return np.asarray(lr.predict_proba(x_val))


#: the candidate as pgml.train would encode it: tf-idf of title and description, the
#: spec's one-hot and multi-hot columns, the two counts scaled (a linear model needs it)
DIST_PREPROCESS: dict[str, Any] = {
    "title": {"text": "tfidf", "max_features": 2000, "ngram": [1, 2], "sublinear_tf": True},
    "description": {"text": "tfidf", "max_features": 2000, "ngram": [1, 2],
                    "sublinear_tf": True},
    "title_length": {"scale": "max_abs"}, "description_words": {"scale": "max_abs"},
}


#: the built candidate's hyperparams (the screen's LogisticRegression(C=1.0, max_iter=2000))
DIST_HYPERPARAMS: dict[str, Any] = {"C": 1.0, "max_iter": 2000}


def dist_engine(rows: Sequence[tuple[Any, ...]], fit: int, val: int, preprocess: dict[str, Any],
                min_class: int) -> float:
    """``dist logreg`` on the spec's columns as pgml.train encodes them (DIST_PREPROCESS
    over the spec's preprocess): the MAE of its MAE-optimal points on the last ``val`` of
    ``rows[:fit + val]``."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from pgml_flow.engine.dataset import prepare_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = prepare_dataset("regression", COLUMNS, list(rows[: fit + val]), TARGET,
                             test_size=float(val), test_sampling="last",
                             preprocess={**preprocess, **DIST_PREPROCESS}, seed=0)
    y = np.array([float(r[-1]) for r in rows[: fit + val]])
    values, codes = merge_classes(y[:fit], min_class)
    if len(values) == 1:
        return mae(y[fit:], np.full(val, values[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=1.0, max_iter=2000).fit(sparse.csr_matrix(ds.x_train), codes)
    return mae(y[fit:], mae_optimal(lr.predict_proba(sparse.csr_matrix(ds.x_test)), values))


def nested_project(project: Project, preprocess: dict[str, Any], seed: int,
                   min_class: int) -> dict[str, float]:
    """The spec's per-client choice judged honestly: candidates chosen on an inner
    validation slice (the last validation_size of the fit rows), the choice scored on the
    validation slice. Both with and without ``dist``."""
    fit, val = slices(len(project.rows))
    inner_val = math.ceil(fit * 0.2)
    inner = Project(project.dataset, project.name, project.rows[:fit])
    outer_s = cut(project, preprocess, seed)
    outer = {"snap": engine_mae(outer_s, "xgboost", SNAP, seed, snap=True),
             "median": engine_mae(outer_s, "xgboost", MEDIAN, seed, snap=False),
             "dist": dist_engine(project.rows, fit, val, preprocess, min_class)}
    inner_s = cut_at(inner, fit - inner_val, inner_val, preprocess, seed)
    scores = {"snap": engine_mae(inner_s, "xgboost", SNAP, seed, snap=True),
              "median": engine_mae(inner_s, "xgboost", MEDIAN, seed, snap=False),
              "dist": dist_engine(project.rows, fit - inner_val, inner_val, preprocess,
                                  min_class)}
    two = min(("snap", "median"), key=lambda k: scores[k])
    three = min(("snap", "median", "dist"), key=lambda k: scores[k])
    dist_median = min(("dist", "median"), key=lambda k: scores[k])
    dist_snap = min(("dist", "snap"), key=lambda k: scores[k])
    return {"dist logreg (pgml encodings)": outer["dist"], "snap": outer["snap"],
            "median": outer["median"],
            "dist (pgml.train option)": engine_dist(outer_s, project, preprocess, seed,
                                                    min_class),
            "choice snap|median (nested)": outer[two],
            "choice snap|median|dist (nested)": outer[three],
            "choice dist|median (nested)": outer[dist_median],
            "choice dist|snap (nested)": outer[dist_snap]}


def engine_dist(s: Slices, project: Project, preprocess: dict[str, Any], seed: int,
                min_class: int) -> float:
    """``dist`` as the built candidate trains it: ``pgml.train``'s target option
    ``classes`` (pgml_flow.engine.targets_classes) with the linear algorithm, on the same
    slices; it must give the figure of :func:`dist_engine`."""
    from pgml_flow.engine.dataset import prepare_dataset
    from pgml_flow.engine.training import train

    fit, val = len(s.fit_rows), len(s.val_rows)
    options = {**preprocess, **DIST_PREPROCESS,
               TARGET: {"classes": "median", "min_class": min_class}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = prepare_dataset("regression", COLUMNS, list(project.rows[: fit + val]), TARGET,
                             test_size=float(val), test_sampling="last", preprocess=options,
                             seed=seed)
        result = train("regression", "linear", ds, DIST_HYPERPARAMS, seed=seed)
    return float(result.metrics["mean_absolute_error"])


# -- --embeddings: wordllama, the offline embedding bundled in its wheel (issue 13) -----
KNN_KS = (10, 15, 20)
KNN_SHRINK = 0.5


class Embedder:
    """wordllama's ``l2_supercat`` 256-d embedding, read from the files inside the installed
    package and never downloaded: ``cache_dir`` is the package's own folder, because
    ``WordLlama.load()`` looks for the bundled tokenizer under ``tokenizer/`` while the
    wheel ships it under ``tokenizers/`` and would download it otherwise."""

    def __init__(self) -> None:
        import wordllama  # lazily: the rest of the screen runs without it

        self.model = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                                              disable_download=True)
        self.seconds = 0.0
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one text at a time (a batch is padded to its longest text,
        10 times slower on issue texts); an empty text embeds to zeros."""
        started = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore")
            out = self.model.embed(list(texts), norm=True, batch_size=1)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return np.nan_to_num(np.asarray(out, dtype=float))


def _block(fit: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An embedding block standardised on the fit rows and divided by sqrt(dims), so a row
    has a norm near 1, as a tf-idf block's rows have."""
    mean, std = fit.mean(axis=0), fit.std(axis=0) + 1e-9
    scale = std * math.sqrt(fit.shape[1])
    return (fit - mean) / scale, (val - mean) / scale


def embeddings_project(project: Project, preprocess: dict[str, Any], seed: int,
                       min_class: int, embed: Embedder) -> dict[str, float]:
    """``--embeddings``: the baselines, ``dist logreg`` (the screen's, and as pgml.train
    encodes it) and the embedding ideas, on the same slices."""
    from scipy import sparse

    s = cut(project, preprocess, seed)
    fit, val = len(s.fit_rows), len(s.val_rows)
    out: dict[str, float] = {
        "median": engine_mae(s, "xgboost", MEDIAN, seed, snap=False),
        "snap": engine_mae(s, "xgboost", SNAP, seed, snap=True),
        "dist logreg (pgml encodings)": dist_engine(project.rows, fit, val, preprocess,
                                                    min_class),
    }
    rows = s.fit_rows + s.val_rows
    title = embed([r[4] or "" for r in rows])
    desc = embed([r[5] or "" for r in rows])
    joined = embed([f"{r[4] or ''}. {r[5] or ''}" for r in rows])
    scale = np.unique(s.y_fit)
    fit_median = float(np.median(s.y_fit))

    # c. nearest fit rows by cosine on the embedding of "title. description"
    sim = joined[fit:] @ joined[:fit].T
    order = np.argsort(-sim, axis=1, kind="stable")
    for k in KNN_KS:
        near = np.median(s.y_fit[order[:, :k]], axis=1)
        mixed = (1 - KNN_SHRINK) * near + KNN_SHRINK * fit_median
        out[f"knn emb k{k} shrink {KNN_SHRINK:g}"] = mae(s.y_val, snap_to(mixed, scale))

    values, codes = merge_classes(s.y_fit, min_class)
    labels = ("dist logreg", "dist logreg emb title|desc", "dist logreg emb joined",
              "dist logreg tfidf+emb")
    if len(values) == 1:
        for label in labels:
            out[label] = mae(s.y_val, np.full(val, values[0]))
        return out
    t_fit, t_val = text_matrix(s.fit_rows, s.val_rows)
    o_fit, o_val = onehot_matrix(s.fit_rows, s.val_rows)
    tf, tv = _block(title[:fit], title[fit:])
    df, dv = _block(desc[:fit], desc[fit:])
    jf, jv = _block(joined[:fit], joined[fit:])
    designs = {
        "dist logreg": (t_fit, t_val),
        "dist logreg emb title|desc": (sparse.hstack([tf, df, o_fit]),
                                       sparse.hstack([tv, dv, o_val])),
        "dist logreg emb joined": (sparse.hstack([jf, o_fit]), sparse.hstack([jv, o_val])),
        "dist logreg tfidf+emb": (sparse.hstack([t_fit, tf, df]),
                                  sparse.hstack([t_val, tv, dv])),
    }
    for label, (x_fit, x_val) in designs.items():
        proba = logreg_proba(sparse.csr_matrix(x_fit), codes, sparse.csr_matrix(x_val))
        out[label] = mae(s.y_val, mae_optimal(proba, values))
    return out


def summary(results: dict[str, dict[str, float]], projects: Sequence[Project]
            ) -> list[tuple[str, float, int, int]]:
    """Per method: (label, mean validation MAE, projects below the median candidate, n)."""
    names = [p.name for p in projects]
    methods = list(results[names[0]])
    rows = []
    for m in methods:
        vals = [results[n][m] for n in names]
        below = sum(1 for n in names if results[n][m] < results[n]["median"] - 1e-9)
        rows.append((m, statistics.fmean(vals), below, len(names)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, help="a pickle of the rows (made when absent)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--dataset", action="append", choices=list(DATASETS),
                        help="only this dataset (default: both)")
    parser.add_argument("--project", action="append", default=[], help="only this project")
    parser.add_argument("--min-class", type=int, default=5,
                        help="fit rows a point value needs to be a class of its own")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--nested", action="store_true",
                        help="only dist logreg as pgml.train encodes it, and the per-client "
                             "choice with and without it, judged on an inner split")
    parser.add_argument("--embeddings", action="store_true",
                        help="only the baselines, dist logreg and the ideas on wordllama's "
                             "bundled offline embedding (pip install wordllama)")
    args = parser.parse_args()
    from pgml_models.specs import builtin_specs

    preprocess = dict(builtin_specs()["complexity"].preprocess)
    projects = [p for p in load(args.cache, args.keep)
                if (not args.dataset or p.dataset in args.dataset)
                and (not args.project or p.name in args.project)]
    embed = Embedder() if args.embeddings else None
    for dataset in dict.fromkeys(p.dataset for p in projects):
        chosen = [p for p in projects if p.dataset == dataset]
        results = {}
        started = time.perf_counter()
        for p in chosen:
            if embed is not None:
                results[p.name] = embeddings_project(p, preprocess, args.seed,
                                                     args.min_class, embed)
            else:
                screen = nested_project if args.nested else screen_project
                results[p.name] = screen(p, preprocess, args.seed, args.min_class)
            r = results[p.name]
            best = min(r, key=lambda k: r[k])
            print(f"  {p.name}: median {r['median']:.3f} snap {r['snap']:.3f} best {best} "
                  f"{r[best]:.3f}", flush=True)
        print(f"\n{dataset}: validation MAE, {len(chosen)} projects "
              f"({time.perf_counter() - started:.0f} s)")
        print(f"{'candidate':34} {'mean':>7} {'below median':>13}")
        for label, mean, below, n in summary(results, chosen):
            print(f"{label:34} {mean:7.3f} {below:>6} of {n}")
        if embed is not None:
            print(f"wordllama: {embed.texts:,} texts embedded in {embed.seconds:.1f} s "
                  f"({embed.texts / max(embed.seconds, 1e-9):,.0f} rows/s)")
            embed.seconds, embed.texts = 0.0, 0
        print(flush=True)


if __name__ == "__main__":
    main()
