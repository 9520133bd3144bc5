"""Model specs: what a client-scoped model learns from, and how it is trained and retrained.

A spec is declarative data (TOML), so adding a model needs no change to pgml-flow:
write a training view in SQL, describe it in a file, and pass the file to the CLI with
``--specs FILE`` (or ``PGML_FLOW_MODEL_SPECS``).  The built-in specs (trajectory,
complexity, rework) are in ``pgml_models/specs/builtin.toml``; a user spec with the
same name replaces a built-in one.  See docs/models.md.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgml_flow.errors import PgmlFlowError, SpecError

BUILTIN_FILE = Path(__file__).resolve().parent / "specs" / "builtin.toml"
#: environment variable naming extra spec files or directories (os.pathsep-separated)
SPECS_ENV = "PGML_FLOW_MODEL_SPECS"
TASKS = ("regression", "classification")
#: the default key metric of each task
KEY_METRICS = {"regression": "r2", "classification": "f1"}
#: the metrics a spec may name as its key_metric (as pgml.models.metrics stores them)
METRICS = {
    "regression": ("r2", "mean_absolute_error", "mean_squared_error"),
    "classification": ("f1", "precision", "recall", "accuracy", "mcc", "roc_auc", "log_loss"),
}
#: key metrics where a smaller value is better (errors); for all the others, larger is
LOWER_IS_BETTER = frozenset({"mean_absolute_error", "mean_squared_error", "log_loss"})
#: how tables print a metric
_LABELS = {"mean_absolute_error": "mae", "mean_squared_error": "mse"}
#: the split columns of a spec: ``hash`` (a hash of each row) or a column of its training view
HASH_SPLIT = "hash"
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_CRON_FIELD = re.compile(r"^[\d*/,\-]+$")


@dataclass(frozen=True)
class RetrainingPolicy:
    """When the scheduler retrains a client's model."""

    #: cron expression (minute hour day-of-month month day-of-week), UTC
    schedule: str
    #: retrain only when at least this many training rows were added since the last run
    min_new_records: int
    #: retrain (and flag in analytics.model_quality) when the key metric is below this
    performance_threshold: float
    #: the newest training row must be at most this old, else the data is stale
    data_freshness_days: int


@dataclass(frozen=True)
class ModelSpec:
    """One client-scoped model: per client, a pgml project ``<name>__client_<id>``."""

    name: str
    task: str
    #: view (or table) with client_id, the feature columns and the target; rows = examples
    training_view: str
    target: str
    #: feature columns of training_view, in order
    features: tuple[str, ...]
    retraining: RetrainingPolicy
    algorithm: str = "linear"
    hyperparams: dict[str, Any] = field(default_factory=dict)
    search: str | None = None
    search_params: dict[str, Any] = field(default_factory=dict)
    search_args: dict[str, Any] = field(default_factory=dict)
    #: held out: the last rows of the client's training view in split order
    test_size: float = 0.25
    #: the split order: ``{"by": "created"}`` holds out the newest rows by that column of
    #: training_view (rows without a value count as the oldest), ``{"by": "hash"}`` (the
    #: default) rows chosen by a hash of each row; either holds out the same rows at every
    #: training, so champion and challenger are scored on rows neither was trained on
    split: dict[str, str] = field(default_factory=lambda: {"by": HASH_SPLIT})
    #: the metric that decides deployment and promotion (and performance_threshold's unit)
    key_metric: str = ""
    #: random seed of the algorithm (its random_state / seed), for reproducible trainings
    seed: int | None = None
    #: per-column preprocessing learned at training (pgml.train's preprocess): encodings of
    #: text and text[] columns, imputation, scaling; a spec with it is served by the ROW
    #: form of pgml.predict (the model reads the feature view's columns by name)
    preprocess: dict[str, Any] = field(default_factory=dict)
    #: model choice by validation (pgml_flow.selection): alternatives to the spec's own
    #: algorithm, hyperparams and preprocess, each a table of those keys (merged onto the
    #: spec's); per client, each is trained on the rows before the validation slice and the
    #: one with the best key metric on that slice is trained and judged like the spec
    candidates: tuple[dict[str, Any], ...] = ()
    #: the validation slice: this share (or number) of the rows before the held-out ones
    validation_size: float = 0.2
    #: fewer training rows than this for a client: that client is skipped
    min_training_rows: int = 50
    #: view with client_id, entity_id, features real[] (same order), is_open: the BI surface
    #: (analytics.predictions) predicts its open rows. Optional.
    feature_view: str | None = None
    #: optional timestamp column of training_view: how recent the client's newest row is
    #: (data_freshness_days). Without it the built-in models use mv_ml_training_summary.
    timestamp_column: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.key_metric:
            object.__setattr__(self, "key_metric", KEY_METRICS[self.task])

    @property
    def split_by(self) -> str:
        """The column whose order decides the held-out rows, or ``hash``."""
        return self.split.get("by", HASH_SPLIT)

    @property
    def reads_rows(self) -> bool:
        """The model reads named columns (ROW form), not a features array.

        The target column's entry (target options: transform, snap, calibration) is no
        feature preprocessing: a model with only that still reads the features array."""
        return any(column != self.target for column in self.preprocess)

    def hyperparams_with_seed(self) -> dict[str, Any]:
        """``hyperparams`` with the spec's seed as the algorithm's ``random_state`` (or
        CatBoost's ``random_seed``), unless they set one or the algorithm has none."""
        params = dict(self.hyperparams)
        if self.seed is None or {"random_state", "seed", "random_seed"} & set(params):
            return params
        from pgml_flow.engine import algorithms  # the estimator classes: at training only

        try:
            if algorithms.spec_for(self.task, self.algorithm).library == "catboost":
                params["random_seed"] = self.seed
            elif "random_state" in algorithms.accepted_params(self.task, self.algorithm):
                params["random_state"] = self.seed
        except PgmlFlowError:
            pass  # an unknown algorithm: pgml.train names it
        return params

    def project(self, client_id: int) -> str:
        """The pgml project of this model for one client."""
        return project_name(self.name, client_id)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data["candidates"] = [dict(c) for c in self.candidates]
        return data


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def beats(metric: str, new: float, old: float, margin: float = 0.0) -> bool:
    """Is ``new`` better than ``old`` by more than ``margin`` on ``metric``?"""
    return new < old - margin if lower_is_better(metric) else new > old + margin


