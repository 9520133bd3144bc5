"""Classification tutorial flows: iris (text labels), breast cancer (binary), digits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pgml_flow.engine import available_algorithms, prepare_dataset, train
from pgml_flow.engine.errors import DataError, SplitError

from . import toy


@pytest.fixture(scope="module")
def iris():
    columns, rows = toy.iris()
    return prepare_dataset("classification", columns, rows, "target")


def test_iris_classes_are_sorted_text_without_extra_class(iris):
    assert iris.classes == ["setosa", "versicolor", "virginica"]  # upstream bug 1007
    assert iris.columns["labels"] == [
        {"name": "target", "pg_type": "text", "kind": "text", "classes": iris.classes}
    ]
    # stratified by label: each class keeps its share of the 38 test rows
    assert np.bincount(iris.y_test).tolist() == [13, 13, 12]


@pytest.mark.parametrize("algorithm", ["linear", "xgboost", "lightgbm", "random_forest", "knn"])
def test_iris_multiclass(iris, algorithm):
    result = train("classification", algorithm, iris)
    m = result.metrics
    assert m["accuracy"] > 0.85 and m["f1"] > 0.85, m
    assert {"precision", "recall", "mcc", "fit_time", "score_time"} <= set(m)
    assert "roc_auc" not in m and "log_loss" not in m  # binary only
    proba = result.model.predict_proba(iris.x_test)
    assert proba.shape == (len(iris.x_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    predicted = result.model.predict(iris.x_test)
    # text labels: predict returns the class index, consistent with the probabilities
    assert set(np.unique(predicted)) <= {0.0, 1.0, 2.0}
    assert (predicted == np.argmax(proba, axis=1)).mean() > 0.95


def test_numeric_labels_predict_the_label_value():
    columns, rows = toy.iris(text_labels=False)
    shifted = [(*r[:4], r[4] * 10 + 5) for r in rows]
    data = prepare_dataset("classification", columns, shifted, "target")
    assert data.classes == [5, 15, 25]
    result = train("classification", "linear", data)
    assert set(np.unique(result.model.predict(data.x_test))) <= {5.0, 15.0, 25.0}


def test_every_classification_algorithm_trains(iris):
    for algorithm in available_algorithms("classification"):
        hyperparams = {"n_estimators": 10} if algorithm == "catboost" else {}
        result = train("classification", algorithm, iris, hyperparams)
        assert result.metrics["accuracy"] > 0.3, algorithm
        proba = result.model.predict_proba(iris.x_test[:3])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5, err_msg=algorithm)


@pytest.fixture(scope="module")
def cancer():
    columns, rows = toy.breast_cancer()
    return prepare_dataset("classification", columns, rows, "malignant", test_size=0.3)


@pytest.mark.parametrize("algorithm", ["xgboost", "lightgbm", "random_forest"])
def test_breast_cancer_binary_uses_probabilities(cancer, algorithm):
    assert cancer.classes == [False, True]
    result = train("classification", algorithm, cancer)
    m = result.metrics
    assert m["accuracy"] > 0.9 and m["f1"] > 0.85 and m["mcc"] > 0.8, m
    hard_auc = roc_auc_score(cancer.y_test, result.model.predict_codes(cancer.x_test))
    # AUC from probabilities ranks better than upstream's AUC of hard labels
    assert m["roc_auc"] > hard_auc and m["roc_auc"] > 0.97
    assert 0 < m["log_loss"] < 0.4
    # bool labels: predict returns the label value as 0/1
    assert set(np.unique(result.model.predict(cancer.x_test))) == {0.0, 1.0}


def test_binary_f1_is_for_the_positive_class(cancer):
    from sklearn.metrics import f1_score

    columns, rows = toy.breast_cancer()
    scaled = {name: {"scale": "standard"} for name, _ in columns[:-1]}
    cancer = prepare_dataset("classification", columns, rows, "malignant", preprocess=scaled)
    result = train("classification", "linear", cancer)
    codes = result.model.predict_codes(cancer.x_test)
    assert result.metrics["f1"] == pytest.approx(f1_score(cancer.y_test, codes, pos_label=1))


def test_digits_array_feature():
    columns, rows = toy.digits()
    data = prepare_dataset("classification", columns, rows, "target", test_size=0.2)
    assert data.num_features == 64
    assert data.feature_names[:2] == ["image[1]", "image[2]"]
    result = train("classification", "knn", data)
    assert result.metrics["accuracy"] > 0.9
    assert result.metrics["f1"] > 0.9
    assert result.model.predict_proba(data.x_test[:1]).shape == (1, 10)


def test_null_label_is_an_error():
    columns, rows = toy.iris()
    rows = [*rows[:10], (*rows[10][:4], None)]
    with pytest.raises(DataError, match=r"label column 'target' has 1 NULL"):
        prepare_dataset("classification", columns, rows, "target")


def test_single_class_is_an_error():
    columns, rows = toy.iris()
    with pytest.raises(DataError, match="single class"):
        prepare_dataset("classification", columns, rows[:40], "target")


def test_class_missing_from_training_rows():
    columns, rows = toy.iris()
    # 'last' sampling puts every virginica row in the test set
    with pytest.raises(DataError, match=r"\['virginica'\] have no training rows"):
        prepare_dataset(
            "classification", columns, rows, "target", test_size=50, test_sampling="last"
        )


def test_tiny_classification_data_gives_a_clear_error():
    columns, rows = toy.iris()
    tiny = [rows[0], rows[1], rows[50], rows[51], rows[100], rows[101]]
    with pytest.raises(SplitError, match="6 rows with 3 classes needs at least 3 test rows"):
        prepare_dataset("classification", columns, tiny, "target", test_size=0.25)
    data = prepare_dataset("classification", columns, tiny, "target", test_size=0.5)
    assert sorted(data.y_test.tolist()) == [0, 1, 2]
