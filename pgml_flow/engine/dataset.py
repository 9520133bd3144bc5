"""From relation rows to train/test arrays, and from a snapshot spec back to features.

:func:`prepare_dataset` is the whole data path of ``pgml.train``: describe columns,
read labels, split, learn preprocessing statistics on the TRAIN rows only, transform
both sets.  Its ``columns`` JSON is what the SQL layer stores in
``pgml.snapshots.columns``; :class:`RowTransformer` rebuilds the identical transform
from that JSON for the row form of ``pgml.predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pgml_flow.engine.algorithms import check_task
from pgml_flow.engine.columns import (
    Column,
    column_values,
    describe_columns,
    non_finite,
    without_non_finite,
)
from pgml_flow.engine.errors import DataError, FeatureCountMismatch, InvalidArgument
from pgml_flow.engine.preprocess import Encoder, check_training_values
from pgml_flow.engine.split import split_indices
from pgml_flow.engine.targets import TargetOptions, check_labels, take_target_options

SNAPSHOT_FORMAT = 1


@dataclass
class Dataset:
    """Preprocessed train/test arrays plus the snapshot ``columns`` JSON."""

    task: str
    x_train: np.ndarray
    x_test: np.ndarray
    #: regression: float (n,) or (n, outputs); classification: class codes (n,); else None
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    #: classification: sorted class values; the model predicts indexes into this list
    classes: list[Any] | None
    #: JSON for ``pgml.snapshots.columns``
    columns: dict[str, Any]
    feature_names: list[str] = field(default_factory=list)
    #: the label's treatment (log1p, snap, calibration) from its preprocess entry (targets)
    target: TargetOptions = field(default_factory=TargetOptions)

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def _json_value(value: Any, kind: str) -> Any:
    if kind == "text":
        return str(value)
    if kind == "bool":
        return bool(value)
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _read_labels(
    task: str, labels: list[Column], rows: Sequence[Any]
) -> tuple[np.ndarray | None, list[Any] | None]:
    """Label array (float values or class codes) and the sorted classes."""
    if task in ("clustering", "decomposition"):
        return None, None
    if not labels:
        raise InvalidArgument(f"task {task!r} needs y_column_name (the label column)")
    values = []
    for label in labels:
        column = column_values(rows, label.position, label.name)
        nulls = sum(v is None for v in column)
        if nulls:
            raise DataError(
                f"label column {label.name!r} has {nulls} NULL value(s); filter them out "
                f"(WHERE {label.name} IS NOT NULL) in a view and train on that"
            )
        if label.kind == "number":
            counts = non_finite(label, column)
            if counts.nans or counts.infinite:
                where = without_non_finite(label.name, False, keep_nulls=False)
                raise DataError(
                    f"label column {label.name!r} has {counts.describe()} value(s), which "
                    f"are not NULL but no label either; filter them out ({where}) in a view "
                    "and train on that"
                )
        values.append(column)
    if task == "regression":
        for label in labels:
            if label.kind == "text":
                raise DataError(
                    f"label column {label.name!r} is text, but regression needs a number; "
                    "use task 'classification' or cast the label"
                )
        y = np.array(values, dtype=np.float64).T
        return (y[:, 0] if len(labels) == 1 else y), None
    if len(labels) != 1:
        raise InvalidArgument("classification takes one label column (train_joint is regression)")
    kind = labels[0].kind
    mapped = [_json_value(v, kind) for v in values[0]]
    classes = sorted(set(mapped))
    if len(classes) < 2:
        raise DataError(
            f"label column {labels[0].name!r} has a single class {classes}; "
            "classification needs at least 2"
        )
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in mapped], dtype=np.int64), classes


def _feature_names(encoder: Encoder) -> list[str]:
    column = encoder.column
    if column.preprocess.encode in ("one_hot", "multi_hot") and encoder.categories is not None:
        return [f"{column.name}={c}" for c in encoder.categories]
    if column.preprocess.encode == "hashing":
        return [f"{column.name}#{i}" for i in range(encoder.width)]
    if column.preprocess.encode in ("words", "tfidf") and encoder.categories is not None:
        return [f"{column.name}:{c}" for c in encoder.categories]
    if column.is_array:
        return [f"{column.name}[{i + 1}]" for i in range(encoder.width)]
    return [column.name]


def prepare_dataset(
    task: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Any],
    y_column_names: Sequence[str] | str | None = None,
    *,
    test_size: float = 0.25,
    test_sampling: str = "stratified",
    preprocess: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Dataset:
    """Validate, split and preprocess a relation's rows (see the package docstring)."""
    check_task(task)
    if isinstance(y_column_names, str):
        y_column_names = [y_column_names]
    preprocess, options = take_target_options(preprocess, list(y_column_names or []), task)
    features, labels = describe_columns(columns, y_column_names, preprocess)
    rows = list(rows)
    if not rows:
        raise DataError("the relation has no rows; training needs data")
    y, classes = _read_labels(task, labels, rows)
    if options and y is not None:
        check_labels(options, y, labels[0].name)
    for column in features:
        check_training_values(column, column_values(rows, column.position, column.name))
    train_idx, test_idx = split_indices(
        len(rows), test_size, test_sampling, y if classes is not None else None, seed
    )
    if classes is not None and y is not None:
        missing = sorted(set(range(len(classes))) - set(y[train_idx].tolist()))
        if missing:
            raise DataError(
                f"class(es) {[classes[i] for i in missing]} have no training rows after the "
                f"{test_sampling!r} split; use test_sampling => 'stratified' or more data"
            )
    train_rows = [rows[i] for i in train_idx]
    test_rows = [rows[i] for i in test_idx]
    target = None
    if y is not None:
        target = (y if y.ndim == 1 else y[:, 0])[train_idx].astype(np.float64)
    encoders, train_blocks, names = [], [], []
    for column in features:
        encoder = Encoder(column)
        values = column_values(train_rows, column.position, column.name)
        train_blocks.append(encoder.fit(values, target))
        encoders.append(encoder)
        names.extend(_feature_names(encoder))
    transformer = RowTransformer(encoders=encoders, label_columns=labels, classes=classes)
    x_test = transformer.transform_table(test_rows)
    return Dataset(
        task=task,
        x_train=np.hstack(train_blocks),
        x_test=x_test,
        y_train=None if y is None else y[train_idx],
        y_test=None if y is None else y[test_idx],
        classes=classes,
        columns=transformer.to_json(),
        feature_names=names,
        target=options,
    )


