"""The pgml SQL API inside PostgreSQL: what the plpython3u wrappers in ``sql/pgml`` call.

Each public function takes ``plpy`` (PL/Python's module) and ``GD`` (its per-session
dictionary) first, then the SQL arguments.  All data work is delegated to
:mod:`pgml_flow.engine`; this module only reads relations, writes the ``pgml`` tables
and keeps the per-backend cache.  Queries come from ``sql/pgml_queries.sql``; every
identifier that reaches dynamic SQL is quoted by PostgreSQL itself (``format('%I')``).

Errors raised by the engine (``ModelError``) become SQL errors with the engine's
message; a ``hint`` says what to do where the message alone would not.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pgml_flow import sqlfiles
from pgml_flow.errors import ModelError
from pgml_flow.server import boundary, child

F = TypeVar("F", bound=Callable[..., Any])

#: parameter types of each query of sql/pgml_queries.sql, for plpy.prepare
QUERY_TYPES: dict[str, list[str]] = {
    "relation_info": ["text"],
    "relation_columns": ["bigint"],
    "project_by_name": ["text"],
    "insert_project": ["text", "text"],
    "touch_project": ["bigint", "text"],
    "latest_snapshot": ["bigint"],
    "insert_snapshot": ["text", "text[]", "real", "text", "text", "text", "boolean"],
    "insert_model": ["bigint", "bigint", "integer", "text", "text", "text", "text", "text",
                     "text"],
    "insert_file": ["bigint", "text", "integer", "bytea"],
    "deployed_model": ["bigint"],
    "deployed_model_by_name": ["text"],
    "insert_deployment": ["bigint", "bigint", "text"],
    "model_info": ["bigint"],
    "model_files": ["bigint"],
    "snapshot_columns": ["bigint"],
    "candidate_most_recent": ["bigint", "text"],
    "candidate_best_score": ["bigint", "text", "text"],
    "candidate_rollback": ["bigint", "bigint", "text"],
    "delete_model": ["bigint"],
    "delete_project": ["text"],
    "delete_orphan_snapshots": [],
    "train_limits": [],
}
#: bytea values above this size are stored in several pgml.files parts
FILE_PART_BYTES = 64 * 1024 * 1024
#: models kept per backend by the Python path (LRU)
MODEL_CACHE_SIZE = 64
VERSION = "2.10.0"
NO_CANDIDATE = "No qualified models exist for this deployment."


class UserError(ModelError):
    """The SQL call cannot be served as given."""

    def __init__(self, message: str, hint: str | None = None, *, detail: str | None = None,
                 sqlstate: str = "22023") -> None:
        super().__init__(message)
        self.hint = hint
        self.detail = detail
        #: of the SQL error (pgml_flow.server.boundary); default invalid_parameter_value
        self.sqlstate = sqlstate


@dataclass
class CachedModel:
    model: Any
    project: str
    algorithm: str
    loaded_at: float = field(default_factory=time.time)
    hits: int = 0
    transformer: Any = None


@dataclass
class Session:
    """Per-backend state kept in ``GD``: prepared plans and loaded models."""

    plans: dict[str, Any] = field(default_factory=dict)
    models: OrderedDict[int, CachedModel] = field(default_factory=OrderedDict)


def _session(GD: dict[str, Any]) -> Session:
    session = GD.get("pgml_flow.session")
    if session is None:
        child.single_threaded_backend()  # before any model is loaded here: see child.py
        session = GD["pgml_flow.session"] = Session()
    return session


def _rows(plpy: Any, GD: dict[str, Any], name: str, *args: Any) -> list[dict[str, Any]]:
    session = _session(GD)
    plan = session.plans.get(name)
    if plan is None:
        plan = session.plans[name] = plpy.prepare(
            sqlfiles.query(name, "pgml_queries"), QUERY_TYPES[name]
        )
    return list(plan.execute(list(args)))


def _one(plpy: Any, GD: dict[str, Any], name: str, *args: Any) -> dict[str, Any] | None:
    rows = _rows(plpy, GD, name, *args)
    return rows[0] if rows else None


def sql_errors(function: F) -> F:
    """Turn errors into SQL errors with a message, DETAIL, HINT and SQLSTATE, the traceback
    in the server log (:mod:`pgml_flow.server.boundary`); every entry point has it."""
    return boundary.sql_errors(function)


def _json(text: Any) -> Any:
    if text is None:
        return {}
    return json.loads(text) if isinstance(text, str) else text


# -- relations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Relation:
    oid: int
    quoted: str
    columns: list[tuple[str, str]]


def _relation(plpy: Any, GD: dict[str, Any], relation_name: str) -> Relation:
    try:
        with plpy.subtransaction():
            info = _one(plpy, GD, "relation_info", relation_name)
    except plpy.SPIError as exc:
        _reraise_interrupt(exc)
        raise UserError(
            f"relation_name {relation_name!r} is not a valid table or view name",
            hint="pass a name such as 'my_table' or 'my_schema.my_view'", sqlstate="42602",
        ) from None
    if info is None:
        raise UserError(
            f"relation {relation_name!r} does not exist",
            hint="check the name and the search_path; schema-qualify it if needed",
            sqlstate="42P01",
        )
    if not info["readable"]:
        raise UserError(
            f"relation {relation_name!r} is not readable by the current role",
            hint=f"GRANT SELECT ON {info['quoted']} to this role", sqlstate="42501",
        )
    columns = [(r["name"], r["pg_type"]) for r in _rows(plpy, GD, "relation_columns", info["oid"])]
    return Relation(info["oid"], info["quoted"], columns)


def _read(plpy: Any, relation: Relation) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = plpy.cursor(f"SELECT * FROM {relation.quoted}")  # noqa: S608 (quoted by format %I)
    while True:
        batch = cursor.fetch(10_000)
        if not batch:
            return rows
        rows.extend(batch)


# -- projects --------------------------------------------------------------------------------
def _project(plpy: Any, GD: dict[str, Any], name: str, task: str | None) -> dict[str, Any]:
    project = _one(plpy, GD, "project_by_name", name)
    if project is None:
        if task is None:
            raise UserError(
                f"project {name!r} does not exist",
                hint="the first pgml.train of a project needs its task, e.g. 'regression'",
                sqlstate="42704",
            )
        created = _one(plpy, GD, "insert_project", name, task)
        assert created is not None
        return created
    if task is not None and task != project["task"]:
        raise UserError(
            f"project {name!r} is a {project['task']} project; it cannot train {task}",
            hint="use a new project name for a different task",
        )
    return project


def _existing_project(plpy: Any, GD: dict[str, Any], name: str) -> dict[str, Any]:
    project = _one(plpy, GD, "project_by_name", name)
    if project is None:
        raise UserError(f"project {name!r} does not exist",
                        hint="list projects with SELECT name FROM pgml.projects",
                        sqlstate="42704")
    return project


# -- training --------------------------------------------------------------------------------
@sql_errors
def train(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    task: str | None,
    relation_name: str | None,
    y_column_name: str | Sequence[str] | None,
    algorithm: str,
    hyperparams: Any,
    search: str | None,
    search_params: Any,
    search_args: Any,
    test_size: float,
    test_sampling: str,
    automatic_deploy: bool,
    materialize_snapshot: bool,
    preprocess: Any,
) -> list[tuple[str, str, str, bool]]:
    """``pgml.train`` / ``pgml.train_joint``: one transaction, deploys by the contract's rules."""
    from pgml_flow import engine
    from pgml_flow.engine.algorithms import resolve

    project = _project(plpy, GD, project_name, task)
    algorithm = resolve(project["task"], algorithm)
    y_columns: list[str] | None
    if isinstance(y_column_name, str):
        y_columns = [y_column_name]
    else:
        y_columns = list(y_column_name) if y_column_name else None
    if relation_name is None:
        previous = _one(plpy, GD, "latest_snapshot", project["id"])
        if previous is None:
            raise UserError(
                f"project {project_name!r} has no snapshot to reuse",
                hint="pass relation_name (and y_column_name) to pgml.train",
            )
        relation_name = previous["relation_name"]
        y_columns = y_columns or previous["y_column_name"]
        if test_size is None:
            test_size = previous["test_size"]
    relation = _relation(plpy, GD, relation_name)
    dataset = engine.prepare_dataset(
        project["task"], relation.columns, _read(plpy, relation), y_columns,
        test_size=0.25 if test_size is None else float(test_size),
        test_sampling=test_sampling or "stratified", preprocess=_json(preprocess),
    )
    snapshot = _one(
        plpy, GD, "insert_snapshot", relation_name, y_columns, test_size,
        test_sampling or "stratified", json.dumps(dataset.columns),
        json.dumps(_analysis(dataset)), bool(materialize_snapshot),
    )
    assert snapshot is not None
    if materialize_snapshot:
        _materialize(plpy, snapshot["id"], relation)
    fit = functools.partial(
        _fit, project["task"], algorithm, dataset, _json(hyperparams), search,
        _json(search_params), _json(search_args), native=_native_available(plpy),
        limits=_train_limits(plpy, GD, project["task"], algorithm), backend=os.getpid(),
    )
    stored: list[Fitted] = []

    def store(fitted: Fitted) -> None:  # while the child compiles the native form (_fit)
        model_id = _store_model(plpy, GD, project, snapshot["id"], algorithm, search,
                                search_params, search_args, fitted, [])
        stored.append(replace(fitted, model_id=model_id))  # a copy: _fit empties its files

    # In a forked child, so that a cancel, statement_timeout or shutdown stops it (child.py);
    # nothing is written before the fit succeeded, and all of it in this statement's
    # transaction, which an error in the child after ``store`` rolls back.
    result = child.run(plpy, fit, what=algorithm, early=store, wait=False)
    try:
        for warning in result.warnings:
            plpy.notice(f"{algorithm}: {warning}")
        compiled = _native_files(plpy, result.native, algorithm)
        files = stored[0].files if stored else result.files
        if not compiled and not result.stored_checked:
            engine.load_model(files)  # the check of its native form did not pass: reload
        if stored:
            model_id = stored[0].model_id
            _store_files(plpy, GD, model_id, compiled)
        else:
            model_id = _store_model(plpy, GD, project, snapshot["id"], algorithm, search,
                                    search_params, search_args, result, compiled)
    finally:
        child.reap()  # the training child ended while its model was checked and stored
    deployed = False
    if automatic_deploy:
        current = _one(plpy, GD, "deployed_model", project["id"])
        key = engine.key_metric(project["task"])
        old = _json(current["metrics"]).get(key) if current else None
        new = result.key_metric
        if current is None or old is None or new is None or new >= old:
            _rows(plpy, GD, "insert_deployment", project["id"], model_id, "new_score")
            deployed = True
        else:
            plpy.notice(f"model {model_id} not deployed: its {key} {new:.4g} is worse than the "
                        f"deployed model {current['model_id']}'s {old:.4g}")
    _rows(plpy, GD, "touch_project", project["id"], dt.datetime.now(dt.UTC).isoformat())
    # The model is loaded into this backend's cache at its first prediction: the trained
    # estimator stays in the child, and a session that only trains never pays for loading.
    return [(project_name, project["task"], algorithm, deployed)]


