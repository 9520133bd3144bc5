"""test_size / test_sampling, determinism and tiny-data errors."""

from __future__ import annotations

import numpy as np
import pytest

from pgml_flow.engine.errors import InvalidArgument, SplitError
from pgml_flow.engine.split import count_test_rows, split_indices


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [(100, 0.25, 25), (10, 0.25, 3), (10, 1e-9, 1), (100, 7, 7), (100, 7.9, 7)],
)
def test_fraction_or_count(n, size, expected):
    assert count_test_rows(n, size) == expected


@pytest.mark.parametrize("size", [0, -1, float("nan")])
def test_non_positive_test_size(size):
    with pytest.raises(SplitError, match="test_size must be > 0"):
        count_test_rows(10, size)


def test_fraction_one_or_count_too_large_leaves_no_training_rows():
    with pytest.raises(SplitError, match="leaving no training rows"):
        count_test_rows(10, 1.0)
    with pytest.raises(SplitError, match="takes 10 of 10 rows"):
        count_test_rows(10, 10)


def test_single_row():
    with pytest.raises(SplitError, match="has 1 row"):
        split_indices(1, 0.25, "random")


def test_last_takes_the_last_rows():
    train, test = split_indices(10, 0.3, "last")
    assert train.tolist() == list(range(7)) and test.tolist() == [7, 8, 9]


def test_random_is_deterministic_and_a_partition():
    a = split_indices(50, 0.2, "random", seed=1)
    b = split_indices(50, 0.2, "random", seed=1)
    c = split_indices(50, 0.2, "random", seed=2)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert not (a[1] == c[1]).all()
    assert sorted(np.concatenate(a).tolist()) == list(range(50))
    assert len(a[1]) == 10


def test_stratified_by_label():
    labels = np.array([0] * 80 + [1] * 20)
    train, test = split_indices(100, 0.25, "stratified", labels, seed=3)
    assert np.bincount(labels[test]).tolist() == [20, 5]
    assert np.bincount(labels[train]).tolist() == [60, 15]
    again = split_indices(100, 0.25, "stratified", labels, seed=3)
    assert (again[1] == test).all()


def test_stratified_gives_each_class_a_test_and_train_row():
    labels = np.array([0] * 30 + [1] * 2 + [2] * 2)
    train, test = split_indices(34, 0.1, "stratified", labels)
    assert set(labels[test]) == {0, 1, 2} and set(labels[train]) == {0, 1, 2}


def test_stratified_too_few_test_rows_for_classes():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    with pytest.raises(SplitError, match=r"8 rows with 4 classes .* gives 2 test") as exc:
        split_indices(8, 0.25, "stratified", labels)
    assert "test_sampling => 'random'" in str(exc.value)


def test_stratified_class_with_one_row():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    with pytest.raises(SplitError, match="1 of 3 classes have only 1 row"):
        split_indices(9, 0.4, "stratified", labels)


def test_stratified_without_labels_is_random():
    assert (split_indices(20, 0.25, "stratified")[1] == split_indices(20, 0.25, "random")[1]).all()


def test_unknown_sampling():
    with pytest.raises(InvalidArgument, match="unknown test_sampling 'first'"):
        split_indices(20, 0.25, "first")
