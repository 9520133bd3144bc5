"""The pgml SQL API on stock PostgreSQL, driven through SQL exactly as users write it.

The flows follow PostgresML's published tutorials (diabetes, iris, breast cancer,
linnerud, digits, preprocessing).  Predictions are checked against the libraries'
own predictions for the stored model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from pgml_flow import engine


@pytest.fixture
def sql(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def rows(conn: psycopg.Connection, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def one(conn: psycopg.Connection, query: str, *params: Any) -> Any:
    return conn.execute(query, params).fetchone()[0]


def stored_model(conn: psycopg.Connection, model_id: int) -> engine.Model:
    files = rows(conn, "SELECT path, data FROM pgml.files WHERE model_id = %s AND path <> 'native'"
                       " ORDER BY path, part", model_id)
    return engine.load_model(files)


def deployed(conn: psycopg.Connection, project: str) -> int:
    return one(conn, "SELECT d.model_id FROM pgml.deployments d JOIN pgml.projects p"
                     " ON p.id = d.project_id WHERE p.name = %s ORDER BY d.id DESC LIMIT 1",
               project)


def metrics(conn: psycopg.Connection, model_id: int) -> dict[str, Any]:
    return one(conn, "SELECT metrics FROM pgml.models WHERE id = %s", model_id)


def test_version_and_backend(sql: psycopg.Connection) -> None:
    assert one(sql, "SELECT pgml.version()").startswith("2.10.0")
    assert one(sql, "SELECT value FROM pgml_flow_settings WHERE name = 'pgml_backend'") == \
        "pgml-flow"


def test_diabetes_regression_algorithms_search_and_deploy_strategies(
    sql: psycopg.Connection,
) -> None:
    assert rows(sql, "SELECT * FROM pgml.load_dataset('diabetes')") == [("pgml.diabetes", 442)]
    trained = []
    for algorithm, hyperparams in [
        ("linear", {}), ("lasso", {"alpha": 0.1}), ("elastic_net", {}),
        ("xgboost", {"n_estimators": 30, "max_depth": 3}), ("lightgbm", {"n_estimators": 30}),
        ("random_forest", {"n_estimators": 30}), ("gradient_boosting_trees", {}),
        ("bayesian_ridge", {}), ("huber", {}), ("svm", {}), ("knn", {}),
    ]:
        result = rows(sql, "SELECT * FROM pgml.train('Diabetes', 'regression', 'pgml.diabetes',"
                           " 'target', %s, %s::jsonb)", algorithm, json.dumps(hyperparams))
        assert result[0][:3] == ("Diabetes", "regression", algorithm)
        trained.append(algorithm)
    # grid search
    rows(sql, """SELECT * FROM pgml.train('Diabetes', algorithm => 'ridge', search => 'grid',
                 search_params => '{"alpha": [0.01, 1.0, 10.0]}', search_args => '{"cv": 3}')""")
    models = rows(sql, "SELECT id, algorithm, metrics, hyperparams FROM pgml.models ORDER BY id")
    assert [m[1] for m in models] == [*trained, "ridge"]
    for _, algorithm, m, _ in models:
        assert {"r2", "mean_absolute_error", "mean_squared_error", "fit_time", "score_time"} <= \
            set(m), algorithm
        assert -1.0 < m["r2"] < 0.8, (algorithm, m["r2"])
    linear = models[0][2]
    assert 0.3 < linear["r2"] < 0.7 and 30 < linear["mean_absolute_error"] < 60
    ridge_id, _, ridge_metrics, ridge_hyper = models[-1]
    search = ridge_metrics["search_results"]
    assert len(search["params"]) == 3 and search["best_params"]["alpha"] in (0.01, 1.0, 10.0)
    assert ridge_hyper["alpha"] == search["best_params"]["alpha"]

    # a key in both hyperparams and search_params is an error
    with pytest.raises(psycopg.Error, match="alpha"):
        sql.execute("""SELECT * FROM pgml.train('Diabetes', algorithm => 'ridge',
                       hyperparams => '{"alpha": 1}', search => 'grid',
                       search_params => '{"alpha": [1, 2]}')""")

    r2 = {mid: m["r2"] for mid, _, m, _ in models}
    rows(sql, "SELECT * FROM pgml.deploy('Diabetes', 'best_score')")
    assert deployed(sql, "Diabetes") == max(r2, key=lambda k: r2[k])
    best = deployed(sql, "Diabetes")

    assert rows(sql, "SELECT * FROM pgml.deploy('Diabetes', 'most_recent')")[0][1] == "most_recent"
    assert deployed(sql, "Diabetes") == ridge_id
    rows(sql, "SELECT * FROM pgml.deploy('Diabetes', 'rollback')")
    assert deployed(sql, "Diabetes") == best
    xgb_id = next(mid for mid, alg, _, _ in models if alg == "xgboost")
    assert rows(sql, "SELECT * FROM pgml.deploy(%s)", xgb_id) == [("Diabetes", "specific",
                                                                    "xgboost")]
    assert deployed(sql, "Diabetes") == xgb_id
    rows(sql, "SELECT * FROM pgml.deploy('Diabetes', 'best_score', 'lightgbm')")
    assert deployed(sql, "Diabetes") == next(m for m, a, _, _ in models if a == "lightgbm")
    with pytest.raises(psycopg.Error, match="No qualified models exist for this deployment"):
        sql.execute("SELECT * FROM pgml.deploy('Diabetes', 'best_score', 'catboost')")

    # predictions equal the library's own for the deployed model, on every row
    data = rows(sql, "SELECT ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]::real[],"
                     " pgml.predict('Diabetes', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])"
                     " FROM pgml.diabetes")
    x = np.array([r[0] for r in data], dtype=np.float32).astype(np.float64)
    model = stored_model(sql, deployed(sql, "Diabetes"))
    booster = model.backend.boosters[0]
    np.testing.assert_allclose([r[1] for r in data], booster.predict(x, num_threads=1), rtol=1e-5)
    # predict_batch gives the same numbers in one call, by model id and by project
    flat = [float(v) for row in x[:20] for v in row]
    by_project = [r[0] for r in rows(sql, "SELECT pgml.predict_batch('Diabetes', %s::real[])",
                                     flat)]
    np.testing.assert_allclose(by_project, [r[1] for r in data[:20]], rtol=1e-6)
    by_id = one(sql, "SELECT pgml.predict_batch(%s, %s::real[])", deployed(sql, "Diabetes"), flat)
    np.testing.assert_allclose(by_id, by_project, rtol=1e-6)


def test_iris_multiclass_with_probabilities(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    rows(sql, "SELECT * FROM pgml.train('Iris Flower Types', 'classification', 'pgml.iris',"
              " 'target', 'xgboost', '{\"n_estimators\": 20}')")
    model_id = deployed(sql, "Iris Flower Types")
    m = metrics(sql, model_id)
    assert m["accuracy"] > 0.85 and m["f1"] > 0.85 and "roc_auc" not in m
    data = rows(sql, """SELECT target,
                        pgml.predict('Iris Flower Types', ARRAY[sepal_length, sepal_width,
                                     petal_length, petal_width]),
                        pgml.predict_proba('Iris Flower Types', ARRAY[sepal_length, sepal_width,
                                           petal_length, petal_width])
                        FROM pgml.iris""")
    predicted = np.array([r[1] for r in data])
    proba = np.array([r[2] for r in data])
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(axis=1) == predicted).all()
    assert (predicted == np.array([r[0] for r in data])).mean() > 0.9


def test_breast_cancer_binary_metrics_from_probabilities(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('breast_cancer')")
    rows(sql, "SELECT * FROM pgml.train('Breast Cancer Detection', 'classification',"
              " 'pgml.breast_cancer', 'malignant', 'lightgbm', '{\"n_estimators\": 30}')")
    m = metrics(sql, deployed(sql, "Breast Cancer Detection"))
    assert 0.95 < m["roc_auc"] <= 1.0
    assert 0.0 < m["log_loss"] < 0.4
    assert m["accuracy"] > 0.9


def test_linnerud_joint_regression(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('linnerud')")
    rows(sql, "SELECT * FROM pgml.train_joint('Exercise vs Physiology', 'regression',"
              " 'pgml.linnerud', ARRAY['weight', 'waist', 'pulse'], 'linear')")
    out = one(sql, "SELECT pgml.predict_joint('Exercise vs Physiology', ARRAY[chins, situps,"
                   " jumps]) FROM pgml.linnerud LIMIT 1")
    assert len(out) == 3 and 100 < out[0] < 250


def test_digits_classification_clustering_and_pca(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('digits')")
    assert one(sql, "SELECT array_dims(image) FROM pgml.digits LIMIT 1") == "[1:8][1:8]"
    rows(sql, "SELECT * FROM pgml.train('Handwritten Digits', 'classification', 'pgml.digits',"
              " 'target', 'linear', '{\"max_iter\": 2000}')")
    accuracy = one(sql, "SELECT avg((pgml.predict('Handwritten Digits', image) = target)::int)"
                        " FROM pgml.digits")
    assert accuracy > 0.9
    sql.execute("CREATE VIEW digit_images AS SELECT image FROM pgml.digits")
    rows(sql, "SELECT * FROM pgml.train('Handwritten Digit Clusters', 'clustering',"
              " 'digit_images', algorithm => 'kmeans', hyperparams => '{\"n_clusters\": 10}')")
    m = metrics(sql, deployed(sql, "Handwritten Digit Clusters"))
    assert 0.0 < m["silhouette"] < 1.0
    clusters = {r[0] for r in rows(sql, "SELECT pgml.predict('Handwritten Digit Clusters', image)"
                                        " FROM pgml.digits")}
    assert clusters == set(range(10))
    rows(sql, "SELECT * FROM pgml.train('Handwritten Digit Components', 'decomposition',"
              " 'digit_images', algorithm => 'pca', hyperparams => '{\"n_components\": 3}')")
    m = metrics(sql, deployed(sql, "Handwritten Digit Components"))
    assert 0.2 < m["cumulative_explained_variance"] < 1.0
    components = one(sql, "SELECT pgml.predict_joint('Handwritten Digit Components', image)"
                          " FROM pgml.digits LIMIT 1")
    assert len(components) == 3


@pytest.fixture
def houses(sql: psycopg.Connection) -> psycopg.Connection:
    sql.execute("""CREATE TABLE houses (neighborhood text, rooms int, size real, price real)""")
    rng = np.random.default_rng(1)
    values = []
    for i in range(300):
        hood = ["north", "south", "east"][i % 3]
        rooms = int(rng.integers(1, 6))
        size = None if i % 17 == 0 else float(rng.uniform(40, 200))
        price = {"north": 100, "south": 50, "east": 0}[hood] + 30 * rooms + 1.5 * (size or 100)
        values.append((hood, rooms, size, price + float(rng.normal(0, 5))))
    with sql.cursor() as cur:
        cur.executemany("INSERT INTO houses VALUES (%s, %s, %s, %s)", values)
    return sql


def test_preprocessing_text_categories_and_row_predict(houses: psycopg.Connection) -> None:
    sql = houses
    with pytest.raises(psycopg.Error, match="size") as error:
        sql.execute("SELECT * FROM pgml.train('House Prices', 'regression', 'houses', 'price')")
    assert "impute" in str(error.value)
    rows(sql, """SELECT * FROM pgml.train('House Prices', 'regression', 'houses', 'price',
                 preprocess => '{"neighborhood": {"encode": "one_hot", "impute": "mode"},
                                 "size": {"impute": "mean", "scale": "standard"}}')""")
    model_id = deployed(sql, "House Prices")
    assert metrics(sql, model_id)["r2"] > 0.9
    columns = one(sql, "SELECT s.columns FROM pgml.snapshots s JOIN pgml.models m"
                       " ON m.snapshot_id = s.id WHERE m.id = %s", model_id)
    by_name = {c["name"]: c for c in columns["features"]}
    assert by_name["neighborhood"]["categories"] == ["east", "north", "south"]
    assert by_name["size"]["preprocess"]["scale"] == "standard"

    # NULL, and an unseen category (imputed by the rule; without one, an error)
    test_rows = [("north", 3, 120.0), ("east", 1, None), ("west", 2, 80.0)]
    served = [one(sql, "SELECT pgml.predict('House Prices', ROW(%s::text, %s::int, %s::real))",
                  *r) for r in test_rows]
    expected = stored_model(sql, model_id).predict(
        engine.RowTransformer.from_json(columns).transform([list(r) for r in test_rows])
    )
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert 280 < served[0] < 420
    # the row form by model id, and with a whole table row (label column ignored by name)
    assert one(sql, "SELECT pgml.predict(%s, ROW('north'::text, 3, 120::real))",
               model_id) == pytest.approx(served[0], rel=1e-6)


