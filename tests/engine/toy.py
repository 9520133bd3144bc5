"""The sklearn toy data sets as (columns, rows), the way the SQL layer hands them over.

``pgml.load_dataset`` creates these tables in PostgresML's tutorials; here each becomes
``[(name, pg_type), ...]`` plus row tuples so the engine sees the same shapes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sklearn import datasets

Table = tuple[list[tuple[str, str]], list[tuple[Any, ...]]]


@cache
def iris(text_labels: bool = True) -> Table:
    data = datasets.load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in data.feature_names]
    columns = [(n, "float8") for n in names] + [("target", "text" if text_labels else "int4")]
    classes = list(data.target_names)
    rows = [
        (*x, classes[t] if text_labels else int(t))
        for x, t in zip(data.data.tolist(), data.target.tolist(), strict=True)
    ]
    return columns, rows


@cache
def diabetes() -> Table:
    data = datasets.load_diabetes()
    columns = [(n, "float4") for n in data.feature_names] + [("target", "float8")]
    rows = [(*x, t) for x, t in zip(data.data.tolist(), data.target.tolist(), strict=True)]
    return columns, rows


@cache
def breast_cancer() -> Table:
    data = datasets.load_breast_cancer()
    columns = [(f"f{i}", "float8") for i in range(data.data.shape[1])] + [("malignant", "bool")]
    rows = [(*x, t == 0) for x, t in zip(data.data.tolist(), data.target.tolist(), strict=True)]
    return columns, rows


@cache
def digits() -> Table:
    """Digits as one ``real[]`` image column, like ``pgml.digits``."""
    data = datasets.load_digits()
    columns = [("image", "real[]"), ("target", "int4")]
    rows = [(x, int(t)) for x, t in zip(data.data.tolist(), data.target.tolist(), strict=True)]
    return columns, rows


@cache
def linnerud() -> Table:
    data = datasets.load_linnerud()
    columns = [(n.lower(), "int4") for n in data.feature_names]
    columns += [(n.lower(), "float8") for n in data.target_names]
    rows = [
        (*map(int, x), *t) for x, t in zip(data.data.tolist(), data.target.tolist(), strict=True)
    ]
    return columns, rows


LINNERUD_TARGETS = ["weight", "waist", "pulse"]