class RowTransformer:
    """Applies a snapshot's stored preprocessing to rows of feature values.

    Build it once per model (``RowTransformer.from_json(snapshot_columns)``) and cache
    it next to the loaded model: ``transform`` is then cheap enough for one row.
    """

    def __init__(
        self,
        encoders: list[Encoder],
        label_columns: list[Column] | None = None,
        classes: list[Any] | None = None,
        labels_json: list[dict[str, Any]] | None = None,
    ) -> None:
        self.encoders = encoders
        self.names = [e.column.name for e in encoders]
        self.num_features = sum(e.width for e in encoders)
        self._labels_json = labels_json or [
            {"name": c.name, "pg_type": c.pg_type, "kind": c.kind, "classes": classes}
            for c in (label_columns or [])
        ]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RowTransformer:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise DataError(
                f"snapshot columns have format {data.get('format')!r}; this pgml-flow reads "
                f"format {SNAPSHOT_FORMAT}; retrain the model"
            )
        encoders = [Encoder.from_json(c) for c in data["features"]]
        return cls(encoders, labels_json=list(data.get("labels", [])))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "num_features": self.num_features,
            "features": [e.to_json() for e in self.encoders],
            "labels": self._labels_json,
        }

    def feature_labels(self) -> list[str]:
        """Each model input named after its column (``column 'vec' element 2`` for wider ones)."""
        labels = []
        for encoder in self.encoders:
            name = encoder.column.name
            labels += ([f"column {name!r}"] if encoder.width == 1 else
                       [f"column {name!r} element {k + 1}" for k in range(encoder.width)])
        return labels

    def _positional(self, rows: Sequence[Any]) -> bool:
        first = rows[0]
        if isinstance(first, Mapping):
            if all(name in first for name in self.names):
                return False
            if len(first) != len(self.names):
                raise FeatureCountMismatch(
                    f"the row has fields {list(first)}, but the model expects the feature "
                    f"columns {self.names}"
                )
        elif len(first) != len(self.names):
            raise FeatureCountMismatch(
                f"expected {len(self.names)} feature columns ({', '.join(self.names)}), "
                f"got {len(first)}"
            )
        return True

    def transform_table(self, rows: Sequence[Any]) -> np.ndarray:
        """Rows that still hold every relation column (label included), by position/name."""
        if not rows:
            return np.zeros((0, self.num_features))
        blocks = [
            e.transform(column_values(rows, e.column.position, e.column.name))
            for e in self.encoders
        ]
        return np.hstack(blocks)

    def transform(self, rows: Sequence[Any]) -> np.ndarray:
        """Rows of feature values only (``ROW(...)`` of ``pgml.predict``) -> (n, features).

        A row is a sequence in feature order, or a mapping (plpython's composite) whose
        keys are the feature names, or any keys in feature order (``ROW(a, b)`` is
        ``{"f1": a, "f2": b}``).
        """
        if not rows:
            return np.zeros((0, self.num_features))
        positional = self._positional(rows)
        if positional and isinstance(rows[0], Mapping):
            rows = [list(r.values()) for r in rows]
        blocks = []
        for i, encoder in enumerate(self.encoders):
            name = encoder.column.name
            values = [r[i] for r in rows] if positional else [r[name] for r in rows]
            blocks.append(encoder.transform(values))
        return np.hstack(blocks)


def transform(columns: Mapping[str, Any], rows: Sequence[Any]) -> np.ndarray:
    """One-shot :meth:`RowTransformer.transform` from the snapshot ``columns`` JSON."""
    return RowTransformer.from_json(columns).transform(rows)