def test_text_labels_get_exactly_their_classes(sql: psycopg.Connection) -> None:
    sql.execute("CREATE TABLE fruit AS SELECT x::real AS weight,"
                " CASE WHEN x < 40 THEN 'cherry' WHEN x < 70 THEN 'apple' ELSE 'melon' END"
                " AS kind FROM generate_series(1, 100) x")
    rows(sql, "SELECT * FROM pgml.train('Fruit', 'classification', 'fruit', 'kind',"
              " 'random_forest', '{\"n_estimators\": 10}')")
    proba = one(sql, "SELECT pgml.predict_proba('Fruit', ARRAY[20])")
    assert len(proba) == 3  # upstream bug 1007 added a class
    # classes are sorted: apple 0, cherry 1, melon 2
    assert one(sql, "SELECT pgml.predict('Fruit', ARRAY[20])") == 1.0
    assert one(sql, "SELECT pgml.predict('Fruit', ARRAY[95])") == 2.0


def test_array_overloads_including_numeric(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    rows(sql, "SELECT * FROM pgml.train('Iris', 'classification', 'pgml.iris', 'target')")
    results = {
        kind: one(sql, f"SELECT pgml.predict('Iris', ARRAY[6.3, 3.3, 6.0, 2.5]::{kind})")
        for kind in ("real[]", "double precision[]", "numeric[]")
    }
    results["int"] = one(sql, "SELECT pgml.predict('Iris', ARRAY[6, 3, 6, 2])")
    results["bigint"] = one(sql, "SELECT pgml.predict('Iris', ARRAY[6, 3, 6, 2]::bigint[])")
    results["smallint"] = one(sql, "SELECT pgml.predict('Iris', ARRAY[6, 3, 6, 2]::smallint[])")
    assert results["real[]"] == results["numeric[]"] == results["double precision[]"] == 2.0
    assert results["int"] == results["bigint"] == results["smallint"]
    assert one(sql, "SELECT pgml.predict('Iris', ARRAY[true, false, true, true])") in (0, 1, 2)
    model_id = deployed(sql, "Iris")
    assert one(sql, "SELECT pgml.predict(%s, ARRAY[6.3, 3.3, 6.0, 2.5]::numeric[])",
               model_id) == 2.0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELECT pgml.predict('Nope', ARRAY[1, 2])", "project 'Nope' does not exist"),
        ("SELECT pgml.predict('Iris', ARRAY[1, 2])", "4 features, got 2"),
        ("SELECT * FROM pgml.train('Iris', 'regression', 'pgml.iris', 'target')",
         "is a classification project"),
        ("SELECT * FROM pgml.train('X', 'regression', 'no_such_table', 'y')",
         "relation 'no_such_table' does not exist"),
        ("SELECT * FROM pgml.train('X', 'regression', 'pgml.iris; DROP TABLE pgml.iris', 'y')",
         "is not a valid table or view name"),
        ("SELECT * FROM pgml.train('X', 'regression', 'pgml.iris', 'nope')", "nope"),
        ("SELECT * FROM pgml.train('X', relation_name => 'pgml.iris', y_column_name => 'target')",
         "needs its task"),
        ("SELECT * FROM pgml.train('Iris', algorithm => 'xgboost', "
         "hyperparams => '{\"no_such_param\": 1}')", "no_such_param"),
        ("SELECT * FROM pgml.deploy('Iris', 'specific')", "pgml.deploy(model_id)"),
        ("SELECT * FROM pgml.load_dataset('imdb')", "not available offline"),
    ],
)
def test_clear_errors(sql: psycopg.Connection, statement: str, message: str) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    rows(sql, "SELECT * FROM pgml.train('Iris', 'classification', 'pgml.iris', 'target')")
    with pytest.raises(psycopg.Error) as error:
        sql.execute(statement)
    assert message in str(error.value) + (error.value.diag.message_hint or "")
    assert one(sql, "SELECT count(*) FROM pgml.iris") == 150