def meets_threshold(metric: str, value: float, threshold: float) -> bool:
    """At most (errors) or at least (scores) the threshold."""
    return value <= threshold if lower_is_better(metric) else value >= threshold


def metric_label(metric: str) -> str:
    """A metric's name in tables: ``mae`` for mean_absolute_error, ``r2`` as is."""
    return _LABELS.get(metric, metric)


def project_name(model: str, client_id: int) -> str:
    """``<model>__client_<id>``: the naming scheme of client-scoped pgml projects."""
    return f"{model}__client_{int(client_id)}"


def split_relation(name: str) -> tuple[str, ...]:
    """``schema.view`` or ``view`` as identifier parts (for ``psycopg.sql.Identifier``)."""
    return tuple(name.split("."))


def builtin_specs() -> dict[str, ModelSpec]:
    return load_file(BUILTIN_FILE)


def load_specs(extra: Iterable[Path | str] = (), *, use_env: bool = True,
               builtin: bool = True) -> dict[str, ModelSpec]:
    """The built-in specs, then each extra file (or directory of ``*.toml``), in order.

    ``PGML_FLOW_MODEL_SPECS`` (paths separated by ``os.pathsep``) is read after the
    built-ins and before ``extra``.  A later spec replaces an earlier one of the same name.
    """
    specs = builtin_specs() if builtin else {}
    paths: list[Path] = []
    if use_env and os.environ.get(SPECS_ENV):
        paths += [Path(p) for p in os.environ[SPECS_ENV].split(os.pathsep) if p]
    paths += [Path(p) for p in extra]
    for path in paths:
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for file in files:
            specs.update(load_file(file))
    return specs


def load_file(path: Path) -> dict[str, ModelSpec]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist; check --specs / {SPECS_ENV}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid TOML: {exc}") from None
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise SpecError(f"spec file {path} has no [models.<name>] table; see docs/models.md")
    return {name: parse_spec(name, body, source=str(path)) for name, body in models.items()}


def get_spec(specs: Mapping[str, ModelSpec], name: str) -> ModelSpec:
    try:
        return specs[name]
    except KeyError:
        raise SpecError(
            f"no model spec named {name!r}; known: {', '.join(sorted(specs))} "
            "(add one with --specs FILE, see docs/models.md)"
        ) from None


