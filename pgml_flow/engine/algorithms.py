"""Which estimator class serves each (task, algorithm) of the ``pgml.algorithm`` enum.

The registry holds import paths as strings, so looking an algorithm up costs nothing:
scikit-learn, XGBoost, LightGBM and CatBoost are imported only when an estimator is
built (the backend imports this package on the first pgml call, and cold start
matters).  Defaults injected here are the ones that make training deterministic and
quiet inside a PostgreSQL backend (``random_state``, no console output, no files
written to the data directory); the user's hyperparams always win.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgml_flow.engine.errors import InvalidHyperparams, UnsupportedAlgorithm

TASKS = ("regression", "classification", "clustering", "decomposition")

#: every value of the upstream ``pgml.algorithm`` enum, in upstream order
ALGORITHMS = (
    "linear", "xgboost", "xgboost_random_forest", "svm", "lasso", "elastic_net", "ridge",
    "kmeans", "dbscan", "knn", "random_forest", "least_angle", "lasso_least_angle",
    "orthogonal_matching_pursuit", "bayesian_ridge", "automatic_relevance_determination",
    "stochastic_gradient_descent", "perceptron", "passive_aggressive", "ransac", "theil_sen",
    "huber", "quantile", "kernel_ridge", "gaussian_process", "nu_svm", "ada_boost", "bagging",
    "extra_trees", "gradient_boosting_trees", "hist_gradient_boosting", "linear_svm", "lightgbm",
    "transformers", "affinity_propagation", "birch", "feature_agglomeration",
    "mini_batch_kmeans", "mean_shift", "optics", "spectral", "spectral_bi", "spectral_co",
    "catboost", "pca",
)  # fmt: skip

_WHY_NOT = {
    "transformers": "transformers (NLP) models are out of scope for pgml-flow",
    "feature_agglomeration": (
        "feature_agglomeration clusters columns, not rows, so it cannot assign a row to a "
        "cluster; use kmeans/birch for clustering or pca for decomposition"
    ),
}

# Booster parameters XGBoost accepts besides its sklearn wrapper's named ones
# (https://xgboost.readthedocs.io/en/stable/parameter.html).
_XGBOOST_NATIVE = frozenset({
    "eta", "min_split_loss", "lambda", "alpha", "seed", "nthread", "updater", "refresh_leaf",
    "process_type", "max_cached_hist_node", "tweedie_variance_power", "huber_slope",
    "quantile_alpha", "aft_loss_distribution", "aft_loss_distribution_scale", "seed_per_iteration",
    "disable_default_eval_metric", "num_class", "lambda_bias", "sketch_eps", "predictor",
    "max_cat_threshold", "one_drop", "rate_drop", "skip_drop", "sample_type", "normalize_type",
    "feature_selector", "top_k", "ndcg_exp_gain", "lambdarank_pair_method",
})  # fmt: skip


@dataclass(frozen=True)
class EstimatorSpec:
    """How to build one estimator: ``module:Class`` plus defaults."""

    path: str
    library: str = "sklearn"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: regression estimator fits a 2-D y itself (no MultiOutputRegressor needed)
    multi_output: bool = False


def _sk(path: str, multi_output: bool = False, **defaults: Any) -> EstimatorSpec:
    return EstimatorSpec("sklearn." + path, "sklearn", defaults, multi_output)


_XGB = {"verbosity": 0}
_LGBM = {"verbose": -1}
_CATBOOST = {"verbose": False, "allow_writing_files": False}

_REGRESSION: dict[str, EstimatorSpec] = {
    "linear": _sk("linear_model:LinearRegression", True),
    "xgboost": EstimatorSpec("xgboost:XGBRegressor", "xgboost", _XGB, True),
    "xgboost_random_forest": EstimatorSpec("xgboost:XGBRFRegressor", "xgboost", _XGB, True),
    "svm": _sk("svm:SVR"),
    "lasso": _sk("linear_model:Lasso", True),
    "elastic_net": _sk("linear_model:ElasticNet", True),
    "ridge": _sk("linear_model:Ridge", True),
    # scikit-learn's, plus aggregate = "median" and shrink (pgml_flow/engine/neighbors.py)
    "knn": EstimatorSpec("pgml_flow.engine.neighbors:KNeighborsRegressor", "sklearn", {}, True),
    "random_forest": _sk("ensemble:RandomForestRegressor", True),
    "least_angle": _sk("linear_model:Lars", True),
    "lasso_least_angle": _sk("linear_model:LassoLars", True),
    "orthogonal_matching_pursuit": _sk("linear_model:OrthogonalMatchingPursuit", True),
    "bayesian_ridge": _sk("linear_model:BayesianRidge"),
    "automatic_relevance_determination": _sk("linear_model:ARDRegression"),
    "stochastic_gradient_descent": _sk("linear_model:SGDRegressor"),
    # PassiveAggressiveRegressor is deprecated in scikit-learn 1.8; this is its replacement.
    "passive_aggressive": _sk(
        "linear_model:SGDRegressor",
        loss="epsilon_insensitive", penalty=None, learning_rate="pa1", eta0=1.0,
    ),
    "ransac": _sk("linear_model:RANSACRegressor", True),
    "theil_sen": _sk("linear_model:TheilSenRegressor"),
    "huber": _sk("linear_model:HuberRegressor"),
    "quantile": _sk("linear_model:QuantileRegressor"),
    "kernel_ridge": _sk("kernel_ridge:KernelRidge", True),
    "gaussian_process": _sk("gaussian_process:GaussianProcessRegressor", True),
    "nu_svm": _sk("svm:NuSVR"),
    "ada_boost": _sk("ensemble:AdaBoostRegressor"),
    "bagging": _sk("ensemble:BaggingRegressor"),
    "extra_trees": _sk("ensemble:ExtraTreesRegressor", True),
    "gradient_boosting_trees": _sk("ensemble:GradientBoostingRegressor"),
    "hist_gradient_boosting": _sk("ensemble:HistGradientBoostingRegressor"),
    "linear_svm": _sk("svm:LinearSVR"),
    "lightgbm": EstimatorSpec("lightgbm:LGBMRegressor", "lightgbm", _LGBM),
    "catboost": EstimatorSpec("catboost:CatBoostRegressor", "catboost", _CATBOOST),
}  # fmt: skip

_CLASSIFICATION: dict[str, EstimatorSpec] = {
    "linear": _sk("linear_model:LogisticRegression"),
    "xgboost": EstimatorSpec("xgboost:XGBClassifier", "xgboost", _XGB),
    "xgboost_random_forest": EstimatorSpec("xgboost:XGBRFClassifier", "xgboost", _XGB),
    "svm": _sk("svm:SVC"),
    "ridge": _sk("linear_model:RidgeClassifier"),
    "knn": _sk("neighbors:KNeighborsClassifier"),
    "random_forest": _sk("ensemble:RandomForestClassifier"),
    "stochastic_gradient_descent": _sk("linear_model:SGDClassifier"),
    "perceptron": _sk("linear_model:Perceptron"),
    # PassiveAggressiveClassifier is deprecated in scikit-learn 1.8; this is its replacement.
    "passive_aggressive": _sk(
        "linear_model:SGDClassifier", loss="hinge", penalty=None, learning_rate="pa1", eta0=1.0
    ),
    "gaussian_process": _sk("gaussian_process:GaussianProcessClassifier"),
    "nu_svm": _sk("svm:NuSVC"),
    "ada_boost": _sk("ensemble:AdaBoostClassifier"),
    "bagging": _sk("ensemble:BaggingClassifier"),
    "extra_trees": _sk("ensemble:ExtraTreesClassifier"),
    "gradient_boosting_trees": _sk("ensemble:GradientBoostingClassifier"),
    "hist_gradient_boosting": _sk("ensemble:HistGradientBoostingClassifier"),
    "linear_svm": _sk("svm:LinearSVC"),
    "lightgbm": EstimatorSpec("lightgbm:LGBMClassifier", "lightgbm", _LGBM),
    "catboost": EstimatorSpec("catboost:CatBoostClassifier", "catboost", _CATBOOST),
}

# Estimators without predict() are subclassed in engine.clustering to add one.
_CLUSTERING: dict[str, EstimatorSpec] = {
    "kmeans": _sk("cluster:KMeans"),
    "mini_batch_kmeans": _sk("cluster:MiniBatchKMeans"),
    "affinity_propagation": _sk("cluster:AffinityPropagation"),
    "birch": _sk("cluster:Birch"),
    "mean_shift": _sk("cluster:MeanShift"),
    "dbscan": EstimatorSpec("pgml_flow.engine.clustering:DBSCAN"),
    "optics": EstimatorSpec("pgml_flow.engine.clustering:OPTICS"),
    "spectral": EstimatorSpec("pgml_flow.engine.clustering:SpectralClustering"),
    "spectral_bi": EstimatorSpec("pgml_flow.engine.clustering:SpectralBiclustering"),
    "spectral_co": EstimatorSpec("pgml_flow.engine.clustering:SpectralCoclustering"),
}

_DECOMPOSITION: dict[str, EstimatorSpec] = {"pca": _sk("decomposition:PCA")}

_REGISTRY: dict[str, dict[str, EstimatorSpec]] = {
    "regression": _REGRESSION,
    "classification": _CLASSIFICATION,
    "clustering": _CLUSTERING,
    "decomposition": _DECOMPOSITION,
}


#: what PostgresML trains for its default algorithm ``linear`` in the unsupervised tasks
#: (``pgml.train('c', 'clustering', 'iris_x')`` trains k-means): a linear model needs a label
UNSUPERVISED_DEFAULTS = {"clustering": "kmeans", "decomposition": "pca"}


def resolve(task: str, algorithm: str) -> str:
    """The algorithm trained for ``algorithm``: ``linear`` is k-means for clustering and PCA
    for decomposition, as in PostgresML, so that its walkthroughs run without naming one."""
    if algorithm == "linear":
        return UNSUPERVISED_DEFAULTS.get(task, algorithm)
    return algorithm


def check_task(task: str) -> None:
    """Reject a task outside ``pgml.task`` (minus the out-of-scope NLP tasks)."""
    if task not in TASKS:
        raise UnsupportedAlgorithm(f"unknown task {task!r}; pgml-flow supports: {', '.join(TASKS)}")


def available(task: str) -> list[str]:
    """Algorithms trainable for ``task`` (CatBoost only when it is installed)."""
    check_task(task)
    names = list(_REGISTRY[task])
    if "catboost" in names and importlib.util.find_spec("catboost") is None:
        names.remove("catboost")
    return names


def spec_for(task: str, algorithm: str) -> EstimatorSpec:
    """The estimator spec, or a clear error saying which algorithms the task has."""
    check_task(task)
    if algorithm in _WHY_NOT:
        raise UnsupportedAlgorithm(_WHY_NOT[algorithm])
    if algorithm not in ALGORITHMS:
        raise UnsupportedAlgorithm(f"unknown algorithm {algorithm!r}")
    spec = _REGISTRY[task].get(algorithm)
    if spec is None:
        raise UnsupportedAlgorithm(
            f"algorithm {algorithm!r} is not available for task {task!r}; "
            f"choose one of: {', '.join(available(task))}"
        )
    if spec.library == "catboost" and importlib.util.find_spec("catboost") is None:
        raise UnsupportedAlgorithm(
            "algorithm 'catboost' needs the catboost package, which is not installed in the "
            "server's Python environment"
        )
    return spec


def _load_class(path: str) -> type:
    module, _, name = path.partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


@functools.cache
def accepted_params(task: str, algorithm: str) -> frozenset[str]:
    """Hyperparam names the estimator accepts (including native booster aliases)."""
    spec = spec_for(task, algorithm)
    cls = _load_class(spec.path)
    if spec.library == "catboost":
        return frozenset(inspect.signature(cls).parameters)
    names = set(cls().get_params(deep=False))
    if spec.library == "xgboost":
        names |= _XGBOOST_NATIVE
    elif spec.library == "lightgbm":
        import lightgbm.basic

        aliases = getattr(lightgbm.basic, "_ConfigAliases", None)
        get_all = getattr(aliases, "_get_all_param_aliases", None)
        if get_all is None:  # private API gone: accept anything rather than block users
            return frozenset({*names, "*"})
        for main, alias_list in get_all().items():
            names.add(main)
            names.update(alias_list)
    return frozenset(names)


def check_hyperparams(task: str, algorithm: str, keys: Any, what: str = "hyperparam") -> None:
    """Raise :class:`InvalidHyperparams` naming the first unknown key and the algorithm."""
    accepted = accepted_params(task, algorithm)
    if "*" in accepted:
        return
    for key in keys:
        if key not in accepted:
            listing = ", ".join(sorted(accepted)) if len(accepted) <= 60 else "see its docs"
            raise InvalidHyperparams(
                f"unknown {what} {key!r} for algorithm {algorithm!r} ({task}); "
                f"valid names: {listing}"
            )


def make_estimator(
    task: str,
    algorithm: str,
    hyperparams: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    joint: bool = False,
) -> Any:
    """Build an unfitted estimator with the user's hyperparams over our defaults.

    ``seed`` becomes ``random_state`` where the estimator has one and the user gave
    none.  ``joint`` wraps single-output regressors in ``MultiOutputRegressor``.
    """
    hyperparams = dict(hyperparams or {})
    spec = spec_for(task, algorithm)
    check_hyperparams(task, algorithm, hyperparams)
    cls = _load_class(spec.path)
    params: dict[str, Any] = dict(spec.defaults)
    if spec.library == "catboost":
        if "random_seed" not in hyperparams and "random_state" not in hyperparams:
            params["random_seed"] = seed
    elif (
        "random_state" in accepted_params(task, algorithm)
        and "seed" not in hyperparams
        and "random_state" not in hyperparams
    ):
        params["random_state"] = seed
    if spec.library == "lightgbm" and {"verbosity", "verbose"} & set(hyperparams):
        params.pop("verbose", None)
    params.update(hyperparams)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise InvalidHyperparams(f"algorithm {algorithm!r}: {exc}") from exc
    if joint:
        if task != "regression":
            raise UnsupportedAlgorithm("train_joint supports the regression task only")
        if not spec.multi_output:
            from sklearn.multioutput import MultiOutputRegressor

            estimator = MultiOutputRegressor(estimator)
    return estimator


def set_params(estimator: Any, params: Mapping[str, Any]) -> Any:
    """Apply search params to a (possibly MultiOutput-wrapped) estimator."""
    from sklearn.multioutput import MultiOutputRegressor

    if isinstance(estimator, MultiOutputRegressor):
        estimator.estimator.set_params(**params)
    else:
        estimator.set_params(**params)
    return estimator
