"""The rows a client's model is judged on, and the key metric of any model on them.

A client's training view (``pgml_flow_training.<model>__client_<id>``) lists its rows in
the spec's split order: by the split column (``split = { by = "created" }``: rows without
a value first, as the oldest) or, by default, by a hash of each row; ties by the hash.
``pgml.train(..., test_sampling => 'last')`` holds out its last ``test_size`` rows: the
newest rows, or the same hash-chosen rows at every training.

:func:`score` predicts those rows with a model through the ROW form of ``pgml.predict``
(``pgml_flow.predict_rows``: the model reads its input columns by name from the training
view's rows, whatever its features or preprocessing were) and computes the spec's key
metric, so that a champion and a challenger are always compared on the same rows, on the
metric the spec names.

A retrain reads the client's rows once (:func:`materialize`): a temporary table of the
training view's rows, numbered in split order, which the model choice
(:mod:`pgml_flow.selection`), the scoring here and the baseline statistics read instead of
evaluating the view again (it computes every feature and hashes every row for the order:
most of what scoring cost). Only ``pgml.train`` of the chosen model reads the view itself,
so that its snapshot names it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgml_flow import sqlfiles
from pgml_flow.errors import PgmlFlowError
from pgml_models.specs import HASH_SPLIT, ModelSpec, split_relation

SOURCE = "models"
#: key metrics scored on the probability of the positive class (two-class models only),
#: not on the predicted labels
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss"})


def order_by(spec: ModelSpec) -> sql.Composable:
    """The split order of the training view's rows (alias ``s``), for ORDER BY."""
    digest = sql.SQL("md5(s::text)")
    if spec.split_by == HASH_SPLIT:
        return digest
    return sql.SQL("s.{} NULLS FIRST, {}").format(sql.Identifier(spec.split_by), digest)


def test_rows(rows: int, test_size: float) -> int:
    """How many of ``rows`` pgml.train holds out (as pgml_flow.engine.split counts them)."""
    return math.ceil(rows * test_size) if test_size <= 1 else int(test_size)


def materialize(conn: psycopg.Connection, spec: ModelSpec, client_id: int) -> sql.Identifier:
    """The client's rows of the spec's training view (every column: a champion trained on
    other columns than the spec's now reads its own), read once into a temporary table
    (dropped at commit) with their number ``_row`` in split order (1 = the first): the
    table's name in pg_temp. The caller holds the transaction.
    """
    table = sql.Identifier(f"rows_{spec.project(client_id)}")
    conn.execute(sql.SQL(sqlfiles.query("drop_client_rows", SOURCE)).format(table=table))
    conn.execute(sql.SQL(sqlfiles.query("create_client_rows", SOURCE)).format(
        table=table, source=sql.Identifier(*split_relation(spec.training_view)),
        client_id=sql.Literal(int(client_id)), order=order_by(spec)))
    return table


def predictions(conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int,
                rows: int) -> tuple[list[float], list[float | None]]:
    """The held-out rows' targets and ``model_id``'s predictions of them (one query; None
    where the model cannot score a row).

    Raises :class:`~pgml_flow.errors.ModelError` when the model cannot be used at all.
    """
    y, predicted, _ = _predictions(conn, spec, client_id, model_id, None, rows)
    return y, predicted


def _predictions(conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int,
                 other_id: int | None, rows: int, table: sql.Identifier | None = None
                 ) -> tuple[list[float], list[float | None], list[float | None]]:
    from pgml_models.client import PgmlClient

    predict = sql.Identifier("pgml_flow", "predict_positive_rows"
                             if spec.key_metric in PROBABILITY_METRICS else "predict_rows")
    if table is None:  # the view itself
        query = sql.SQL(sqlfiles.query("holdout_predictions", SOURCE)).format(
            target=sql.Identifier(spec.target),
            source=sql.Identifier(*split_relation(spec.training_view)),
            order=order_by(spec), predict=predict,
        )
    else:
        query = sql.SQL(sqlfiles.query("holdout_predictions_of_rows", SOURCE)).format(
            target=sql.Identifier(spec.target), table=table, predict=predict)
    skip = rows - test_rows(rows, spec.test_size)
    found = PgmlClient(conn).fetch(query, {"client_id": client_id, "model_id": model_id,
                                           "other_id": other_id, "skip": max(skip, 0)})
    y, predicted, other = found[0] if found else (None, None, None)
    return [float(v) for v in y or []], list(predicted or []), list(other or [])