def parse_spec(name: str, body: Any, *, source: str = "<spec>") -> ModelSpec:
    """Validate one ``[models.<name>]`` table; errors name the file, model and key."""
    where = f"{source}: model {name!r}"

    def fail(message: str) -> SpecError:
        return SpecError(f"{where}: {message}")

    if not isinstance(body, Mapping):
        raise fail("must be a table")
    if not _NAME.match(name) or len(name) > 40:
        raise fail("name must be lowercase letters, digits and single underscores "
                   "(at most 40 characters), e.g. 'cycle_time'")
    known = {f for f in ModelSpec.__dataclass_fields__ if f != "name"}
    unknown = set(body) - known
    if unknown:
        raise fail(f"unknown key(s) {sorted(unknown)}; valid keys: {', '.join(sorted(known))}")
    for key in ("task", "training_view", "target", "features", "retraining"):
        if key not in body:
            raise fail(f"missing required key {key!r}")
    task = body["task"]
    if task not in TASKS:
        raise fail(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    for key in ("training_view", "feature_view"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not _RELATION.match(value)):
            raise fail(f"{key} must be a view name like 'my_schema.my_view', got {value!r}")
    features = body["features"]
    if (not isinstance(features, list) or not features
            or not all(isinstance(f, str) and _COLUMN.match(f) for f in features)):
        raise fail("features must be a non-empty list of column names")
    if len(set(features)) != len(features):
        raise fail("features has duplicate columns")
    target = body["target"]
    if not isinstance(target, str) or not _COLUMN.match(target) or target in features:
        raise fail("target must be a column name that is not a feature")
    for key in ("hyperparams", "search_params", "search_args", "preprocess"):
        if not isinstance(body.get(key, {}), Mapping):
            raise fail(f"{key} must be a table, e.g. {key} = {{ max_depth = 3 }}")
    search = body.get("search")
    if search not in (None, "grid", "random"):
        raise fail(f"search must be 'grid' or 'random', got {search!r}")
    if search and not body.get("search_params"):
        raise fail("search needs search_params (each value a list to try)")
    timestamp_column = body.get("timestamp_column")
    if timestamp_column is not None and (not isinstance(timestamp_column, str)
                                         or not _COLUMN.match(timestamp_column)):
        raise fail(f"timestamp_column must be a column name, got {timestamp_column!r}")
    _check_target_options(body.get("preprocess", {}), target, task, fail)
    feature_rules = {c for c in body.get("preprocess", {}) if c != target}
    if feature_rules and body.get("feature_view") and task != "regression":
        raise fail("a spec with preprocess is served by the ROW form of pgml.predict, which "
                   "gives no probabilities; for a classification spec with a feature_view, "
                   "compute the features in the view instead (or drop feature_view)")
    key_metric = body.get("key_metric", KEY_METRICS[task])
    if key_metric not in METRICS[task]:
        raise fail(f"key_metric of a {task} spec must be one of {', '.join(METRICS[task])} "
                   f"(the names of pgml.models.metrics), got {key_metric!r}")
    split = body.get("split", {"by": HASH_SPLIT})
    if (not isinstance(split, Mapping) or set(split) != {"by"}
            or not isinstance(split["by"], str) or not _COLUMN.match(split["by"])):
        raise fail(f"split must be a table like {{ by = \"created\" }} (a timestamp column of "
                   f"training_view: the newest rows are held out) or {{ by = \"hash\" }}, "
                   f"got {split!r}")
    if split["by"] in features or split["by"] == target:
        raise fail(f"split.by {split['by']!r} is a feature or the target; name the column "
                   "that orders the rows in time (e.g. created)")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise fail(f"seed must be a non-negative integer, got {seed!r}")
    min_rows = body.get("min_training_rows", 50)
    if not isinstance(min_rows, int) or min_rows < 4:
        raise fail(f"min_training_rows must be an integer >= 4, got {min_rows!r}")
    test_size = body.get("test_size", 0.25)
    if not isinstance(test_size, int | float) or test_size <= 0:
        raise fail(f"test_size must be a positive number, got {test_size!r}")
    retraining = _policy(body["retraining"], fail)
    _check_threshold(retraining, key_metric, fail)
    candidates = _candidates(body.get("candidates", []), search, fail)
    validation_size = body.get("validation_size", 0.2)
    if (isinstance(validation_size, bool) or not isinstance(validation_size, int | float)
            or validation_size <= 0):
        raise fail(f"validation_size must be a positive number (a share of the rows before "
                   f"the held-out ones, or a row count), got {validation_size!r}")
    return ModelSpec(
        name=name, task=task, training_view=body["training_view"], target=target,
        features=tuple(features), retraining=retraining,
        algorithm=str(body.get("algorithm", "linear")),
        hyperparams=dict(body.get("hyperparams", {})), search=search,
        search_params=dict(body.get("search_params", {})),
        search_args=dict(body.get("search_args", {})), test_size=float(test_size),
        split={"by": str(split["by"])}, key_metric=key_metric, seed=seed,
        preprocess=dict(body.get("preprocess", {})), candidates=candidates,
        validation_size=float(validation_size), min_training_rows=min_rows,
        feature_view=body.get("feature_view"), timestamp_column=timestamp_column,
        description=str(body.get("description", "")),
    )


#: the keys of a candidate (``[[models.NAME.candidates]]``)
CANDIDATE_KEYS = ("name", "algorithm", "hyperparams", "preprocess")


def _candidates(body: Any, search: str | None, fail: Any) -> tuple[dict[str, Any], ...]:
    """``candidates``: a list of tables of CANDIDATE_KEYS, each different from the others."""
    if not isinstance(body, list) or not all(isinstance(c, Mapping) for c in body):
        raise fail("candidates must be a list of tables, e.g. [[models.NAME.candidates]] "
                   "with algorithm, hyperparams and/or preprocess")
    if body and search:
        raise fail("a spec with candidates cannot also search: list the hyperparameters "
                   "to try as candidates (each is judged on the validation slice)")
    found: list[dict[str, Any]] = []
    for n, candidate in enumerate(body, 1):
        unknown = set(candidate) - set(CANDIDATE_KEYS)
        if unknown or not candidate:
            raise fail(f"candidate {n} has unknown key(s) {sorted(unknown)}; a candidate has "
                       f"{', '.join(CANDIDATE_KEYS)}" if unknown else
                       f"candidate {n} is empty; give it an algorithm, hyperparams or preprocess")
        for key in ("hyperparams", "preprocess"):
            if not isinstance(candidate.get(key, {}), Mapping):
                raise fail(f"candidate {n}: {key} must be a table")
        if not isinstance(candidate.get("algorithm", ""), str) or not isinstance(
                candidate.get("name", ""), str):
            raise fail(f"candidate {n}: algorithm and name must be strings")
        if dict(candidate) in found:
            raise fail(f"candidate {n} repeats an earlier one")
        found.append(dict(candidate))
    return tuple(found)


#: keys of the target column's preprocess entry (pgml_flow.engine.targets, docs/models.md)
TARGET_OPTIONS = {"regression": ("transform", "snap", "classes", "min_class"),
                  "classification": ("calibration", "calibration_size")}


def _check_target_options(preprocess: Any, target: str, task: str, fail: Any) -> None:
    """The target column's preprocess entry may hold only its task's target options
    (checked fully by pgml.train; here so that a typo fails when the spec is loaded)."""
    entry = preprocess.get(target) if isinstance(preprocess, Mapping) else None
    if entry is None:
        return
    allowed = TARGET_OPTIONS[task]
    if not isinstance(entry, Mapping) or not entry or set(entry) - set(allowed):
        raise fail(f"preprocess.{target} (the target) takes the target options of a {task} "
                   f"spec, {', '.join(allowed)} (docs/models.md), got {entry!r}")


def _policy(body: Any, fail: Any) -> RetrainingPolicy:
    if not isinstance(body, Mapping):
        raise fail("retraining must be a table with schedule, min_new_records, "
                   "performance_threshold and data_freshness_days")
    required = ("schedule", "min_new_records", "performance_threshold", "data_freshness_days")
    missing = [k for k in required if k not in body]
    unknown = set(body) - set(required)
    if missing or unknown:
        raise fail(f"retraining needs exactly {', '.join(required)} "
                   f"(missing {missing or 'none'}, unknown {sorted(unknown) or 'none'})")
    schedule = body["schedule"]
    fields = schedule.split() if isinstance(schedule, str) else []
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise fail(f"retraining.schedule must be a 5-field cron expression like '0 2 * * 0', "
                   f"got {schedule!r}")
    for key in ("min_new_records", "data_freshness_days"):
        if not isinstance(body[key], int) or body[key] < 0:
            raise fail(f"retraining.{key} must be a non-negative integer, got {body[key]!r}")
    threshold = body["performance_threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(
            threshold):
        raise fail(f"retraining.performance_threshold must be a number (on the key metric), "
                   f"got {threshold!r}")
    return RetrainingPolicy(schedule, body["min_new_records"], float(threshold),
                            body["data_freshness_days"])


def _check_threshold(policy: RetrainingPolicy, key_metric: str, fail: Any) -> None:
    threshold = policy.performance_threshold
    if lower_is_better(key_metric):
        if threshold < 0:
            raise fail(f"retraining.performance_threshold is a {key_metric} (lower is better, "
                       f"in the target's unit) and cannot be negative, got {threshold!r}")
    elif not -1 <= threshold <= 1:
        raise fail(f"retraining.performance_threshold must be between -1 and 1 (the key "
                   f"metric {key_metric}), got {threshold!r}")
