"""The in-database ML engine behind ``pgml.train`` / ``pgml.predict`` (no plpy, no SQL).

The plpython3u wrappers read rows and JSON from PostgreSQL, call the functions below
and write the results back.  Importing this package loads only numpy; scikit-learn,
XGBoost, LightGBM and CatBoost are imported when a model of theirs is trained or
loaded.  Import it before anything imports those libraries: it sets
``OMP_WAIT_POLICY=PASSIVE`` (unless set) so idle OpenMP threads do not spin.

Every error is a :class:`pgml_flow.errors.ModelError` subclass (finer classes in
``pgml_flow.engine.errors``: InvalidArgument, UnsupportedAlgorithm, InvalidHyperparams,
InvalidPreprocess, DataError, SplitError, FeatureCountMismatch, NonFiniteFeature,
TrainingFailed, IncompatibleModel) whose message is fit for the user: ``plpy.error(str(e))``.

Training (``pgml.train`` / ``train_joint`` / ``snapshot``)
---------------------------------------------------------
``prepare_dataset(task, columns, rows, y_column_names=None, *, test_size=0.25,
test_sampling="stratified", preprocess=None, seed=0) -> Dataset``
    ``task``: regression | classification | clustering | decomposition.
    ``columns``: the relation's ``[(name, pg_type), ...]`` in column order; type names as
    ``typname`` (``int4``, ``_float8``) or ``format_type`` (``integer``, ``real[]``).
    ``rows``: sequences in column order, or mappings by column name (plpy result rows).
    ``y_column_names``: str or list (several = train_joint); optional for clustering and
    decomposition (label columns are then just left out of the features).
    ``preprocess``: the jsonb argument as a dict, ``{"col": {"encode": ..., "impute":
    ..., "scale": ...}}``.  Returns ``Dataset`` with ``x_train``, ``x_test`` (float64
    ``(n, num_features)``), ``y_train``, ``y_test``, ``classes``, ``num_features``,
    ``feature_names`` and ``columns`` (JSON for ``pgml.snapshots.columns``, below).

``train(task, algorithm, dataset, hyperparams=None, search=None, search_params=None,
search_args=None, *, seed=0, check_stored=True) -> TrainResult``
    ``algorithm``: a ``pgml.algorithm`` value; ``search``: None | "grid" | "random";
    ``search_args``: ``{"n_iter": 10, "cv": 5}`` (defaults).  Returns ``TrainResult``:
    ``files`` ``[(path, bytes)]`` for ``pgml.files``, ``metrics`` (JSON for
    ``pgml.models.metrics``), ``hyperparams`` (user's + best searched, for
    ``pgml.models.hyperparams``), ``num_features``, ``key_metric`` (float | None),
    ``warnings`` (list[str], e.g. to ``plpy.notice``), ``model`` (the ``Model`` reloaded
    from ``files``, metrics were computed with it; with ``check_stored=False`` the same
    Model over the fitted estimator, nothing reloaded: the caller checks ``files``, as
    ``pgml.train`` does by compiling an XGBoost model's native form from them) and
    ``estimator`` (the fitted library object, e.g. for ``engine.native`` to compile).

``available_algorithms(task) -> list[str]``; ``key_metric(task) -> str`` (r2, f1,
silhouette, cumulative_explained_variance; higher is better, ``HIGHER_IS_BETTER``).

Prediction (``pgml.predict*``)
------------------------------
``load_model(files: Iterable[(path, bytes)]) -> Model``
    ``files``: ``SELECT path, data FROM pgml.files WHERE model_id = $1 ORDER BY path,
    part`` (parts of one path are concatenated).  Raises ``IncompatibleModel`` (retrain)
    on a scikit-learn/Python/numpy version mismatch.  Cache the Model per model id.
``Model.predict(x) -> ndarray (n,)``  regression value; classification class (index into
    the sorted classes for text labels, the label value for number/bool labels);
    clustering cluster number; decomposition first component.
``Model.predict_proba(x) -> ndarray (n, n_classes)``  columns in sorted class order.
``Model.predict_joint(x) -> ndarray (n, outputs)``  joint regression / all components.
    ``x``: float array ``(n, num_features)`` or one row ``(num_features,)``; a wrong
    width raises ``FeatureCountMismatch("expected N features, got M")``, a NaN / NULL or
    infinity the model's library refuses ``NonFiniteFeature`` naming the feature
    (:mod:`pgml_flow.engine.inputs`: which families score which values).
    ``Model.task``, ``.algorithm``, ``.num_features``, ``.classes`` come from meta.json.
``features_from_array(values, num_features, batch=False) -> ndarray (n, num_features)``
    The ``real[]``/``int[]``/``numeric[]``... forms: values used as is, NO snapshot
    preprocessing (upstream semantics); ``batch`` takes rows flattened (predict_batch).
``RowTransformer.from_json(snapshot_columns)`` then ``.transform(rows) -> ndarray``
    The ``ROW(...)`` form: applies the snapshot's encode/impute/scale.  A row is a
    sequence of feature values in feature order or a mapping (plpython composite) by
    feature name or in order.  ``transform(snapshot_columns, rows)`` is the one-shot form.

JSON shapes
-----------
``pgml.snapshots.columns``::

    {"format": 1, "num_features": 12,
     "features": [{"name": "color", "pg_type": "text", "kind": "text",     # number|bool|text
                   "position": 0, "array_length": null,                     # int for arrays
                   "preprocess": {"encode": "native", "impute": "mode", "scale": "preserve"},
                   "width": 1,                     # model inputs this column becomes
                   "categories": ["blue", "red"],  # text: sorted train values / ordinal list
                   "target_means": null, "target_prior": null,   # encode target only
                   "fill": [0.0] | null,           # imputed value per input (null: error)
                   "center": [0.0], "scale": [1.0],              # x' = (x - center) / scale
                   "statistics": {"rows": 80, "missing": 3, "distinct": 2, "mean": [..],
                                  "std_dev": [..], "min": [..], "max": [..],
                                  "median": [..], "mode": [..]}}, ...],
     "labels": [{"name": "y", "pg_type": "text", "kind": "text", "classes": ["a", "b"]}]}

Statistics are of the encoded TRAIN values (NULLs excluded), one entry per model input.

``pgml.models.metrics``: regression ``r2, mean_absolute_error, mean_squared_error``;
classification ``f1, precision, recall, accuracy, mcc`` (+ ``roc_auc, log_loss`` for
binary, from probabilities); clustering ``silhouette``; decomposition
``cumulative_explained_variance``; always ``fit_time, score_time`` (seconds); undefined
values are null.  With search, ``search_results`` under PostgresML's keys (scikit-learn's
``cv_results_``): ``"params": [{...}], "n_splits", "best_index", "mean_fit_time",
"std_fit_time", "mean_score_time", "std_score_time", "mean_test_score",
"std_test_score", "split{k}_test_score", "param_{name}"`` (lists, one entry per
candidate), ``"rank_test_score"``, and ours: ``"search", "scoring", "cv", "best_params"``.
"""

from __future__ import annotations

import os

# A backend shares the server's cores with every other backend.  OpenMP's default
# "active" wait keeps idle worker threads spinning; with XGBoost, LightGBM and
# scikit-learn each bringing an OpenMP pool, that made training several times slower
# on a loaded 2-core server.  libgomp reads this once, when it is loaded, so it is set
# here, before any of those libraries can be imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pgml_flow.engine.algorithms import ALGORITHMS, TASKS
from pgml_flow.engine.algorithms import available as available_algorithms
from pgml_flow.engine.dataset import Dataset, RowTransformer, prepare_dataset, transform
from pgml_flow.engine.metrics import HIGHER_IS_BETTER, KEY_METRICS, key_metric
from pgml_flow.engine.predict import Model, features_from_array
from pgml_flow.engine.storage import dump_model, load_model
from pgml_flow.engine.training import TrainResult, train

__all__ = [
    "ALGORITHMS",
    "HIGHER_IS_BETTER",
    "KEY_METRICS",
    "TASKS",
    "Dataset",
    "Model",
    "RowTransformer",
    "TrainResult",
    "available_algorithms",
    "dump_model",
    "features_from_array",
    "key_metric",
    "load_model",
    "prepare_dataset",
    "train",
    "transform",
]