def test_null_labels_and_tiny_splits(sql: psycopg.Connection) -> None:
    sql.execute("CREATE TABLE t (x real, y int)")
    sql.execute("INSERT INTO t VALUES (1, 0), (2, NULL), (3, 1), (4, 1)")
    with pytest.raises(psycopg.Error, match="NULL"):
        sql.execute("SELECT * FROM pgml.train('T', 'classification', 't', 'y')")
    sql.execute("DELETE FROM t WHERE y IS NULL")
    sql.execute("INSERT INTO t VALUES (5, 2)")
    with pytest.raises(psycopg.Error) as error:
        sql.execute("SELECT * FROM pgml.train('T', 'classification', 't', 'y')")
    assert "test_size" in str(error.value) or "rows" in str(error.value)
    assert one(sql, "SELECT count(*) FROM pgml.projects") == 0, "a failed train leaves nothing"


def test_nan_and_infinity_are_named_not_called_null(sql: psycopg.Connection) -> None:
    sql.execute("CREATE TABLE m (x real, z numeric, y double precision)")
    sql.execute("INSERT INTO m SELECT i, i % 7, i * 2 + 1 FROM generate_series(1, 40) i")
    sql.execute("UPDATE m SET x = 'NaN' WHERE z = 3")
    train = "SELECT * FROM pgml.train('M', 'regression', 'm', 'y'{})"
    with pytest.raises(psycopg.Error, match=r"column 'x' contains 6 NaN value\(s\) \(NaN is a "
                       r"number, not NULL.*WHERE x IS NULL OR x NOT IN \('NaN', 'Infinity', "
                       r"'-Infinity'\)"):
        sql.execute(train.format(""))
    # an impute rule treats NaN as missing, as it does NULL
    assert rows(sql, train.format(""", preprocess => '{"x": {"impute": "mean"}}'""")
                )[0][:2] == ("M", "regression")
    sql.execute("UPDATE m SET z = 'Infinity' WHERE x = 1")
    with pytest.raises(psycopg.Error, match="column 'z' contains 1 Infinity value"):
        sql.execute(train.format(""", preprocess => '{"x": {"impute": "mean"}}'"""))
    sql.execute("UPDATE m SET z = 1, y = 'NaN' WHERE x = 1")
    with pytest.raises(psycopg.Error, match="label column 'y' has 1 NaN value"):
        sql.execute(train.format(""", preprocess => '{"x": {"impute": "mean"}}'"""))


