"""Native scorer vs the libraries' own predict/predict_proba, no database.

Each case trains a small model on random data (with NaNs where the library
accepts them), compiles it, and compares the C core on a few thousand rows:
random ones, training rows, and rows probing both sides of every split
threshold (where an off-by-one-ulp comparison would show).
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pgml_flow.engine.native import NotCompilable, compile_model

RNG_SEED = 1234
N_FEATURES = 6


def _data(
    task: str, n: int = 600, nan: bool = True, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[:, 2] = np.round(x[:, 2])  # some exact zeros and repeated values
    score = x[:, 0] * 2 + np.sin(x[:, 1] * 3) + 0.5 * x[:, 2] * x[:, 3]
    if nan:
        x[rng.random(x.shape) < 0.08] = np.nan
    x64 = x.astype(np.float64)
    y: np.ndarray
    if task == "regression":
        y = score + rng.normal(scale=0.1, size=n)
    elif task == "positive":
        y = np.exp(score / 3) + 0.01
    elif task == "unit":
        y = 1 / (1 + np.exp(-score))
    elif task == "binary":
        y = (score + rng.normal(scale=0.5, size=n) > 0).astype(int)
    else:
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return x64, y


def _split_probes(blob: bytes, nf: int) -> np.ndarray:
    """Thresholds from the blob, and the next float32 above each, per feature."""
    if len(blob) < 68:
        return np.zeros((0, nf))
    (kind,) = struct.unpack_from("<I", blob, 12)
    if kind != 1:
        return np.zeros((0, nf))
    k, c, flags = struct.unpack_from("<III", blob, 28)
    off = 64 + 8 * k
    if flags & 2:
        off += 8 * c
    if flags & 1:
        off += 24 * nf
    n_trees, _w, n_nodes = struct.unpack_from("<IIQ", blob, off)
    off += 16 + 8 * n_trees
    nodes = np.frombuffer(
        blob,
        dtype=[("l", "<i4"), ("r", "<i4"), ("f", "<u4"), ("fl", "<u4"), ("t", "<f4")],
        count=n_nodes,
        offset=off,
    )
    inner = nodes[nodes["l"] != -1]
    rng = np.random.default_rng(7)
    rows = []
    for up in (False, True):
        t = inner["t"].astype(np.float32)
        if up:
            t = np.nextafter(t, np.float32(np.inf))
        r = rng.normal(size=(len(inner), nf)).astype(np.float32)
        r[np.arange(len(inner)), inner["f"]] = t
        rows.append(r)
    out = np.vstack(rows).astype(np.float64) if rows else np.zeros((0, nf))
    return out[np.isfinite(out).all(axis=1)][:3000]


def _inputs(x_train: np.ndarray, blob: bytes, nan: bool) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    nf = x_train.shape[1]
    rand = rng.normal(scale=1.5, size=(2000, nf)).astype(np.float32)
    rand[rng.random(rand.shape) < 0.05] = 0.0
    if nan:
        rand[rng.random(rand.shape) < 0.1] = np.nan
    return np.vstack([rand.astype(np.float64), x_train[:500], _split_probes(blob, nf)])


def _check_regression(native_lib, est: Any, x: np.ndarray, nan: bool, **kw: Any):
    blob = compile_model(est)
    model = native_lib.load(blob)
    xs = _inputs(x, blob, nan)
    expected = np.asarray(est.predict(xs, **kw), dtype=np.float64)
    if expected.ndim == 2 and expected.shape[1] > 1:
        got = model.outputs(xs)
    else:
        expected = expected.reshape(-1)
        got = model.predict(xs)
    scale = max(1.0, float(np.nanmax(np.abs(expected))))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


def _check_classifier(native_lib, est: Any, x: np.ndarray, nan: bool, proba=True):
    blob = compile_model(est)
    model = native_lib.load(blob)
    xs = _inputs(x, blob, nan)
    expected_cls = np.asarray(est.predict(xs)).astype(np.float64)
    got_cls = model.predict(xs)
    if proba:
        expected = np.asarray(est.predict_proba(xs), dtype=np.float64)
        got = model.outputs(xs)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-5
    else:
        d = np.asarray(est.decision_function(xs), dtype=np.float64)
        clear = np.abs(d).min(axis=1) > 1e-6 if d.ndim == 2 else np.abs(d) > 1e-6
        if d.ndim == 2:
            top2 = np.sort(d, axis=1)[:, -2:]
            clear = (top2[:, 1] - top2[:, 0]) > 1e-6
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(got_cls[clear], expected_cls[clear])


# --------------------------------------------------------------------------- XGBoost

XGB_REG = [
    ("reg:squarederror", "regression"),
    ("reg:absoluteerror", "regression"),
    ("reg:pseudohubererror", "regression"),
    ("count:poisson", "positive"),
    ("reg:gamma", "positive"),
    ("reg:tweedie", "positive"),
    ("reg:logistic", "unit"),
]


@pytest.mark.parametrize(("objective", "task"), XGB_REG)
def test_xgboost_regressor(native_lib, objective, task):
    import xgboost as xgb

    x, y = _data(task)
    est = xgb.XGBRegressor(n_estimators=30, max_depth=4, objective=objective, n_jobs=1).fit(x, y)
    _check_regression(native_lib, est, x, nan=True)


@pytest.mark.parametrize("classes", [2, 4])
def test_xgboost_classifier(native_lib, classes):
    import xgboost as xgb

    x, y = _data("binary" if classes == 2 else "multi", classes=classes)
    est = xgb.XGBClassifier(n_estimators=25, max_depth=5, n_jobs=1).fit(x, y)
    _check_classifier(native_lib, est, x, nan=True)


def test_xgboost_softmax_objective(native_lib):
    import xgboost as xgb

    x, y = _data("multi", classes=3)
    est = xgb.XGBClassifier(n_estimators=10, max_depth=3, objective="multi:softmax", n_jobs=1).fit(
        x, y
    )
    _check_classifier(native_lib, est, x, nan=True)


def test_xgboost_random_forest(native_lib):
    import xgboost as xgb

    x, y = _data("regression")
    _check_regression(
        native_lib, xgb.XGBRFRegressor(n_estimators=8, max_depth=4, n_jobs=1).fit(x, y), x, nan=True
    )
    x, yc = _data("binary")
    _check_classifier(
        native_lib,
        xgb.XGBRFClassifier(n_estimators=8, max_depth=4, n_jobs=1).fit(x, yc),
        x,
        nan=True,
    )


def test_xgboost_dart_and_booster(native_lib):
    import xgboost as xgb

    x, y = _data("regression")
    dart = xgb.XGBRegressor(
        n_estimators=15, max_depth=3, booster="dart", rate_drop=0.3, n_jobs=1
    ).fit(x, y)
    _check_regression(native_lib, dart, x, nan=True)
    booster = xgb.train({"max_depth": 4, "eta": 0.3, "nthread": 1}, xgb.DMatrix(x, y), 20)
    blob = compile_model(booster)
    xs = _inputs(x, blob, True)
    np.testing.assert_allclose(
        native_lib.load(blob).predict(xs), booster.predict(xgb.DMatrix(xs)), rtol=1e-5, atol=1e-5
    )


def test_xgboost_early_stopping(native_lib):
    import xgboost as xgb

    x, y = _data("regression", n=800)
    est = xgb.XGBRegressor(
        n_estimators=300, max_depth=5, learning_rate=0.5, early_stopping_rounds=3, n_jobs=1
    )
    est.fit(x[:600], y[:600], eval_set=[(x[600:], y[600:])], verbose=False)
    assert est.best_iteration < 299
    _check_regression(native_lib, est, x, nan=True)


# --------------------------------------------------------------------------- LightGBM

LGB_COMMON: dict[str, Any] = {
    "n_estimators": 25,
    "num_leaves": 15,
    "min_child_samples": 5,
    "verbose": -1,
    "n_jobs": 1,
}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"zero_as_missing": True},
        {"use_missing": False},
        {"objective": "poisson"},
        {"objective": "huber"},
        {"boosting_type": "rf", "bagging_fraction": 0.7, "bagging_freq": 1},
        {"boosting_type": "dart"},
    ],
    ids=["default", "zero_as_missing", "no_missing", "poisson", "huber", "rf", "dart"],
)
def test_lightgbm_regressor(native_lib, extra):
    import lightgbm as lgb

    x, y = _data("positive" if extra.get("objective") == "poisson" else "regression")
    est = lgb.LGBMRegressor(**{**LGB_COMMON, **extra}).fit(x, y)
    _check_regression(native_lib, est, x, nan=True)


@pytest.mark.parametrize(
    ("classes", "extra"),
    [(2, {}), (3, {}), (3, {"objective": "multiclassova"}), (2, {"zero_as_missing": True})],
    ids=["binary", "multiclass", "ova", "binary_zero_missing"],
)
def test_lightgbm_classifier(native_lib, classes, extra):
    import lightgbm as lgb

    x, y = _data("binary" if classes == 2 else "multi", classes=classes)
    y = y * 10 + 5  # non-index labels come back as labels
    est = lgb.LGBMClassifier(**{**LGB_COMMON, **extra}).fit(x, y)
    _check_classifier(native_lib, est, x, nan=True)


def test_lightgbm_booster_and_cross_entropy(native_lib):
    import lightgbm as lgb

    x, y = _data("unit")
    booster = lgb.train(
        {"objective": "cross_entropy", "verbose": -1, "num_leaves": 7, "num_threads": 1},
        lgb.Dataset(x, y),
        20,
    )
    blob = compile_model(booster)
    xs = _inputs(x, blob, True)
    np.testing.assert_allclose(
        native_lib.load(blob).predict(xs), booster.predict(xs), rtol=1e-5, atol=1e-5
    )


def test_lightgbm_categorical_refused():
    import lightgbm as lgb

    x, y = _data("regression", nan=False)
    x[:, 2] = np.arange(len(x)) % 5
    y = np.array([5.0, -3.0, 8.0, 0.0, 2.0])[x[:, 2].astype(int)] + y * 0.01
    est = lgb.LGBMRegressor(**LGB_COMMON, min_data_per_group=5, cat_smooth=1).fit(
        x, y, categorical_feature=[2]
    )
    with pytest.raises(NotCompilable, match="categorical"):
        compile_model(est)


# --------------------------------------------------------------------------- scikit-learn trees


def _sk(name: str) -> Callable[..., Any]:
    import sklearn.ensemble as ens
    import sklearn.tree as tree

    return getattr(tree, name, None) or getattr(ens, name)


@pytest.mark.parametrize(
    "name",
    ["DecisionTreeRegressor", "ExtraTreeRegressor", "RandomForestRegressor", "ExtraTreesRegressor"],
)
def test_sklearn_tree_regressor(native_lib, name):
    x, y = _data("regression")
    kw = {"n_estimators": 15} if "Forest" in name or "Trees" in name else {}
    est = _sk(name)(random_state=0, min_samples_leaf=2, **kw).fit(x, y)
    _check_regression(native_lib, est, x, nan=True)


@pytest.mark.parametrize(
    "name",
    [
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
    ],
)
@pytest.mark.parametrize("classes", [2, 3])
def test_sklearn_tree_classifier(native_lib, name, classes):
    x, y = _data("binary" if classes == 2 else "multi", classes=classes)
    y = np.array([15, 70, -20])[y]
    kw = {"n_estimators": 15} if "Forest" in name or "Trees" in name else {}
    est = _sk(name)(random_state=0, max_depth=8, **kw).fit(x, y)
    _check_classifier(native_lib, est, x, nan=True)


def test_sklearn_forest_multioutput_regressor(native_lib):
    from sklearn.ensemble import RandomForestRegressor

    x, y = _data("regression")
    y2 = np.column_stack([y, -2 * y + 1])
    est = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, y2)
    _check_regression(native_lib, est, x, nan=True)


def test_sklearn_string_labels_give_indices(native_lib):
    from sklearn.ensemble import RandomForestClassifier

    x, y = _data("binary")
    labels = np.array(["no", "yes"])[y]
    est = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, labels)
    model = native_lib.load(compile_model(est))
    xs = _inputs(x, b"", True)[:2000]
    proba = est.predict_proba(xs)
    clear = np.abs(proba[:, 1] - proba[:, 0]) > 1e-9
    expected = np.searchsorted(est.classes_, est.predict(xs))
    np.testing.assert_array_equal(model.predict(xs)[clear], expected[clear])


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("regression", {}),
        ("regression", {"loss": "huber", "init": "zero"}),
        ("binary", {}),
        ("binary", {"loss": "exponential"}),
        ("multi", {}),
    ],
    ids=["reg", "reg_huber_zero_init", "binary", "binary_exponential", "multiclass"],
)
def test_sklearn_gradient_boosting(native_lib, kind, extra):
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    x, y = _data(kind, nan=False)
    kw = {"n_estimators": 30, "max_depth": 3, "learning_rate": 0.2, "random_state": 0, **extra}
    if kind == "regression":
        _check_regression(native_lib, GradientBoostingRegressor(**kw).fit(x, y), x, nan=False)
    else:
        _check_classifier(native_lib, GradientBoostingClassifier(**kw).fit(x, y), x, nan=False)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("regression", {}),
        ("regression", {"loss": "absolute_error"}),
        ("positive", {"loss": "poisson"}),
        ("binary", {}),
        ("multi", {}),
    ],
    ids=["reg", "reg_absolute", "poisson", "binary", "multiclass"],
)
@pytest.mark.parametrize("nan", [False, True], ids=["dense", "nan"])
def test_sklearn_hist_gradient_boosting(native_lib, kind, extra, nan):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x, y = _data(kind, nan=nan)
    kw = {"max_iter": 30, "max_depth": 4, "learning_rate": 0.2, "random_state": 0, **extra}
    if kind in ("regression", "positive"):
        _check_regression(native_lib, HistGradientBoostingRegressor(**kw).fit(x, y), x, nan=nan)
    else:
        _check_classifier(native_lib, HistGradientBoostingClassifier(**kw).fit(x, y), x, nan=nan)


def test_hist_gradient_boosting_categorical_refused():
    from sklearn.ensemble import HistGradientBoostingRegressor

    x, y = _data("regression", nan=False, n=200)
    x[:, 0] = np.floor(np.abs(x[:, 0]) * 3) % 4
    est = HistGradientBoostingRegressor(max_iter=5, categorical_features=[0]).fit(x, y)
    with pytest.raises(NotCompilable, match="categorical"):
        compile_model(est)


# --------------------------------------------------------------------------- linear


@pytest.mark.parametrize(
    "name",
    [
        "LinearRegression",
        "Ridge",
        "Lasso",
        "ElasticNet",
        "SGDRegressor",
        "HuberRegressor",
        "Lars",
        "BayesianRidge",
        "PoissonRegressor",
        "QuantileRegressor",
        "TheilSenRegressor",
    ],
)
def test_sklearn_linear_regressor(native_lib, name):
    import sklearn.linear_model as lm

    x, y = _data("positive" if name == "PoissonRegressor" else "regression", nan=False)
    kw: dict[str, Any] = (
        {"random_state": 0} if name in {"SGDRegressor", "TheilSenRegressor"} else {}
    )
    if name in {"Lasso", "ElasticNet"}:
        kw["alpha"] = 0.01
    if name == "QuantileRegressor":
        kw["alpha"] = 0.0
    est = getattr(lm, name)(**kw).fit(x, y)
    _check_regression(native_lib, est, x, nan=False)


def test_sklearn_linear_multioutput(native_lib):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import MultiTaskLasso, Ridge
    from sklearn.multioutput import MultiOutputRegressor

    x, y = _data("regression", nan=False)
    y2 = np.column_stack([y, 3 * y - 1, x[:, 4]])
    for est in (
        MultiTaskLasso(alpha=0.01),
        Ridge(),
        MultiOutputRegressor(Ridge()),
        MultiOutputRegressor(RandomForestRegressor(n_estimators=4, random_state=0)),
    ):
        _check_regression(native_lib, est.fit(x, y2), x, nan=False)


@pytest.mark.parametrize(
    ("name", "proba"),
    [
        ("LogisticRegression", True),
        ("SGDClassifier", True),
        ("RidgeClassifier", False),
        ("Perceptron", False),
        ("LinearSVC", False),
    ],
)
@pytest.mark.parametrize("classes", [2, 4])
def test_sklearn_linear_classifier(native_lib, name, proba, classes):
    import sklearn.linear_model as lm
    import sklearn.svm as svm

    x, y = _data("binary" if classes == 2 else "multi", nan=False, classes=classes)
    cls = getattr(lm, name, None) or getattr(svm, name)
    kw: dict[str, Any] = {"loss": "log_loss", "random_state": 0} if name == "SGDClassifier" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cls(**kw).fit(x, y)
    _check_classifier(native_lib, est, x, nan=False, proba=proba)


def test_logistic_ovr_wrapper_refused_or_exact(native_lib):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    x, y = _data("multi", nan=False)
    with pytest.raises(NotCompilable):
        compile_model(OneVsRestClassifier(LogisticRegression()).fit(x, y))


def test_ransac(native_lib):
    from sklearn.linear_model import RANSACRegressor

    x, y = _data("regression", nan=False)
    _check_regression(native_lib, RANSACRegressor(random_state=0).fit(x, y), x, nan=False)


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("model", ["ridge", "xgboost"])
def test_preprocess_prefix(native_lib, model):
    import xgboost as xgb
    from sklearn.linear_model import Ridge

    x, y = _data("regression", nan=True)
    impute = np.nanmedian(x, axis=0)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    impute[5] = np.nan  # feature 5: leave NaN missing for the model

    def transform(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        for j in range(a.shape[1]):
            if not np.isnan(impute[j]):
                a[np.isnan(a[:, j]), j] = impute[j]
        return ((a - mean) * (1 / std)).astype(np.float32).astype(np.float64)

    xt = transform(x)
    if model == "ridge":
        xt = np.nan_to_num(xt)
        est = Ridge().fit(xt, y)
    else:
        est = xgb.XGBRegressor(n_estimators=20, max_depth=4, n_jobs=1).fit(xt, y)
    pre = {
        "impute": [None if np.isnan(v) else float(v) for v in impute],
        "shift": mean.tolist(),
        "mult": (1 / std).tolist(),
    }
    blob = compile_model(est, preprocess=pre)
    raw = _inputs(x, b"", True)
    if model == "ridge":
        raw[:, 5] = np.nan_to_num(raw[:, 5], nan=float(mean[5]))
    expected = est.predict(transform(raw))
    np.testing.assert_allclose(native_lib.load(blob).predict(raw), expected, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- refusals


def test_unsupported_estimators_raise_not_compilable():
    from sklearn.ensemble import AdaBoostRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.svm import SVR

    from pgml_flow.errors import ModelError

    x, y = _data("regression", nan=False, n=100)
    for est in (
        KNeighborsRegressor(),
        SVR(),
        AdaBoostRegressor(n_estimators=3),
    ):
        with pytest.raises(NotCompilable) as info:
            compile_model(est.fit(x, y))
        assert isinstance(info.value, ModelError)
    with pytest.raises(NotCompilable):
        compile_model(object())
    from sklearn.linear_model import LinearRegression

    with pytest.raises(NotCompilable, match="not fitted"):
        compile_model(LinearRegression())


def test_xgboost_gblinear_refused():
    import xgboost as xgb

    x, y = _data("regression", nan=False, n=100)
    with pytest.raises(NotCompilable, match="gblinear"):
        compile_model(xgb.XGBRegressor(booster="gblinear", n_estimators=3, n_jobs=1).fit(x, y))


# --------------------------------------------------------------------------- input rules

#: pgmln_predict_checked results (model.h)
SCORED, REFUSED_NAN, REFUSED_INF = 0, 1, 2


def _rule_estimators() -> dict[str, Callable[[], Any]]:
    import lightgbm as lgb
    import sklearn.ensemble as ens
    import sklearn.linear_model as lm
    import sklearn.svm as svm
    import sklearn.tree as tree
    import xgboost as xgb

    return {
        "xgboost": lambda: xgb.XGBRegressor(n_estimators=5, max_depth=3, n_jobs=1),
        "xgboost_classifier": lambda: xgb.XGBClassifier(n_estimators=5, n_jobs=1),
        "lightgbm": lambda: lgb.LGBMRegressor(n_estimators=5, verbose=-1, n_jobs=1),
        "hist_gradient_boosting": lambda: ens.HistGradientBoostingRegressor(max_iter=5),
        "hist_gradient_boosting_classifier": lambda: ens.HistGradientBoostingClassifier(
            max_iter=5),
        "decision_tree": lambda: tree.DecisionTreeRegressor(max_depth=4),
        "random_forest": lambda: ens.RandomForestRegressor(n_estimators=4, random_state=0),
        "random_forest_classifier": lambda: ens.RandomForestClassifier(
            n_estimators=4, random_state=0),
        "extra_trees": lambda: ens.ExtraTreesRegressor(n_estimators=4, random_state=0),
        "gradient_boosting": lambda: ens.GradientBoostingRegressor(n_estimators=5),
        "gradient_boosting_classifier": lambda: ens.GradientBoostingClassifier(n_estimators=5),
        "linear": lambda: lm.LinearRegression(),
        "logistic": lambda: lm.LogisticRegression(),
        "ridge_classifier": lambda: lm.RidgeClassifier(),
        "linear_svc": lambda: svm.LinearSVC(),
        "sgd": lambda: lm.SGDRegressor(random_state=0),
    }


@pytest.mark.parametrize("name", list(_rule_estimators()))
def test_input_rules_follow_the_library(native_lib, name):
    """NaN and ±Infinity: the C scorer answers exactly where the library answers.

    Where the library's predict gives a value, the compiled blob's input rules let the C
    scorer give the same one; where it raises, the C scorer refuses the row (the serving
    functions then let the Python path raise its error), and the Python path's policy
    (``pgml_flow.engine.inputs``) agrees.
    """
    from pgml_flow.engine.inputs import input_policy

    classifier = "classif" in name or name in ("logistic", "ridge_classifier", "linear_svc")
    x, y = _data("binary" if classifier else "regression", nan=False, n=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _rule_estimators()[name]().fit(x, y)
    model = native_lib.load(compile_model(est))
    policy = input_policy(est)
    for value, refused in ((np.nan, REFUSED_NAN), (np.inf, REFUSED_INF),
                           (-np.inf, REFUSED_INF), (1.5, None)):
        row = np.array([[0.3, -0.7, 1.0, value, 0.2, -1.1]])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected: float | None = float(np.asarray(est.predict(row)).reshape(-1)[0])
        except ValueError:
            expected = None  # the library refuses the value
        status, got, feature = model.predict_checked(row)
        accepted = policy.nan if refused == REFUSED_NAN else policy.inf if refused else True
        assert accepted == (expected is not None), (name, value, policy)
        if expected is None:
            assert (status, feature) == (refused, 3), (name, value)
        else:
            assert status == SCORED, (name, value, status)
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-5), (name, value)