def metric(name: str, task: str, y: Sequence[float], predicted: Sequence[Any]) -> float | None:
    """``name`` (as pgml.models.metrics names it) of ``predicted`` against ``y``; None when
    it is undefined (no rows, a row without a prediction, a NaN or infinite one)."""
    if not y or len(predicted) != len(y) or any(p is None for p in predicted):
        return None  # a row the model cannot score: it cannot be judged on these rows
    if task == "regression":
        values = [float(p) for p in predicted]
        if not all(math.isfinite(v) for v in values):
            return None
        from sklearn import metrics as m

        scorer = {"r2": m.r2_score, "mean_absolute_error": m.mean_absolute_error,
                  "mean_squared_error": m.mean_squared_error}[name]
        value = float(scorer(y, values))
        return value if math.isfinite(value) else None
    if name in PROBABILITY_METRICS:  # predicted: each row's probability of the larger label
        import numpy as np

        from pgml_flow.engine.metrics import probability

        scores = np.asarray(predicted, dtype=np.float64)
        if len(set(y)) != 2 or not np.isfinite(scores).all():
            return None  # undefined on one class, as pgml.train leaves roc_auc out
        codes = (np.asarray(y) == max(y)).astype(np.int64)
        return probability(codes, np.column_stack([1.0 - scores, scores]))[name]
    from sklearn import metrics as m

    classes = sorted({*y, *(float(p) for p in predicted)})
    binary = len(classes) <= 2
    kwargs: dict[str, Any] = {"zero_division": 0, "average": "binary" if binary else "macro"}
    if binary:
        kwargs["pos_label"] = max(classes)
    labels = [float(p) for p in predicted]
    if name == "accuracy":
        return float(m.accuracy_score(y, labels))
    if name == "mcc":
        return float(m.matthews_corrcoef(y, labels))
    scorer = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[name]
    return float(scorer(y, labels, **kwargs))


def score_pair(conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int,
               other_id: int, rows: int, table: sql.Identifier | None = None
               ) -> tuple[float | None, float | None, int]:
    """:func:`score` of a challenger (``model_id``) and the champion (``other_id``) on the
    held-out rows, read once for both: the key metric of each (None: it cannot predict
    them) and how many rows there are.

    Reading a client's rows (its training view computes text lengths and hashes every row
    for the split order) cost as much as scoring them; a retrain read them twice. When one
    of the models cannot be used at all, each is scored alone, so that a broken champion
    does not stop its challenger from being judged.
    """
    try:
        y, predicted, other = _predictions(conn, spec, client_id, model_id, other_id, rows,
                                           table)
    except PgmlFlowError:
        after, held_out = score(conn, spec, client_id, model_id, rows, table)
        before, _ = score(conn, spec, client_id, other_id, rows, table)
        return after, before, held_out
    return (metric(spec.key_metric, spec.task, y, predicted),
            metric(spec.key_metric, spec.task, y, other), len(y))


def score(conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int,
          rows: int, table: sql.Identifier | None = None) -> tuple[float | None, int]:
    """The spec's key metric of ``model_id`` on the held-out rows, and how many there are;
    None when the model cannot predict them. ``table``: :func:`materialize`'s, read
    instead of the training view."""
    try:
        y, predicted, _ = _predictions(conn, spec, client_id, model_id, None, rows, table)
    except PgmlFlowError:
        return None, test_rows(rows, spec.test_size)
    return metric(spec.key_metric, spec.task, y, predicted), len(y)