def test_load_dataset_limit_is_a_positive_row_count(sql: psycopg.Connection) -> None:
    assert rows(sql, """SELECT * FROM pgml.load_dataset('iris', "limit" => 5)""") == [
        ("pgml.iris", 5)]
    for limit in (-5, 0):
        with pytest.raises(psycopg.Error, match=f"limit must be a positive number of rows, "
                           f"got {limit}") as error:
            sql.execute(f"""SELECT * FROM pgml.load_dataset('iris', "limit" => {limit})""")
        assert "NULL" in (error.value.diag.message_hint or "")
        assert one(sql, "SELECT count(*) FROM pgml.iris") == 5, "refused before the table"
    assert rows(sql, """SELECT * FROM pgml.load_dataset('iris', "limit" => NULL)""") == [
        ("pgml.iris", 150)]


def test_unreadable_relation(sql: psycopg.Connection, db_url: str) -> None:
    sql.execute("CREATE TABLE secret (x real, y real)")
    sql.execute("DROP ROLE IF EXISTS pgml_test_reader")
    sql.execute("CREATE ROLE pgml_test_reader")
    try:
        sql.execute("GRANT USAGE ON SCHEMA pgml TO pgml_test_reader")
        sql.execute("GRANT ALL ON ALL TABLES IN SCHEMA pgml TO pgml_test_reader")
        sql.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA pgml TO pgml_test_reader")
        with psycopg.connect(db_url) as conn:
            conn.execute("SET ROLE pgml_test_reader")
            with pytest.raises(psycopg.Error, match="not readable"):
                conn.execute("SELECT * FROM pgml.train('S', 'regression', 'secret', 'y')")
    finally:
        sql.execute("REVOKE ALL ON ALL TABLES IN SCHEMA pgml FROM pgml_test_reader")
        sql.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgml FROM pgml_test_reader")
        sql.execute("REVOKE ALL ON SCHEMA pgml FROM pgml_test_reader")
        sql.execute("DROP ROLE pgml_test_reader")


def test_auto_deploy_rules_and_failed_training(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('diabetes')")
    first = rows(sql, "SELECT * FROM pgml.train('D', 'regression', 'pgml.diabetes', 'target')")
    assert first[0][3] is True
    linear = deployed(sql, "D")
    worse = rows(sql, "SELECT * FROM pgml.train('D', algorithm => 'xgboost',"
                      " hyperparams => '{\"n_estimators\": 1, \"max_depth\": 1}')")
    assert worse[0][3] is False and deployed(sql, "D") == linear
    off = rows(sql, "SELECT * FROM pgml.train('D', algorithm => 'ridge',"
                    " automatic_deploy => false)")
    assert off[0][3] is False and deployed(sql, "D") == linear
    models_before = one(sql, "SELECT count(*) FROM pgml.models")
    with pytest.raises(psycopg.Error):
        sql.execute("SELECT * FROM pgml.train('D', algorithm => 'lasso',"
                    " hyperparams => '{\"alpha\": \"a lot\"}')")
    assert deployed(sql, "D") == linear
    assert one(sql, "SELECT count(*) FROM pgml.models") == models_before


def test_redeploy_is_seen_by_other_connections(sql: psycopg.Connection, db_url: str) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('diabetes')")
    rows(sql, "SELECT * FROM pgml.train('R', 'regression', 'pgml.diabetes', 'target')")
    rows(sql, "SELECT * FROM pgml.train('R', algorithm => 'xgboost',"
              " hyperparams => '{\"n_estimators\": 5}', automatic_deploy => false)")
    features = "ARRAY[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]"
    with psycopg.connect(db_url, autocommit=True) as reader, \
            psycopg.connect(db_url, autocommit=True) as writer:
        before = one(reader, f"SELECT pgml.predict('R', {features})")
        with writer.transaction():
            rows(writer, "SELECT * FROM pgml.deploy('R', 'most_recent')")
            assert one(reader, f"SELECT pgml.predict('R', {features})") == before, \
                "an uncommitted deploy is invisible"
        after = one(reader, f"SELECT pgml.predict('R', {features})")
    assert after != before
    xgb_id = deployed(sql, "R")
    assert after == pytest.approx(one(sql, f"SELECT pgml.predict({xgb_id}, {features})"))


def test_delete_model_and_project(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    rows(sql, "SELECT * FROM pgml.train('Del', 'classification', 'pgml.iris', 'target',"
              " materialize_snapshot => true)")
    rows(sql, "SELECT * FROM pgml.train('Del', algorithm => 'ridge')")
    first, second = [r[0] for r in rows(sql, "SELECT id FROM pgml.models ORDER BY id")]
    current = deployed(sql, "Del")
    with pytest.raises(psycopg.Error, match="is deployed"):
        sql.execute("SELECT pgml.delete_model(%s)", (current,))
    other = first if current == second else second
    assert one(sql, "SELECT pgml.delete_model(%s)", other) == other
    assert one(sql, "SELECT count(*) FROM pgml.files WHERE model_id = %s", other) == 0
    assert one(sql, "SELECT to_regclass('pgml.snapshot_1') IS NOT NULL") is True
    one(sql, "SELECT pgml.delete_project('Del')")
    assert one(sql, "SELECT count(*) FROM pgml.models") == 0
    assert one(sql, "SELECT count(*) FROM pgml.snapshots") == 0
    assert one(sql, "SELECT count(*) FROM pgml.files") == 0
    assert one(sql, "SELECT to_regclass('pgml.snapshot_1')") is None


def test_views(sql: psycopg.Connection) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    rows(sql, "SELECT * FROM pgml.train('V', 'classification', 'pgml.iris', 'target')")
    rows(sql, "SELECT * FROM pgml.train('V', algorithm => 'xgboost', automatic_deploy => false)")
    assert rows(sql, "SELECT name, task::text, algorithm, relation_name, y_column_name"
                     " FROM pgml.overview") == [("V", "classification", "linear", "pgml.iris",
                                                 ["target"])]
    assert rows(sql, "SELECT algorithm, deployed FROM pgml.trained_models ORDER BY id") == [
        ("linear", True), ("xgboost", False)]
    assert rows(sql, "SELECT name, algorithm FROM pgml.deployed_models") == [("V", "linear")]


def test_native_scorer_serves_compiled_models_like_the_python_path(
    sql: psycopg.Connection,
) -> None:
    """pgml.predict is the C scorer when pgml_native is installed; answers must not change."""
    native = one(sql, "SELECT count(*) FROM pg_extension WHERE extname = 'pgml_native'")
    if not native:
        pytest.skip("pgml_native is not installed on this server (./dev setup builds it)")
    assert one(sql, "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                    " WHERE p.oid = 'pgml.predict(text, real[])'::regprocedure") == "c"
    rows(sql, "SELECT * FROM pgml.load_dataset('diabetes')")
    rows(sql, "SELECT * FROM pgml.load_dataset('breast_cancer')")
    features = "ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]"
    for algorithm in ("linear", "xgboost", "lightgbm", "random_forest",
                      "hist_gradient_boosting"):
        project = f"native {algorithm}"
        size = {"hist_gradient_boosting": {"max_iter": 20}, "linear": {}}.get(
            algorithm, {"n_estimators": 20})
        rows(sql, "SELECT * FROM pgml.train(%s, 'regression', 'pgml.diabetes', 'target', %s,"
                  " %s::jsonb)", project, algorithm, json.dumps(size))
        model_id = deployed(sql, project)
        assert one(sql, "SELECT count(*) FROM pgml.files WHERE model_id = %s AND path = 'native'",
                   model_id) == 1, algorithm
        if algorithm == "xgboost":  # TOAST by lz4, not pglz (sql/pgml/050_files_compression)
            assert one(sql, "SELECT pg_column_compression(data) FROM pgml.files"
                            " WHERE model_id = %s AND path = 'booster.json'", model_id) == "lz4"
        pairs = rows(sql, f"SELECT pgml.predict(%s, {features}), pgml._py_predict(%s, {features})"
                          " FROM pgml.diabetes", project, project)
        np.testing.assert_allclose([p[0] for p in pairs], [p[1] for p in pairs], rtol=2e-5,
                                   atol=1e-3, err_msg=algorithm)
    cached = {r[0] for r in rows(sql, "SELECT model_id FROM pgml.native_cache_stats()")}
    assert deployed(sql, "native xgboost") in cached

    rows(sql, "SELECT * FROM pgml.train('native bc', 'classification', 'pgml.breast_cancer',"
              " 'malignant', 'xgboost', '{\"n_estimators\": 20}')")
    columns = one(sql, "SELECT string_agg(format('%%I', attname), ', ' ORDER BY attnum)"
                       " FROM pg_attribute WHERE attrelid = 'pgml.breast_cancer'::regclass"
                       " AND attnum > 0 AND attname <> 'malignant'")
    probs = rows(sql, f"SELECT pgml.predict_proba('native bc', ARRAY[{columns}]),"
                      f" pgml._py_predict_proba('native bc', ARRAY[{columns}])"
                      " FROM pgml.breast_cancer")
    np.testing.assert_allclose([p[0] for p in probs], [p[1] for p in probs], atol=1e-5)


def test_parallel_queries_never_run_python_in_a_worker(sql: psycopg.Connection) -> None:
    """A parallel plan keeps every Python-reaching function in the leader, out of parallel mode.

    Marked PARALLEL SAFE, the Python path's plpy.execute failed in a worker ("cannot start
    subtransactions during a parallel operation") and the backend crashed at its next
    PL/Python call; every such function is PARALLEL UNSAFE now, whatever the plan.
    """
    python_safe = rows(sql, "SELECT p.oid::regprocedure::text FROM pg_proc p"
                            " JOIN pg_language l ON l.oid = p.prolang"
                            " WHERE l.lanname IN ('plpython3u', 'c')"
                            " AND p.pronamespace IN ('pgml'::regnamespace,"
                            " 'pgml_flow'::regnamespace) AND p.proparallel = 's'"
                            # pure C: the blob's evaluation, the deployment lookup (SPI
                            # only), description_words' count (PostgreSQL's regex at most),
                            # a prediction's six digits (snprintf and strtod)
                            " AND p.proname NOT IN ('native_eval', 'native_eval_proba',"
                            " '_native_deployed_model_id', 'word_count', 'real_digits')")
    assert python_safe == []
    sql.execute("CREATE TABLE par AS SELECT x::real AS x, (2 * x)::real AS y"
                " FROM generate_series(1, 200) x")
    rows(sql, "SELECT * FROM pgml.train('par', 'regression', 'par', 'y', 'linear')")
    started = one(sql, "SELECT pg_postmaster_start_time()")
    sql.execute("SET force_parallel_mode = on")
    assert one(sql, "SELECT round(pgml.predict('par', ARRAY[x])) FROM par WHERE x = 5") == 10
    assert one(sql, "SELECT round((pgml_flow.predict_rows((SELECT max(id) FROM pgml.models),"
                    " ARRAY['{\"x\": 3}'::json]))[1])") == 6
    sql.execute("RESET force_parallel_mode")
    rows(sql, "SELECT * FROM pgml.train('par', 'regression', 'par', 'y', 'linear')")
    assert one(sql, "SELECT pg_postmaster_start_time()") == started
