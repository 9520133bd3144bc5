"""Clustering (every algorithm, including the ones scikit-learn cannot predict) and PCA."""

from __future__ import annotations

import numpy as np
import pytest

from pgml_flow.engine import available_algorithms, prepare_dataset, train
from pgml_flow.engine.errors import InvalidArgument, UnsupportedAlgorithm

from . import toy


@pytest.fixture(scope="module")
def iris_unlabeled():
    columns, rows = toy.iris()
    # the label column is left out of the features when named, and not required
    return prepare_dataset("clustering", columns, rows, "target", test_sampling="random")


def test_kmeans_finds_the_iris_species(iris_unlabeled):
    result = train("clustering", "kmeans", iris_unlabeled, {"n_clusters": 3})
    assert result.num_features == 4
    assert 0.4 < result.metrics["silhouette"] < 0.8
    labels = result.model.predict(iris_unlabeled.x_test)
    assert set(np.unique(labels)) == {0.0, 1.0, 2.0}
    with pytest.raises(InvalidArgument, match="predict_proba needs a classification"):
        result.model.predict_proba(iris_unlabeled.x_test)


@pytest.mark.parametrize(
    "algorithm", ["dbscan", "optics", "spectral", "spectral_bi", "spectral_co"]
)
def test_clusterers_without_predict_label_new_rows(iris_unlabeled, algorithm):
    hyperparams = {"n_clusters": 3} if algorithm.startswith("spectral") else {}
    result = train("clustering", algorithm, iris_unlabeled, hyperparams)
    labels = result.model.predict(iris_unlabeled.x_test)
    assert labels.shape == (len(iris_unlabeled.x_test),)
    assert len(np.unique(labels)) >= 2
    # a training row is labelled with its own cluster (DBSCAN: core samples)
    estimator = result.model.backend.estimator
    if algorithm == "dbscan":
        x = estimator.core_x_[:5]
        assert (result.model.predict(x) == estimator.core_labels_[:5]).all()
    elif algorithm != "optics":
        x = iris_unlabeled.x_train[:5]
        assert (result.model.predict(x) == estimator.labels_[:5]).all()


def test_dbscan_far_away_row_is_noise(iris_unlabeled):
    result = train("clustering", "dbscan", iris_unlabeled, {"eps": 0.5})
    assert result.model.predict(np.full((1, 4), 100.0)).tolist() == [-1.0]


def test_every_clustering_algorithm_trains(iris_unlabeled):
    for algorithm in available_algorithms("clustering"):
        result = train("clustering", algorithm, iris_unlabeled)
        assert "silhouette" in result.metrics, algorithm
        assert np.isfinite(result.model.predict(iris_unlabeled.x_test)).all()


def test_single_cluster_silhouette_is_null(iris_unlabeled):
    result = train("clustering", "kmeans", iris_unlabeled, {"n_clusters": 1})
    assert result.metrics["silhouette"] is None
    assert result.key_metric is None


def test_feature_agglomeration_explains_why_not():
    columns, rows = toy.iris()
    data = prepare_dataset("clustering", columns, rows, "target")
    with pytest.raises(UnsupportedAlgorithm, match="clusters columns, not rows"):
        train("clustering", "feature_agglomeration", data)


def test_pca():
    columns, rows = toy.iris()
    data = prepare_dataset("decomposition", columns[:4], [r[:4] for r in rows])
    result = train("decomposition", "pca", data, {"n_components": 2})
    assert 0.95 < result.metrics["cumulative_explained_variance"] <= 1.0
    components = result.model.predict_joint(data.x_test)
    assert components.shape == (len(data.x_test), 2)
    # predict is the first component (coordinate on the principal axis)
    np.testing.assert_array_equal(result.model.predict(data.x_test), components[:, 0])
    pca = result.model.backend.estimator
    np.testing.assert_array_equal(components, pca.transform(data.x_test))


def test_pca_grid_search_on_components():
    columns, rows = toy.iris()
    data = prepare_dataset("decomposition", columns[:4], [r[:4] for r in rows])
    result = train(
        "decomposition", "pca", data, search="grid", search_params={"n_components": [1, 3]}
    )
    assert result.hyperparams == {"n_components": 3}
    assert result.metrics["search_results"]["scoring"] == "cumulative_explained_variance"
