"""Fitted per-column preprocessing: encode, impute, scale, with train-only statistics.

Each feature column becomes an :class:`Encoder` whose state is plain JSON (it is saved
in ``pgml.snapshots.columns``) and whose ``transform`` gives the same numbers at
training and at prediction time.  The pipeline for every column is::

    raw values --encode--> float block (n, width), NaN = NULL / unseen category
               --impute--> NaN replaced by the train statistic (or an error)
               --scale---> (x - center) / scale

Encodings of text columns: ``native`` = index of the category in the sorted train
categories; ``ordinal`` = index in the user's list; ``one_hot`` = one indicator per
train category; ``target`` = mean (encoded) label of the train rows with that category.
An unseen category is treated like NULL when the column has an impute rule; with
``impute: error`` it is an error naming the column and the value, as in PostgresML.  NULL
in a text column whose train rows have NULLs is, without an impute rule, a category of its
own (:data:`NULL_CATEGORY`, PostgresML's key for it) with its own code, indicator or label
mean; otherwise a NULL with ``impute: error`` is an error naming the column.

Vocabulary encodings learn which values matter from the train rows: ``multi_hot`` (a
``text[]`` column: one indicator per value, e.g. components or labels) and ``words`` (a
text column: one indicator per word, :func:`words`).  The vocabulary is the values found in
at least ``min_count`` train rows; when there are more than ``top_k`` of them, the
``top_k`` whose rows differ most in the label (|mean with - mean without| weighted by
sqrt(n_with * n_without / n), a t statistic; by frequency without a label).  It is
stored, sorted, as the column's categories, so a prediction encodes the same way.  A NULL
(array, element or text) and an unseen value add no indicator: these never need imputing.

Text encodings (``{"text": "tfidf" | "hashing", ...}``, :mod:`pgml_flow.engine.text`): the
tf-idf vocabulary (categories) and its idf weights are fitted on the train rows and
stored; hashing stores nothing but its options.  ``words`` and the text encodings share
the tokenizer of :mod:`pgml_flow.engine.text` (``"tokenizer": 1`` in the JSON), which the
C scorer reproduces; a ``words`` column fitted before it keeps the regex :func:`words`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from pgml_flow.engine import text as text_features
from pgml_flow.engine.columns import (
    TEXT_ENCODINGS,
    VOCABULARY_ENCODINGS,
    Column,
    Preprocess,
    non_finite,
    numeric_block,
    parse_rule,
    without_non_finite,
)
from pgml_flow.engine.errors import DataError

_STATS = ("mean", "std_dev", "min", "max", "median", "mode")
#: the category of NULL in a text column (PostgresML's ``NULL_CATEGORY_KEY``): among the
#: stored categories, so the C scorer's row form finds it by the same key
NULL_CATEGORY = "__NULL__"
#: a word: two or more letters or digits (any script), lower-cased
_WORD = re.compile(r"[^\W_]{2,}")


def words(text: Any) -> set[str]:
    """The distinct words of a text (the ``words`` encoding): runs of 2+ letters or digits,
    lower-cased; ``"Fix the login-form (v2)"`` has fix, the, login, form, v2."""
    return set() if text is None else set(_WORD.findall(str(text).lower()))


def _values(value: Any) -> set[str]:
    """The distinct non-NULL values of one ``text[]`` cell (a NULL array has none)."""
    if value is None:
        return set()
    if isinstance(value, str):  # not an array: one value
        return {value}
    out: set[str] = set()
    for item in value:
        if isinstance(item, list | tuple):
            out |= _values(item)
        elif item is not None:
            out.add(str(item))
    return out


def select_vocabulary(sets: Sequence[set[str]], target: np.ndarray | None, top_k: int,
                      min_count: int) -> list[str]:
    """The values (words) of at least ``min_count`` rows; the ``top_k`` that matter most.

    With a label: ranked by how far the label's mean over the rows with the value is from
    its mean over the rows without it, times sqrt(n_with * n_without / n) (a t statistic,
    up to the label's spread), so that a frequent value that changes nothing loses to a
    rarer one that does; then by frequency.  Without a label, by frequency.  Sorted.
    """
    counts = Counter(v for s in sets for v in s)
    candidates = [v for v, c in counts.items() if c >= min_count]
    if len(candidates) <= top_k:
        return sorted(candidates)
    score: dict[str, float] = {}
    if target is not None and len(target) == len(sets):
        n, total = len(sets), float(np.sum(target))
        sums: dict[str, float] = dict.fromkeys(candidates, 0.0)
        for row, values in enumerate(sets):
            for v in values:
                if v in sums:
                    sums[v] += float(target[row])
        for v in candidates:
            inside, outside = counts[v], n - counts[v]
            if outside == 0:
                score[v] = 0.0
                continue
            gap = sums[v] / inside - (total - sums[v]) / outside
            score[v] = abs(gap) * math.sqrt(inside * outside / n)
    ranked = sorted(candidates, key=lambda v: (-score.get(v, 0.0), -counts[v], v))
    return sorted(ranked[:top_k])


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _column_stats(block: np.ndarray) -> dict[str, np.ndarray]:
    """Per output feature statistics of the non-NULL train values (NaN if none)."""
    if block.ndim == 2 and block.shape[0] and block.shape[1] > 1 \
            and not np.isnan(block).any():
        return _stats_of_rows(np.ascontiguousarray(block.T, dtype=np.float64))
    out = {name: np.full(block.shape[1], np.nan) for name in _STATS}
    for j in range(block.shape[1]):
        col = block[:, j][~np.isnan(block[:, j])]
        if not len(col):
            continue
        values, counts = np.unique(col, return_counts=True)
        out["mean"][j], out["std_dev"][j] = col.mean(), col.std()
        out["min"][j], out["max"][j] = col.min(), col.max()
        out["median"][j] = np.median(col)
        out["mode"][j] = values[np.argmax(counts)]  # smallest value among ties
    return out


def _stats_of_rows(rows: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_column_stats` of a block without NULL, given transposed (a row per feature),
    all features at once and with the same numbers: each is reduced along its own
    contiguous row as the one-feature computation reduces its column.  An array column of
    64 numbers spent 7 ms of every pgml.train in the per-feature loop."""
    n = rows.shape[1]
    ordered = np.sort(rows, axis=1)
    starts_at = np.ones(ordered.shape, dtype=bool)  # where each run of equal values starts
    starts_at[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    starts = np.flatnonzero(starts_at)
    lengths = np.diff(np.append(starts, ordered.size))
    feature = starts // n
    # per feature, its longest run, the first (smallest value) among ties, as np.unique finds
    best = np.lexsort((starts, -lengths, feature))
    first = best[np.r_[True, feature[best][1:] != feature[best][:-1]]]
    return {
        "mean": rows.mean(axis=1),
        "std_dev": rows.std(axis=1),
        "min": rows.min(axis=1),
        "max": rows.max(axis=1),
        "median": np.median(rows, axis=1),
        "mode": ordered.ravel()[starts[first]],
    }


def check_training_values(column: Column, values: Sequence[Any]) -> None:
    """Refuse infinities in a number column; tell NaN apart from NULL where it cannot be imputed.

    ``values`` are the column's values in every row, train and test.  To the encoders NaN
    is a missing value, like NULL: an impute rule fills both (as PostgresML does).
    """
    if column.kind != "number":
        return
    counts = non_finite(column, values)
    where = without_non_finite(column.name, column.is_array, keep_nulls=True)
    if counts.infinite:
        raise DataError(
            f"column {column.name!r} contains {counts.infinities()} value(s), which no model "
            f"can use; leave those rows out in a view ({where}) and train on that"
        )
    if counts.nans and column.preprocess.impute == "error":
        raise DataError(
            f"column {column.name!r} contains {counts.describe()} value(s) (NaN is a number, "
            "not NULL; both are missing values to pgml-flow); add an impute rule, e.g. "
            f'preprocess => \'{{"{column.name}": {{"impute": "mean"}}}}\', or leave those '
            f"rows out in a view ({where})"
        )


class Encoder:
    """The fitted preprocessing of one feature column (JSON round-trippable)."""

    def __init__(self, column: Column) -> None:
        self.column = column
        self.width = 0
        self.categories: list[str] | None = None
        self.target_means: list[float] | None = None
        self.target_prior = 0.0
        self.fill: np.ndarray | None = None
        self.center = np.zeros(0)
        self.scale = np.ones(0)
        self.statistics: dict[str, Any] = {}
        self._index: dict[str, int] | None = None  # category -> code, built on first use
        self._seen: int | None = None  # vocabulary encodings: distinct values in training
        self.idf: list[float] | None = None  # tfidf: the idf of each vocabulary term
        #: the tokenizer of words / tfidf / hashing (text.TOKENIZER_VERSION), None: the regex
        self.tokenizer: int | None = None

    # -- encode --------------------------------------------------------------------------
    def _codes(self, values: Sequence[Any]) -> np.ndarray:
        """Category index per row: -1 NULL (unless NULL is a category), -2 unseen."""
        assert self.categories is not None
        if self._index is None or len(self._index) != len(self.categories):
            self._index = {c: i for i, c in enumerate(self.categories)}
        index = self._index
        null = index.get(NULL_CATEGORY, -1)
        return np.array(
            [null if v is None else index.get(str(v), -2) for v in values], dtype=np.int64
        )

    def _sets(self, values: Sequence[Any]) -> list[set[str]]:
        """Per row, the values (multi_hot) or words (words) a vocabulary encoding reads."""
        if self.column.preprocess.encode == "words":
            if self.tokenizer is not None:
                return [text_features.word_set(v) for v in values]
            return [words(v) for v in values]
        return [_values(v) for v in values]

    def _text_block(self, values: Sequence[Any]) -> np.ndarray:
        """tfidf / hashing rows (text.tfidf_block, text.hashing_block)."""
        rule = self.column.preprocess
        options = rule.text_options
        if rule.encode == "hashing":
            return text_features.hashing_block(values, options["n_features"], rule.ngram,
                                               options["alternate_sign"])
        assert self.categories is not None and self.idf is not None
        if self._index is None or len(self._index) != len(self.categories):
            self._index = {c: i for i, c in enumerate(self.categories)}
        return text_features.tfidf_block(values, self._index, self.idf, rule.ngram,
                                         options["sublinear_tf"])

    def _encode(self, values: Sequence[Any]) -> np.ndarray:
        column = self.column
        if column.preprocess.encode in TEXT_ENCODINGS:
            return self._text_block(values)
        if column.preprocess.encode in VOCABULARY_ENCODINGS:
            assert self.categories is not None
            if self._index is None or len(self._index) != len(self.categories):
                self._index = {c: i for i, c in enumerate(self.categories)}
            index = self._index
            block = np.zeros((len(values), len(self.categories)))
            for row, found in enumerate(self._sets(values)):
                for value in found:
                    code = index.get(value)
                    if code is not None:
                        block[row, code] = 1.0
            return block
        if column.kind != "text":
            return numeric_block(column, values, self.width or None)
        codes = self._codes(values)
        missing = codes == -1
        unseen = codes == -2
        has_rule = column.preprocess.impute != "error"
        if not has_rule and unseen.any():
            value = values[int(np.flatnonzero(unseen)[0])]
            raise DataError(
                f"column {column.name!r} has the value {str(value)!r}, a category its train "
                f"rows did not have, and no impute rule; predict with one of its "
                f"{len(self.categories or [])} categories (pgml.snapshots.columns), or "
                "retrain with an impute rule for unseen values, e.g. "
                f'preprocess => \'{{"{column.name}": {{"impute": "mode"}}}}\''
            )
        encode = column.preprocess.encode
        if encode == "one_hot":
            block = np.zeros((len(codes), self.width))
            rows = np.flatnonzero(codes >= 0)
            block[rows, codes[rows]] = 1.0
            block[missing | unseen] = np.nan
            return block
        if encode == "target":
            assert self.target_means is not None
            means = np.array([*self.target_means, np.nan])
            block = means[np.where(codes >= 0, codes, len(self.target_means))]
            return block.reshape(-1, 1)
        block = codes.astype(np.float64)
        block[missing | unseen] = np.nan
        return block.reshape(-1, 1)

    # -- fit / transform -----------------------------------------------------------------
    def fit(self, values: Sequence[Any], target: np.ndarray | None) -> np.ndarray:
        """Learn statistics from the train rows; returns their transformed block."""
        column, rule = self.column, self.column.preprocess
        if rule.encode in TEXT_ENCODINGS:
            return self._fit_text(values)
        if rule.encode in VOCABULARY_ENCODINGS:
            if rule.encode == "words":
                self.tokenizer = text_features.TOKENIZER_VERSION
            sets = self._sets(values)
            self.categories = select_vocabulary(sets, target, rule.vocabulary_size,
                                                rule.least_count)
            self.width = len(self.categories)
            self._seen = len({v for s in sets for v in s})
        elif column.kind == "text":
            present = sorted({str(v) for v in values if v is not None})
            if rule.impute == "error" and rule.encode != "ordinal" and None in values:
                present = sorted({*present, NULL_CATEGORY})  # NULL: a category, as PostgresML
            if rule.encode == "ordinal":
                assert rule.ordinal is not None
                extra = [v for v in present if v not in rule.ordinal]
                if extra:
                    raise DataError(
                        f"column {column.name!r} has value(s) {extra[:5]} missing from its "
                        f"ordinal list {list(rule.ordinal)}"
                    )
                self.categories = list(rule.ordinal)
            else:
                self.categories = present
            self.width = len(self.categories) if rule.encode == "one_hot" else 1
            if rule.encode == "target":
                self._fit_target(values, target)
        block = self._encode(values)
        self.width = block.shape[1]
        self._fit_impute(block)
        block = self._impute(block)
        self._fit_scale(block)
        return (block - self.center) / self.scale

    def _fit_text(self, values: Sequence[Any]) -> np.ndarray:
        """tfidf: the vocabulary and idf of the train rows; hashing: nothing to learn.

        No impute (a NULL text is a row of zeros) and no scaling (rows are l2-normalised);
        the statistics say how many rows and terms there were, not one figure per column
        (thousands of columns would bloat the snapshot for nothing).
        """
        rule = self.column.preprocess
        options = rule.text_options
        self.tokenizer = text_features.TOKENIZER_VERSION
        if rule.encode == "tfidf":
            self.categories, self.idf, self._seen = text_features.fit_tfidf(
                values, rule.ngram, options["max_features"], options["min_df"],
                options["max_df"])
            if not self.categories:
                raise DataError(
                    f"column {self.column.name!r} has no term in at least "
                    f"{options['min_df']} train rows, so tf-idf has no vocabulary; lower "
                    f"min_df or leave the column out"
                )
        block = self._text_block(values)
        self.width = block.shape[1]
        self.fill = None
        self.center = np.zeros(self.width)
        self.scale = np.ones(self.width)
        self.statistics = {
            "rows": len(values),
            "missing": sum(1 for v in values if v is None),
            **({"distinct": self._seen, "vocabulary": len(self.categories or [])}
               if self._seen is not None else {}),
        }
        return block

    def _fit_target(self, values: Sequence[Any], target: np.ndarray | None) -> None:
        if target is None:
            raise DataError(f"encode 'target' for column {self.column.name!r} needs a label column")
        codes = self._codes(values)
        self.target_prior = float(np.mean(target))
        self.target_means = [
            float(np.mean(target[codes == i])) for i in range(len(self.categories or []))
        ]

    def _fit_impute(self, block: np.ndarray) -> None:
        nan = np.isnan(block)
        stats = _column_stats(block)
        self.statistics = {
            "rows": len(block),
            "missing": int(nan.any(axis=1).sum()),
            **({"distinct": len(self.categories)} if self.categories is not None else {}),
            **({"distinct": self._seen, "vocabulary": len(self.categories or [])}
               if self._seen is not None else {}),
            **{name: _nan_to_none(values) for name, values in stats.items()},
        }
        impute = self.column.preprocess.impute
        if impute == "error":
            self.fill = None
        elif impute == "zero":
            self.fill = np.zeros(self.width)
        else:
            self.fill = np.nan_to_num(stats[impute], nan=0.0)

    def _impute(self, block: np.ndarray) -> np.ndarray:
        nan = np.isnan(block)
        if not nan.any():
            return block
        if self.fill is None:
            raise DataError(
                f"column {self.column.name!r} contains NULL values; add an impute rule, e.g. "
                f'preprocess => \'{{"{self.column.name}": {{"impute": "mean"}}}}\''
            )
        return np.where(nan, self.fill, block)

    def _fit_scale(self, block: np.ndarray) -> None:
        scale = self.column.preprocess.scale
        center = np.zeros(self.width)
        spread = np.ones(self.width)
        if scale == "standard":
            center, spread = block.mean(axis=0), block.std(axis=0)
        elif scale == "min_max":
            center, spread = block.min(axis=0), block.max(axis=0) - block.min(axis=0)
        elif scale == "max_abs":
            spread = np.abs(block).max(axis=0)
        elif scale == "robust":
            q1, median, q3 = np.percentile(block, [25, 50, 75], axis=0)
            center, spread = median, q3 - q1
        self.center = np.asarray(center, dtype=np.float64)
        self.scale = np.where(np.asarray(spread) == 0, 1.0, spread).astype(np.float64)

    def transform(self, values: Sequence[Any]) -> np.ndarray:
        """Apply the fitted statistics to new values (NULLs imputed or rejected)."""
        return (self._impute(self._encode(values)) - self.center) / self.scale

    # -- JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        column = self.column
        return {
            "name": column.name,
            "pg_type": column.pg_type,
            "kind": column.kind,
            "position": column.position,
            "array_length": self.width if column.is_array else None,
            "preprocess": column.preprocess.to_json(),
            "width": self.width,
            "categories": self.categories,
            "target_means": self.target_means,
            "target_prior": self.target_prior if self.target_means is not None else None,
            "fill": None if self.fill is None else self.fill.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "statistics": self.statistics,
            **({"idf": self.idf} if self.idf is not None else {}),
            **({"tokenizer": self.tokenizer} if self.tokenizer is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Encoder:
        rule: Preprocess = parse_rule(data["name"], data["preprocess"])
        column = Column(
            data["name"],
            data["pg_type"],
            data["kind"],
            data["array_length"] is not None,
            data["position"],
            rule,
        )
        encoder = cls(column)
        encoder.width = data["width"]
        encoder.categories = data["categories"]
        encoder.target_means = data["target_means"]
        encoder.target_prior = data["target_prior"] or 0.0
        encoder.fill = None if data["fill"] is None else np.asarray(data["fill"], dtype=np.float64)
        encoder.center = np.asarray(data["center"], dtype=np.float64)
        encoder.scale = np.asarray(data["scale"], dtype=np.float64)
        encoder.statistics = data.get("statistics", {})
        encoder.idf = data.get("idf")
        encoder.tokenizer = data.get("tokenizer")
        return encoder