@dataclass
class NativeCandidate:
    """The compiled form of a model, with what the library predicts on sample rows."""

    #: without the row section (array forms only)
    blob: bytes
    #: with the snapshot's row section; None when it cannot be compiled (``row_problem``)
    with_row: bytes | None
    row_problem: str | None
    #: held-out rows (:func:`_check_rows`), rounded to float32 as ``real[]`` delivers them
    x: Any
    #: the library's predictions on ``x``
    expected: Any
    #: the model has target options (engine.targets): its blobs end with an output section
    output: bool = False
    #: calibrated models: the Python path's probabilities on ``x``, checked natively too
    probabilities: Any = None
    #: compiled from the stored model file itself (XGBoost's JSON): its check checks that too
    from_stored: bool = False


@dataclass
class Fitted:
    """What the training child sends back: the model's files and facts, not the model."""

    files: list[tuple[str, bytes]]
    metrics: dict[str, Any]
    hyperparams: dict[str, Any]
    num_features: int
    key_metric: float | None
    warnings: list[str]
    native: NativeCandidate | None
    #: were the files reloaded (False: ``native`` was compiled from them and its check in
    #: the backend checks them, or reloads them there if it cannot run)
    stored_checked: bool = True
    #: the backend's: the model's id once stored (the early part of train)
    model_id: int = 0


def _fit(
    task: str, algorithm: str, dataset: Any, hyperparams: Any, search: str | None,
    search_params: Any, search_args: Any, *, native: bool, limits: Any = None,
    backend: int | None = None,
) -> Fitted:
    """The training child's work: pure Python (never plpy), run by :func:`child.run`."""
    from pgml_flow import engine
    from pgml_flow.engine import parallel

    if limits is not None and os.getpid() != backend:  # not when child.run could not fork:
        parallel.configure(limits, values=dataset.x_train.size)  # the backend stays 1 thread
    # An XGBoost model's native form is compiled from its stored JSON and checked against
    # the fitted model's predictions (_native_files): that checks the stored file, so it is
    # not reloaded here (engine.train's check_stored), and the test split is scored with
    # the fitted model (the same predictions: XGBoost's JSON is exact).
    from_stored = native and _compiles_from_stored(task, algorithm)
    result = engine.train(task, algorithm, dataset, hyperparams, search, search_params,
                          search_args, check_stored=not from_stored)
    fitted = Fitted(result.files, result.metrics, result.hyperparams, result.num_features,
                    result.key_metric, result.warnings, None, result.stored_checked)
    # the backend stores the model now (train's ``store``) while the native form compiles
    # here: on two cores, the two overlap
    sent = child.send_early(fitted)
    fitted.native = _compile_native(result, dataset) if native else None  # may add a warning
    if not fitted.stored_checked and (fitted.native is None or not fitted.native.from_stored):
        engine.load_model(result.files)  # no native form checks the file: reload it
        fitted.stored_checked = True
    if sent:
        fitted.files = []  # the backend has them
    return fitted


def _compiles_from_stored(task: str, algorithm: str) -> bool:
    """Is the algorithm's native form compiled from its stored file (XGBoost)?"""
    from pgml_flow.engine import algorithms, storage

    try:
        library = algorithms.spec_for(task, algorithm).library
    except ModelError:  # reported by engine.train with the other argument checks
        return False
    return library in storage.COMPILED_FROM_STORED


class _Warm:
    #: tasks whose metrics this backend has computed once (metrics.warm_up)
    tasks: set[str] = set()


def _train_limits(plpy: Any, GD: dict[str, Any], task: str, algorithm: str) -> Any:
    """The training's bounds (superuser-only settings), and its library imported here.

    Importing the estimator's library in the backend, once per session, spares every
    training child the import (about a second for XGBoost, more than the fit of a small
    table); its OpenMP runtime loads single-threaded here (``child.single_threaded_backend``)
    and the child gives it the threads of :class:`~pgml_flow.engine.parallel.Limits`.
    """
    import contextlib

    # the compiler too (its import, a few ms, would be repeated by every training child)
    from pgml_flow.engine import algorithms, metrics, native, parallel  # noqa: F401

    # an unknown algorithm is reported by the training child, with the other argument checks
    with contextlib.suppress(ModelError):
        algorithms.accepted_params(task, algorithm)
    parallel.openmp_libraries()  # looked up once here, not in every training child
    if task not in _Warm.tasks:  # each child would otherwise pay their first call
        metrics.warm_up(task)
        _Warm.tasks.add(task)
    # after the import, which cannot be interrupted: this query acts on a cancel it delayed
    row = _one(plpy, GD, "train_limits")
    return parallel.Limits.from_settings(row and row["fits"], row and row["threads"])


def _analysis(dataset: Any) -> dict[str, Any]:
    """``pgml.snapshots.analysis``: PostgresML's ``samples`` (every row read), and more."""
    return {
        "samples": len(dataset.x_train) + len(dataset.x_test),
        "train_rows": len(dataset.x_train),
        "test_rows": len(dataset.x_test),
        "num_features": dataset.num_features,
        "feature_names": list(dataset.feature_names),
    }


def format_sql(plpy: Any, template: str, *args: Any) -> str:
    """``format(template, args...)`` evaluated by PostgreSQL, which quotes ``%I`` identifiers."""
    placeholders = ", ".join(f"${i + 2}" for i in range(len(args)))
    plan = plpy.prepare(f"SELECT format($1, {placeholders}) AS q",
                        ["text", *["text"] * len(args)])
    return str(plan.execute([template, *[str(a) for a in args]])[0]["q"])


def _materialize(plpy: Any, snapshot_id: int, relation: Relation) -> None:
    plpy.execute(format_sql(plpy, "CREATE TABLE pgml.%I AS SELECT * FROM %s",
                            f"snapshot_{int(snapshot_id)}", relation.quoted))


def _store_model(
    plpy: Any, GD: dict[str, Any], project: dict[str, Any], snapshot_id: int, algorithm: str,
    search: str | None, search_params: Any, search_args: Any, result: Any,
    extra_files: list[tuple[str, bytes]],
) -> int:
    row = _one(
        plpy, GD, "insert_model", project["id"], snapshot_id, result.num_features, algorithm,
        json.dumps(result.hyperparams), json.dumps(_finite(result.metrics)), search,
        json.dumps(_json(search_params)), json.dumps(_json(search_args)),
    )
    assert row is not None
    model_id = int(row["id"])
    _store_files(plpy, GD, model_id, [*result.files, *extra_files])
    return model_id


def _store_files(plpy: Any, GD: dict[str, Any], model_id: int,
                 files: list[tuple[str, bytes]]) -> None:
    for path, data in files:
        for part, start in enumerate(range(0, max(len(data), 1), FILE_PART_BYTES)):
            _rows(plpy, GD, "insert_file", model_id, path, part,
                  data[start: start + FILE_PART_BYTES])


def _native_available(plpy: Any) -> bool:
    return bool(plpy.execute(
        "SELECT to_regprocedure('pgml.native_eval(bytea, real[])') IS NOT NULL AS ok"
    )[0]["ok"])


def _compile_native(result: Any, dataset: Any) -> NativeCandidate | None:
    """The compiled form for the C scorer and the library's predictions to check it with.

    The blob also carries the snapshot's columns and preprocessing (its row section) so
    that the ROW form is native too, unless they cannot be compiled.  Runs in the training
    child; :func:`_native_files` checks the result in the backend.  An XGBoost model is
    compiled from its stored file (``from_stored``), whose check that is then too.
    """
    import numpy as np

    from pgml_flow.engine import native, storage

    model = result.model
    if (result.estimator is None or model.task not in ("regression", "classification")
            or model.num_outputs > 1):
        return None
    path = storage.COMPILED_FROM_STORED.get(model.meta["library"])
    stored = next((data for name, data in result.files if name == path), None)
    try:
        blob = native.compile_model(result.estimator, stored=stored)
    except ModelError as exc:
        if type(result.estimator).__module__.startswith("catboost"):
            # CatBoost is native unless the model uses its own categorical/text features
            # or a non-symmetric grow policy: say why this one is not (a notice)
            result.warnings.append(f"served by the Python path, not the C scorer: {exc}")
        return None
    rows = dataset.x_test if len(dataset.x_test) else dataset.x_train
    x32 = np.asarray(rows[:CHECK_ROWS_SCANNED], dtype=np.float32)
    expected = model.predict(x32.astype(np.float64))
    chosen = _check_rows(x32, expected, model.task == "classification")
    x32, expected = x32[chosen], expected[chosen]
    try:
        with_row, problem = native.add_row_section(blob, dataset.columns), None
    except native.NotCompilable as exc:
        with_row, problem = None, str(exc)
    if not model.target:
        return NativeCandidate(blob, with_row, problem, x32, expected,
                               from_stored=stored is not None)
    # target options (log1p, snapping, calibration): the output section ends both blobs
    try:
        blob = native.add_output_section(blob, model.meta["target"])
        with_row = with_row and native.add_output_section(with_row, model.meta["target"])
    except ModelError:
        return None
    proba = model.predict_proba(x32.astype(np.float64)) if model.target.calibration else None
    return NativeCandidate(blob, with_row, problem, x32, expected, True, proba,
                           stored is not None)


#: the held-out rows a native form is checked on: the first CHECK_ROWS of the first
#: CHECK_ROWS_SCANNED, and among the others a row of each class and non-finite ones
CHECK_ROWS = 64
CHECK_ROWS_SCANNED = 200
#: at most this many non-finite rows beyond the first CHECK_ROWS
CHECK_NON_FINITE_ROWS = 8


def _check_rows(x32: Any, expected: Any, classification: bool) -> Any:
    """The indices of the rows of ``x32`` that :func:`_native_files` checks a native form on.

    Why not all 200: the backend converts every checked value to ``real[]`` one float at a
    time (PL/Python goes through each value's text form), about 40 µs a row of 64 features:
    10.6 ms of CPU for 200 rows, 4 ms for 64, in a training of 0.4 s.  A wrong blob (a
    label mapping, base score, objective or tree layout the compiler got wrong) disagrees
    on most rows, so the first CHECK_ROWS catch it; the paths a few rows take are kept
    covered by their own rows: the first row the library predicts each class for, and up
    to CHECK_NON_FINITE_ROWS rows with a NaN or infinite value (missing-value directions,
    input rules).
    """
    import numpy as np

    chosen = set(range(min(len(x32), CHECK_ROWS)))
    if classification and len(expected):
        chosen.update(np.unique(expected, return_index=True)[1].tolist())
    non_finite = np.flatnonzero(~np.isfinite(x32).all(axis=1))
    chosen.update(non_finite[:CHECK_NON_FINITE_ROWS].tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def _native_files(
    plpy: Any, candidate: NativeCandidate | None, algorithm: str
) -> list[tuple[str, bytes]]:
    """The compiled form, stored only if ``pgml.native_eval`` predicts what Python predicts.

    The check runs the blob on held-out rows (:func:`_check_rows`; inputs rounded to float32, as
    ``real[]`` delivers them): any disagreement, e.g. a label mapping the compiler cannot
    express, keeps the model on the Python path.  If the row section cannot be compiled
    (a notice says why) or the server's scorer predates row sections, only the ROW form
    stays on Python.  A scorer that predates input rules (installed but not yet loaded:
    it is preloaded) gets the blob without them: its NaN and infinite rows go to Python.

    One statement in the usual case: the blob with all its sections scores the rows; only
    when the scorer refuses it are they tried one by one (:func:`_native_blob_probed`),
    which parsed and validated the blob twice more on every training.
    """
    import numpy as np

    if candidate is None:
        return []
    blob = candidate.blob if candidate.with_row is None else candidate.with_row
    try:
        with plpy.subtransaction():  # an older scorer refuses a section or the model's kind
            got = _native_eval_rows(plpy, "native_eval_rows", blob, candidate.x)
    except plpy.SPIError as exc:
        _reraise_interrupt(exc)
        probed = _native_blob_probed(plpy, candidate, algorithm)
        if probed is None:
            return []
        blob = probed
        got = _native_eval_rows(plpy, "native_eval_rows", blob, candidate.x)
    else:
        if candidate.with_row is None:
            plpy.notice(f"{algorithm}: the ROW form of pgml.predict stays on the Python "
                        f"path: {candidate.row_problem}")
    if not np.allclose(got, candidate.expected, rtol=1e-4, atol=1e-4):
        plpy.notice(f"{algorithm}: the native scorer disagrees with the library on "
                    "held-out rows; this model is served by the Python path")
        return []
    if candidate.probabilities is not None:  # calibrated probabilities, compared too
        got = _native_eval_rows(plpy, "native_eval_proba_rows", blob, candidate.x)
        if not np.allclose(got, candidate.probabilities, rtol=1e-4, atol=1e-4):
            plpy.notice(f"{algorithm}: the native scorer's calibrated probabilities disagree "
                        "with the library's; this model is served by the Python path")
            return []
    return [("native", blob)]


def _native_blob_probed(plpy: Any, candidate: NativeCandidate, algorithm: str) -> bytes | None:
    """The blob an older scorer reads, its sections tried one by one (a notice says what
    stays on the Python path); None: it reads none (a notice says why)."""
    from pgml_flow.engine import native

    plan = plpy.prepare("SELECT pgml.native_eval($1, $2) AS p", ["bytea", "real[]"])
    blob, with_row, x32 = candidate.blob, candidate.with_row, candidate.x
    if candidate.output and not _reads_output(plpy, plan, blob, x32[0].tolist()):
        plpy.notice(f"{algorithm}: the server's pgml_native does not read target options "
                    "(log1p, snap, calibration); rebuild it (./dev setup) to score this "
                    "model natively; it is served by the Python path")
        return None
    try:
        with plpy.subtransaction():  # a scorer older than input rules rejects them
            plan.execute([blob, x32[0].tolist()])
    except plpy.SPIError as exc:
        _reraise_interrupt(exc)
        blob = native.without_input_rules(blob)  # non-finite rows then go to Python
        with_row = with_row and native.without_input_rules(with_row)
        try:  # a scorer older than the model's kind (CatBoost's oblivious trees) refuses it
            with plpy.subtransaction():
                plan.execute([blob, x32[0].tolist()])
        except plpy.SPIError as exc2:
            _reraise_interrupt(exc2)
            plpy.notice(f"{algorithm}: the server's pgml_native does not read this model's "
                        f"compiled form ({exc2}); rebuild it (./dev setup) to score it "
                        "natively; it is served by the Python path")
            return None
    if with_row is None:
        plpy.notice(f"{algorithm}: the ROW form of pgml.predict stays on the Python "
                    f"path: {candidate.row_problem}")
    else:
        try:
            with plpy.subtransaction():  # an older scorer rejects version 2 blobs
                plan.execute([with_row, x32[0].tolist()])
            blob = with_row
        except plpy.SPIError as exc:
            _reraise_interrupt(exc)
            plpy.notice(f"{algorithm}: the server's pgml_native does not read row "
                        f"sections ({exc}); rebuild it (./dev setup) for a native ROW form")
    return blob


def _native_eval_rows(plpy: Any, query: str, blob: bytes, x32: Any) -> Any:
    """``pgml.native_eval`` (or ``_proba``) of every row of ``x32`` in one statement.

    The C function keeps the parsed blob for one statement only, so a statement per row
    parsed and validated a 1,600-tree model 200 times (about 0.2 s of every training).
    """
    import numpy as np

    plan = plpy.prepare(sqlfiles.query(query, "pgml_queries"),
                        ["bytea", "real[]", "integer", "integer"])
    rows = plan.execute([blob, x32.reshape(-1).tolist(), int(x32.shape[1]), int(x32.shape[0])])
    return np.array([r["p"] for r in rows], dtype=float)


def _reads_output(plpy: Any, plan: Any, blob: bytes, row: list[float]) -> bool:
    """Does the server's scorer read output sections?  One built before them refuses the
    blob (unknown flag), also without input rules (which a still older one refuses)."""
    from pgml_flow.engine import native

    for attempt in (blob, native.without_input_rules(blob)):
        try:
            with plpy.subtransaction():
                plan.execute([attempt, row])
            return True
        except plpy.SPIError as exc:
            _reraise_interrupt(exc)
    return False


def _reraise_interrupt(exc: Exception) -> None:
    """A cancel or timeout caught with other SPI errors must still end the statement."""
    if getattr(exc, "sqlstate", None) == "57014":  # query_canceled
        raise exc


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@sql_errors
def snapshot(
    plpy: Any, GD: dict[str, Any], relation_name: str, y_column_name: str, test_size: float,
    test_sampling: str, preprocess: Any,
) -> list[tuple[str, str]]:
    """``pgml.snapshot``: record a relation's columns, split and statistics."""
    from pgml_flow import engine

    relation = _relation(plpy, GD, relation_name)
    task = "regression"
    types = dict(relation.columns)
    if y_column_name not in types:
        raise UserError(f"column {y_column_name!r} is not in {relation_name!r}",
                        hint=f"columns are: {', '.join(types)}", sqlstate="42703")
    if types[y_column_name] in ("text", "boolean") or types[y_column_name].startswith(
        "character"
    ):
        task = "classification"
    dataset = engine.prepare_dataset(
        task, relation.columns, _read(plpy, relation), [y_column_name],
        test_size=float(test_size), test_sampling=test_sampling, preprocess=_json(preprocess),
    )
    _one(plpy, GD, "insert_snapshot", relation_name, [y_column_name], test_size, test_sampling,
         json.dumps(dataset.columns), json.dumps(_analysis(dataset)), False)
    return [(relation_name, y_column_name)]


# -- deployment ------------------------------------------------------------------------------
@sql_errors
def deploy(
    plpy: Any, GD: dict[str, Any], project_name: str, strategy: str, algorithm: str | None
) -> list[tuple[str, str, str]]:
    """``pgml.deploy(project, strategy, algorithm)``."""
    from pgml_flow import engine

    project = _existing_project(plpy, GD, project_name)
    if strategy == "best_score":
        key = engine.key_metric(project["task"])
        candidate = _one(plpy, GD, "candidate_best_score", project["id"], algorithm, key)
    elif strategy == "most_recent":
        candidate = _one(plpy, GD, "candidate_most_recent", project["id"], algorithm)
    elif strategy == "rollback":
        current = _one(plpy, GD, "deployed_model", project["id"])
        if current is None:
            raise UserError(NO_CANDIDATE, hint=f"project {project_name!r} was never deployed")
        candidate = _one(plpy, GD, "candidate_rollback", project["id"], current["model_id"],
                         algorithm)
    elif strategy == "specific":
        raise UserError("strategy 'specific' deploys one model: call pgml.deploy(model_id)")
    else:
        raise UserError(
            f"strategy {strategy!r} is used by automatic deployment only",
            hint="use best_score, most_recent or rollback, or pgml.deploy(model_id)",
        )
    if candidate is None:
        raise UserError(NO_CANDIDATE)
    _rows(plpy, GD, "insert_deployment", project["id"], candidate["id"], strategy)
    return [(project_name, strategy, candidate["algorithm"])]


@sql_errors
def deploy_model(plpy: Any, GD: dict[str, Any], model_id: int) -> list[tuple[str, str, str]]:
    """``pgml.deploy(model_id)``: strategy ``specific``."""
    info = _model_info(plpy, GD, model_id)
    _rows(plpy, GD, "insert_deployment", info["project_id"], model_id, "specific")
    return [(info["project"], "specific", info["algorithm"])]


def _model_info(plpy: Any, GD: dict[str, Any], model_id: int) -> dict[str, Any]:
    info = _one(plpy, GD, "model_info", model_id)
    if info is None:
        raise UserError(f"model {model_id} does not exist",
                        hint="list models with SELECT * FROM pgml.trained_models",
                        sqlstate="42704")
    return info


# -- prediction ------------------------------------------------------------------------------
def _deployed_id(plpy: Any, GD: dict[str, Any], project_name: str) -> int:
    """The deployed model now: looked up at every call, so a redeploy is seen at once."""
    row = _one(plpy, GD, "deployed_model_by_name", project_name)
    if row is None:
        _existing_project(plpy, GD, project_name)
        raise UserError(f"project {project_name!r} has no deployed model",
                        hint="deploy one with pgml.deploy(project_name, 'most_recent')",
                        sqlstate="42704")
    return int(row["model_id"])


def _cache_put(session: Session, model_id: int, cached: CachedModel) -> None:
    session.models[model_id] = cached
    session.models.move_to_end(model_id)
    while len(session.models) > MODEL_CACHE_SIZE:
        session.models.popitem(last=False)


def _cached(plpy: Any, GD: dict[str, Any], key: int | str) -> CachedModel:
    from pgml_flow import engine
    from pgml_flow.engine.errors import IncompatibleModel

    model_id = key if isinstance(key, int) else _deployed_id(plpy, GD, key)
    session = _session(GD)
    cached = session.models.get(model_id)
    if cached is None:
        info = _model_info(plpy, GD, model_id)
        files = [(r["path"], r["data"]) for r in _rows(plpy, GD, "model_files", model_id)
                 if r["path"] != "native"]
        try:
            model = engine.load_model(files)
        except IncompatibleModel as exc:
            # name the model: a BI read reaches it through a view, and only this one is at fault
            raise IncompatibleModel(
                f"model {model_id} of project {info['project']!r}: {exc}") from exc
        cached = CachedModel(model, info["project"], info["algorithm"])
        _cache_put(session, model_id, cached)
    else:
        session.models.move_to_end(model_id)
    cached.hits += 1
    return cached


def _transformer(plpy: Any, GD: dict[str, Any], model_id: int, cached: CachedModel) -> Any:
    from pgml_flow import engine

    if cached.transformer is None:
        row = _one(plpy, GD, "snapshot_columns", model_id)
        if row is None or row["columns"] is None:
            raise UserError(f"model {model_id} has no snapshot to preprocess rows with",
                            hint="use the array form of pgml.predict")
        cached.transformer = engine.RowTransformer.from_json(_json(row["columns"]))
    return cached.transformer


def _model_id(plpy: Any, GD: dict[str, Any], key: int | str) -> int:
    return key if isinstance(key, int) else _deployed_id(plpy, GD, key)


def _predict_array(
    plpy: Any, GD: dict[str, Any], key: int | str, features: Sequence[Any], *, batch: bool = False
) -> tuple[Any, Any]:
    """The model for ``key`` and the array form's features as a 2-D array."""
    from pgml_flow import engine

    cached = _cached(plpy, GD, key)
    x = engine.features_from_array(_flatten(features), cached.model.num_features, batch=batch)
    return cached.model, x


@sql_errors
def predict(plpy: Any, GD: dict[str, Any], key: int | str, features: Sequence[Any]) -> float:
    model, x = _predict_array(plpy, GD, key, features)
    return _reals(model.predict(x))[0]


@sql_errors
def predict_row(plpy: Any, GD: dict[str, Any], key: int | str, row: Any) -> float:
    """The ``ROW(...)`` form; ``row`` is ``to_json(row)``: an object in column order."""
    if isinstance(row, str):
        row = json.loads(row)
    model_id = _model_id(plpy, GD, key)
    cached = _cached(plpy, GD, model_id)
    transformer = _transformer(plpy, GD, model_id, cached)
    x = _as_native(cached.model, transformer.transform([row]))
    # an infinity the model refuses is named by its column, not its feature number
    cached.model.check(x, transformer.feature_labels())
    return _reals(cached.model.predict(x))[0]


def _as_native(model: Any, x: Any) -> Any:
    """The ROW form's features as the native scorer's trees read them.

    The C scorer walks trees on float32 features (preprocessing done in double first);
    XGBoost and scikit-learn's trees convert to float32 themselves, but LightGBM compares
    float64 inputs with its double thresholds, so a double column's value within float32
    rounding of a split went the other way on the two paths. Rounding LightGBM's inputs to
    float32 here makes both paths take the same branch (real[] inputs are float32 already).
    """
    import numpy as np

    from pgml_flow.engine.predict import LightGBMBackend

    if isinstance(model.backend, LightGBMBackend):
        return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)
    return x


@sql_errors
def predict_rows(plpy: Any, GD: dict[str, Any], key: int | str,
                 rows: Sequence[Any], positive: bool = False) -> list[float | None]:
    """Many rows of the ``ROW(...)`` form at once (``pgml_flow.predict_rows``, the BI
    surface's read of a model with preprocessing): each row ``to_json(row)``; one transform
    and one prediction for all of them. A row the model cannot score (a value it refuses,
    a missing column: the ROW form's error) and a NaN or infinite prediction give None.

    ``positive`` (``pgml_flow.predict_positive_rows``): a two-class model's probability of
    its larger label instead, what a spec whose key metric is ``roc_auc`` or ``log_loss``
    compares a champion and a challenger on (pgml_flow.holdout).
    """
    from pgml_flow.errors import ModelError

    model_id = _model_id(plpy, GD, key)
    cached = _cached(plpy, GD, model_id)
    transformer = _transformer(plpy, GD, model_id, cached)
    labels = transformer.feature_labels()
    values = [json.loads(r) if isinstance(r, str) else r for r in rows]
    classes = cached.model.classes
    if positive and (cached.model.task != "classification" or len(classes or ()) != 2):
        raise UserError(f"model {model_id} is not a two-class classifier: the probability of "
                        "a positive class (key metric roc_auc or log_loss) needs two classes; "
                        "use a label metric such as f1 or accuracy")

    def score(batch: list[Any]) -> list[float]:
        x = _as_native(cached.model, transformer.transform(batch))
        cached.model.check(x, labels)
        if not positive:
            return _reals(cached.model.predict(x))
        return _reals(cached.model.predict_proba(x)[:, 1])

    if not values:
        return []
    try:
        out: list[float | None] = list(score(values))
    except ModelError:  # one row or more cannot be scored: find them, row by row
        out = []
        for value in values:
            try:
                out.append(score([value])[0])
            except ModelError:
                out.append(None)
    return [None if v is None or not math.isfinite(v) else v for v in out]


@sql_errors
def predict_proba(
    plpy: Any, GD: dict[str, Any], key: int | str, features: Sequence[Any]
) -> list[float]:
    model, x = _predict_array(plpy, GD, key, features)
    return _reals(model.predict_proba(x)[0])


@sql_errors
def predict_joint(
    plpy: Any, GD: dict[str, Any], key: int | str, features: Sequence[Any]
) -> list[float]:
    model, x = _predict_array(plpy, GD, key, features)
    return _reals(model.predict_joint(x)[0])


@sql_errors
def decompose(
    plpy: Any, GD: dict[str, Any], key: int | str, features: Sequence[Any]
) -> list[float]:
    """``pgml.decompose(project, vector)``: the row projected onto every principal component
    of the project's deployed decomposition model (PostgresML's way to use one)."""
    model, x = _predict_array(plpy, GD, key, features)
    if model.task != "decomposition":
        raise UserError(
            f"pgml.decompose needs a decomposition model; {key!r} is {model.task}",
            hint="train one with pgml.train(project, 'decomposition', relation), or use "
                 "pgml.predict for this project",
        )
    return _reals(model.predict_joint(x)[0])


@sql_errors
def predict_batch(
    plpy: Any, GD: dict[str, Any], key: int | str, features: Sequence[Any]
) -> list[float]:
    model, x = _predict_array(plpy, GD, key, features, batch=True)
    if not len(x):  # an empty array is zero rows, as natively
        return []
    return _reals(model.predict(x))


def _reals(values: Any) -> list[float]:
    """Outputs rounded to ``real`` here, as the C scorer rounds them (a ``(float4)`` cast).

    Handing plpython the double instead would parse its shortest decimal, which can round
    to a neighbouring float, and refuse values below float32's range (a probability of
    1e-60) as out of range; beyond its range a value is an infinity, in C too.
    """
    import numpy as np

    with np.errstate(over="ignore"):
        rounded = np.asarray(values, dtype=np.float64).reshape(-1).astype(np.float32)
    return [float(v) for v in rounded]


def _flatten(values: Sequence[Any]) -> list[Any]:
    """Multi-dimensional arrays (digits' smallint[][]) arrive as nested lists."""
    if values and isinstance(values[0], list):
        return [v for inner in values for v in _flatten(inner)]
    return list(values)


# -- housekeeping ----------------------------------------------------------------------------
@sql_errors
def delete_model(plpy: Any, GD: dict[str, Any], model_id: int, force: bool) -> int:
    """Delete one model and its files; a deployed model only with ``force``."""
    info = _model_info(plpy, GD, model_id)
    current = _one(plpy, GD, "deployed_model", info["project_id"])
    if current is not None and int(current["model_id"]) == model_id and not force:
        raise UserError(
            f"model {model_id} is deployed for project {info['project']!r}",
            hint="deploy another model first, or pass force => true (the project then serves "
                 "its previously deployed model, if any)",
        )
    _rows(plpy, GD, "delete_model", model_id)
    _drop_orphan_snapshots(plpy, GD)
    _session(GD).models.pop(model_id, None)
    return model_id


@sql_errors
def delete_project(plpy: Any, GD: dict[str, Any], project_name: str) -> int:
    """Delete a project with its models, deployments, files and unused snapshots."""
    project = _existing_project(plpy, GD, project_name)
    _rows(plpy, GD, "delete_project", project_name)
    _drop_orphan_snapshots(plpy, GD)
    session = _session(GD)
    for model_id in [m for m, c in session.models.items() if c.project == project_name]:
        session.models.pop(model_id)
    return int(project["id"])


def _drop_orphan_snapshots(plpy: Any, GD: dict[str, Any]) -> None:
    for row in _rows(plpy, GD, "delete_orphan_snapshots"):
        if row["materialized"]:
            plpy.execute(format_sql(plpy, "DROP TABLE IF EXISTS pgml.%I",
                                    f"snapshot_{int(row['id'])}"))


def cached_models(GD: dict[str, Any]) -> list[tuple[int, str, str, float, int]]:
    """What this backend's Python path has cached (model id, project, algorithm, ...)."""
    return [
        (model_id, c.project, c.algorithm, c.loaded_at, c.hits)
        for model_id, c in _session(GD).models.items()
    ]


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        ours = dist_version("pgml-flow")
    except PackageNotFoundError:
        ours = "source"
    return f"{VERSION} (pgml-flow {ours})"
