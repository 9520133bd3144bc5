"""Train/test split: ``test_size`` and ``test_sampling`` of ``pgml.train``.

``test_size`` <= 1 is a fraction of the rows (rounded up, like scikit-learn), > 1 a row
count.  ``random`` shuffles with a seed; ``last`` takes the last rows in relation order
as test; ``stratified`` keeps each class's share of the LABEL in both sets (upstream
stratified by every column, which made it effectively random).  Stratification only
means something for classification; for the other tasks it falls back to ``random``.

Tiny data fails here with a message that says how many rows and classes there are and
what to change, instead of crashing inside an estimator (upstream issues 1296, 1303).
"""

from __future__ import annotations

import math

import numpy as np

from pgml_flow.engine.errors import InvalidArgument, SplitError

SAMPLINGS = ("random", "last", "stratified")


def count_test_rows(n_rows: int, test_size: float) -> int:
    """Number of test rows for ``test_size``; errors when either set would be empty."""
    if test_size is None or not math.isfinite(test_size) or test_size <= 0:
        raise SplitError(
            f"test_size must be > 0 (a fraction <= 1 or a row count > 1), got {test_size}"
        )
    n_test = math.ceil(n_rows * test_size) if test_size <= 1 else int(test_size)
    if n_test < 1:
        raise SplitError(
            f"test_size {test_size} leaves 0 test rows out of {n_rows}; use a larger test_size"
        )
    if n_test >= n_rows:
        raise SplitError(
            f"test_size {test_size} takes {n_test} of {n_rows} rows as test, leaving no "
            "training rows; use a smaller test_size or more data"
        )
    return n_test


def split_indices(
    n_rows: int,
    test_size: float,
    sampling: str,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``.  ``labels`` are class codes (classification only)."""
    if sampling not in SAMPLINGS:
        raise InvalidArgument(
            f"unknown test_sampling {sampling!r}; choose one of: {', '.join(SAMPLINGS)}"
        )
    if n_rows < 2:
        raise SplitError(
            f"the relation has {n_rows} row(s); training needs at least 2 (one train, one test)"
        )
    n_test = count_test_rows(n_rows, test_size)
    rng = np.random.default_rng(seed)
    if sampling == "last":
        return np.arange(n_rows - n_test), np.arange(n_rows - n_test, n_rows)
    if sampling == "random" or labels is None:
        order = rng.permutation(n_rows)
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    return _stratified(labels, n_test, test_size, rng)


def _stratified(
    labels: np.ndarray, n_test: int, test_size: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n_rows = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    n_classes = len(classes)
    hint = "use a larger test_size, more rows, or test_sampling => 'random'"
    if n_test < n_classes or n_rows - n_test < n_classes:
        raise SplitError(
            f"stratified split of {n_rows} rows with {n_classes} classes needs at least "
            f"{n_classes} test rows and {n_classes} training rows, but test_size {test_size} "
            f"gives {n_test} test and {n_rows - n_test} training rows; {hint}"
        )
    if counts.min() < 2:
        rare = classes[counts < 2].tolist()
        raise SplitError(
            f"stratified split needs at least 2 rows per class (one train, one test), but "
            f"{len(rare)} of {n_classes} classes have only 1 row; {hint}"
        )
    # proportional allocation, at least one test and one train row per class,
    # remaining rows to the largest fractional remainders
    ideal = counts * n_test / n_rows
    alloc = np.clip(np.floor(ideal).astype(np.int64), 1, counts - 1)
    while alloc.sum() != n_test:
        if alloc.sum() < n_test:
            room = np.where(alloc < counts - 1, ideal - alloc, -np.inf)
            alloc[np.argmax(room)] += 1
        else:
            room = np.where(alloc > 1, alloc - ideal, -np.inf)
            alloc[np.argmax(room)] -= 1
    test: list[np.ndarray] = []
    for cls, take in zip(classes, alloc, strict=True):
        members = np.flatnonzero(labels == cls)
        test.append(rng.permutation(members)[:take])
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(n_rows, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx
