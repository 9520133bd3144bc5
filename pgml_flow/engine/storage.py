"""Trained model <-> ``pgml.files`` rows.

A model is stored as a few named files (``path`` -> ``bytes``):

* ``meta.json`` — task, algorithm, library, num_features, num_outputs, classes,
  feature_names and the versions of Python / numpy / the library that wrote it;
* the estimator in the library's native format where there is one, because those are
  stable across versions: XGBoost ``booster.json`` (``save_raw('json')``: exact, and the
  same bytes :mod:`pgml_flow.engine.native` compiles, so the native check of a new model
  also checks what is stored; models saved before as ``booster.ubj`` load as they are),
  LightGBM ``booster.<i>.txt`` (model string, one per output), CatBoost ``model.<i>.cbm``;
* otherwise (scikit-learn) ``estimator.pkl``, a pickle.  Pickles are only trusted by the
  exact scikit-learn version (and Python minor / numpy major) that wrote them: any
  difference raises :class:`IncompatibleModel` naming both versions, instead of an
  obscure unpickling error or silently wrong predictions.

The SQL layer may split a file into several ``part`` rows; :func:`load_model`
concatenates rows with the same path in the order given (``ORDER BY path, part``).
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import tempfile
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from pgml_flow.engine.errors import IncompatibleModel
from pgml_flow.engine.predict import (
    CatBoostBackend,
    LightGBMBackend,
    Model,
    SklearnBackend,
    XGBoostBackend,
)

STORAGE_FORMAT = 1
META = "meta.json"
#: XGBoost's file: its JSON model (UBJSON, ``booster.ubj``, before; load_model reads both)
XGBOOST_FILE = "booster.json"
#: libraries whose native form (engine.native) is compiled from the stored file: library -> path
COMPILED_FROM_STORED = {"xgboost": XGBOOST_FILE}
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "numpy": "numpy",
}


def _version(library: str) -> str:
    module = {"sklearn": "sklearn"}.get(library, library)
    try:
        return str(__import__(module).__version__)
    except (ImportError, AttributeError):
        return metadata.version(_DISTRIBUTIONS[library])


def library_of(estimator: Any) -> str:
    """Which library's native format fits this (possibly MultiOutput-wrapped) estimator."""
    inner = getattr(estimator, "estimators_", None)
    target = inner[0] if isinstance(inner, list) and inner else estimator
    module = type(target).__module__.split(".")[0]
    return module if module in ("xgboost", "lightgbm", "catboost") else "sklearn"


def _parts(estimator: Any) -> list[Any]:
    inner = getattr(estimator, "estimators_", None)
    if isinstance(inner, list) and type(estimator).__name__ == "MultiOutputRegressor":
        return inner
    return [estimator]


def _catboost_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="pgml_flow_") as tmp:
        path = os.path.join(tmp, "model.cbm")
        model.save_model(path, format="cbm")
        with open(path, "rb") as f:
            return f.read()


def dump_model(
    estimator: Any,
    *,
    task: str,
    algorithm: str,
    num_features: int,
    num_outputs: int = 1,
    classes: list[Any] | None = None,
    feature_names: list[str] | None = None,
    target: dict[str, Any] | None = None,
) -> list[tuple[str, bytes]]:
    """Serialize a fitted estimator to ``[(path, data), ...]`` for ``pgml.files``.

    ``target`` is the fitted output transform (:class:`pgml_flow.engine.targets.OutputTransform`:
    log1p, snapping scale, calibration), stored in meta.json only when there is one, so the
    meta of every other model stays as it was.
    """
    library = library_of(estimator)
    files: list[tuple[str, bytes]] = []
    if library == "xgboost":
        files.append((XGBOOST_FILE, bytes(estimator.get_booster().save_raw("json"))))
    elif library == "lightgbm":
        for i, part in enumerate(_parts(estimator)):
            files.append((f"booster.{i}.txt", part.booster_.model_to_string().encode()))
    elif library == "catboost":
        for i, part in enumerate(_parts(estimator)):
            files.append((f"model.{i}.cbm", _catboost_bytes(part)))
    else:
        files.append(("estimator.pkl", pickle.dumps(estimator, protocol=5)))
    meta = {
        "format": STORAGE_FORMAT,
        "task": task,
        "algorithm": algorithm,
        "library": library,
        "num_features": int(num_features),
        "num_outputs": int(num_outputs),
        "classes": classes,
        "feature_names": feature_names,
        "files": [path for path, _ in files],
        **({"target": target} if target else {}),
        "versions": {
            "python": platform.python_version(),
            "numpy": _version("numpy"),
            library: _version(library),
        },
    }
    return [(META, json.dumps(meta).encode()), *files]


def _check_pickle_versions(meta: dict[str, Any]) -> None:
    saved = meta.get("versions", {})
    here = {
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "sklearn": _version("sklearn"),
    }
    same = {
        "python": lambda v: v.split(".")[:2],
        "numpy": lambda v: v.split(".")[:1],
        "sklearn": lambda v: v,
    }
    for name, key in same.items():
        if key(str(saved.get(name, "?"))) != key(here[name]):
            label = {"sklearn": "scikit-learn", "python": "Python"}.get(name, name)
            raise IncompatibleModel(
                f"this {meta['algorithm']} model was saved with {label} {saved.get(name)} but "
                f"the server has {label} {here[name]}; scikit-learn models only load in the "
                "version that wrote them: retrain it with pgml.train"
            )


def load_model(files: Iterable[tuple[str, Any]]) -> Model:
    """Rebuild a :class:`Model` from ``(path, data)`` rows (parts concatenated in order)."""
    blobs: dict[str, bytearray] = {}
    for path, data in files:
        blobs.setdefault(path, bytearray()).extend(bytes(data))
    if META not in blobs:
        raise IncompatibleModel("the model has no meta.json file; it was not saved by pgml-flow")
    meta = json.loads(bytes(blobs[META]))
    if meta.get("format") != STORAGE_FORMAT:
        raise IncompatibleModel(
            f"model storage format {meta.get('format')} is not {STORAGE_FORMAT}; retrain it"
        )
    missing = [p for p in meta["files"] if p not in blobs]
    if missing:
        raise IncompatibleModel(f"the model's file(s) {missing} are missing from pgml.files")
    library, task = meta["library"], meta["task"]
    parts = [blobs[p] for p in meta["files"]]
    try:
        backend = _backend(library, task, parts, meta)
    except IncompatibleModel:
        raise
    except Exception as exc:
        raise IncompatibleModel(
            f"cannot load this {meta['algorithm']} model (saved with "
            f"{library} {meta['versions'].get(library)}, server has "
            f"{library} {_version(library)}): {exc}; retrain it with pgml.train"
        ) from exc
    return Model(backend, meta)


def fitted_model(estimator: Any, files: Iterable[tuple[str, Any]]) -> Model:
    """The :class:`Model` that :func:`load_model` rebuilds from ``files``, over the fitted
    ``estimator`` itself (``files`` from :func:`dump_model` of it).

    Why: reloading parses what was just serialized (about 13 ms for 160 XGBoost trees on
    ten classes, 3 % of such a training).  Use it only where the stored bytes are checked
    otherwise (:func:`pgml_flow.engine.training.train`'s ``check_stored``).
    """
    meta = json.loads(bytes(next(data for path, data in files if path == META)))
    library, task = meta["library"], meta["task"]
    backend: Any
    if library == "xgboost":
        backend = XGBoostBackend(estimator.get_booster(), task, len(meta.get("classes") or []))
    elif library == "lightgbm":
        backend = LightGBMBackend([part.booster_ for part in _parts(estimator)], task)
    elif library == "catboost":
        backend = CatBoostBackend(_parts(estimator), task)
    else:
        backend = SklearnBackend(estimator, task)
    return Model(backend, meta)


def _backend(library: str, task: str, parts: list[bytearray], meta: dict[str, Any]) -> Any:
    n_classes = len(meta.get("classes") or [])
    if library == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(parts[0])
        return XGBoostBackend(booster, task, n_classes)
    if library == "lightgbm":
        import lightgbm

        return LightGBMBackend([lightgbm.Booster(model_str=p.decode()) for p in parts], task)
    if library == "catboost":
        import catboost

        cls = (
            catboost.CatBoostClassifier if task == "classification" else catboost.CatBoostRegressor
        )
        return CatBoostBackend([cls().load_model(blob=bytes(p)) for p in parts], task)
    _check_pickle_versions(meta)
    return SklearnBackend(pickle.loads(bytes(parts[0])), task)
