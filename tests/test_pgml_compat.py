"""PostgresML compatibility, the rest of the way (issue 15, items 1-9), through SQL.

Each test exercises several items on one database to stay fast: the unsupervised defaults
and pgml.decompose, dataset reloads under a view and pgml.wine's columns,
pgml.deployed_models.id, search results under PostgresML's keys with cv 1, NULL as a
category, the strict errors on both serving paths (native C and Python), the snapshot's
samples and pgml.status; then the repair of a dropped pgml schema by `db upgrade`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from pgml_flow import migrate
from tests.test_pgml_api import deployed, metrics, one, rows, stored_model

#: pgml.wine's columns in PostgresML 2.10 (pgml-extension/src/orm/dataset.rs)
WINE = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
        "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "hue", "color_intensity",
        "od280/od315_of_diluted_wines", "proline", "target"]


@pytest.fixture
def sql(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def native_on(conn: psycopg.Connection) -> bool:
    return bool(one(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pgml_native'"))


def test_unsupervised_defaults_decompose_datasets_deployed_models_and_search(sql) -> None:
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    sql.execute("CREATE VIEW iris_x AS SELECT sepal_length, sepal_width, petal_length,"
                " petal_width FROM pgml.iris")
    # 1. the default algorithm 'linear' is kmeans for clustering, pca for decomposition
    assert rows(sql, "SELECT * FROM pgml.train('c', 'clustering', 'iris_x',"
                     " hyperparams => '{\"n_clusters\": 3}')") == \
        [("c", "clustering", "kmeans", True)]
    assert rows(sql, "SELECT * FROM pgml.train('d', 'decomposition', 'iris_x')") == \
        [("d", "decomposition", "pca", True)]
    assert rows(sql, "SELECT algorithm FROM pgml.models ORDER BY id") == [("kmeans",), ("pca",)]
    # 2. pgml.decompose: the vector on every principal component
    vector = [5.1, 3.5, 1.4, 0.2]
    components = one(sql, "SELECT pgml.decompose('d', %s::real[])", vector)
    expected = stored_model(sql, deployed(sql, "d")).predict_joint(
        np.asarray([vector], dtype=np.float32))[0]
    np.testing.assert_allclose(components, expected, rtol=1e-5, atol=1e-5)
    assert len(components) == 4
    with pytest.raises(psycopg.Error, match=r"pgml\.decompose needs a decomposition model"):
        sql.execute("SELECT pgml.decompose('c', ARRAY[5.1, 3.5, 1.4, 0.2]::real[])")
    # 4. deployed_models.id is the deployed model's id: joined to pgml.models, its model
    assert rows(sql, "SELECT d.name, m.algorithm FROM pgml.deployed_models d"
                     " JOIN pgml.models m ON m.id = d.id ORDER BY d.name") == \
        [("c", "kmeans"), ("d", "pca")]
    # 6. a reload keeps a view on the table (emptied and filled, not dropped)
    assert rows(sql, "SELECT * FROM pgml.load_dataset('iris', \"limit\" => 20)") == \
        [("pgml.iris", 20)]
    assert one(sql, "SELECT count(*) FROM iris_x") == 20
    rows(sql, "SELECT * FROM pgml.load_dataset('wine', \"limit\" => 3)")
    assert [r[0] for r in rows(sql, "SELECT attname FROM pg_attribute WHERE attrelid ="
                                    " 'pgml.wine'::regclass AND attnum > 0 ORDER BY attnum")] \
        == WINE
    # hue holds hue (0.48 to 1.71), color_intensity the intensity (1.28 to 13)
    assert one(sql, "SELECT max(hue) < 2 AND min(color_intensity) > 2 FROM pgml.wine")
    # 8. search_args cv 1 (train on the train rows, score on the test rows), PostgresML's keys
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    rows(sql, """SELECT * FROM pgml.train('k', 'classification', 'pgml.iris', 'target', 'knn',
                 search => 'grid', search_params => '{"n_neighbors": [1, 3, 5]}',
                 search_args => '{"cv": 1}')""")
    results = metrics(sql, deployed(sql, "k"))["search_results"]
    assert results["n_splits"] == 1 and results["param_n_neighbors"] == [1, 3, 5]
    for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time",
                "mean_test_score", "std_test_score", "split0_test_score", "rank_test_score"):
        assert len(results[key]) == 3, key
    assert results["params"] == [{"n_neighbors": n} for n in (1, 3, 5)]
    assert results["split0_test_score"] == results["mean_test_score"]
    assert results["params"][results["best_index"]] == results["best_params"]
    # 9. the snapshot's analysis has samples; pgml.status exists with PostgresML's values
    assert one(sql, "SELECT analysis->'samples' FROM pgml.snapshots ORDER BY id DESC"
                    " LIMIT 1") == 150
    assert one(sql, "SELECT enum_range(NULL::pgml.status)::text") == \
        "{in_progress,successful,failed}"


def test_null_category_and_strict_errors_on_both_paths(sql) -> None:
    sql.execute("""CREATE TABLE weather AS
        SELECT (CASE i % 4 WHEN 0 THEN 'sun' WHEN 1 THEN 'rain' WHEN 2 THEN NULL
                           ELSE 'fog' END) AS clouds,
               (i % 7)::real AS wind,
               (CASE i % 4 WHEN 0 THEN 30 WHEN 1 THEN 10 WHEN 2 THEN 20 ELSE 15 END
                + (i % 7))::real AS temperature
          FROM generate_series(1, 200) i""")
    # 3. NULL in a text column is a category of its own (no impute rule needed)
    rows(sql, "SELECT * FROM pgml.train('w', 'regression', 'weather', 'temperature', 'xgboost',"
              " '{\"n_estimators\": 20, \"max_depth\": 3}')")
    model_id = deployed(sql, "w")
    columns = one(sql, "SELECT s.columns FROM pgml.snapshots s JOIN pgml.models m"
                       " ON m.snapshot_id = s.id WHERE m.id = %s", model_id)
    assert columns["features"][0]["categories"] == ["__NULL__", "fog", "rain", "sun"]
    null_row = "ROW(NULL::text, 3::real)"
    python = one(sql, f"SELECT pgml._py_predict_row('w', to_json({null_row}))")
    assert one(sql, f"SELECT pgml.predict('w', {null_row})") == pytest.approx(python, rel=1e-6)
    assert 20 < python < 26  # the NULL rows' temperature (20 + wind), not another category's
    assert metrics(sql, model_id)["r2"] > 0.9
    native = native_on(sql)
    # 9. an unseen category with impute error, a NULL in the features array, predict_proba
    # of a regression: the same error natively (the C scorer hands them over) and in Python
    for call, message in [
        ("pgml.predict('w', ROW('snow'::text, 3::real))",
         "column 'clouds' has the value 'snow', a category its train rows did not have"),
        ("pgml._py_predict_row('w', to_json(ROW('snow'::text, 3::real)))",
         "column 'clouds' has the value 'snow'"),
        ("pgml.predict('w', ARRAY[1, NULL]::real[])", "feature 2 is NULL"),
        ("pgml._py_predict('w', ARRAY[1, NULL]::real[])", "feature 2 is NULL"),
        (f"pgml.predict({model_id}, ARRAY[1, NULL]::real[])", "feature 2 is NULL"),
        ("pgml.predict_batch('w', ARRAY[1, 2, NULL, 4]::real[])", "row 2, feature 1 is NULL"),
        (f"pgml.predict_batch({model_id}, ARRAY[1, 2, 3, NULL]::real[])",
         "row 2, feature 2 is NULL"),
        ("pgml.predict_proba('w', ARRAY[1, 2]::real[])",
         "predict_proba needs a classification model"),
    ]:
        with pytest.raises(psycopg.Error, match=message) as error:
            sql.execute(f"SELECT {call}")
        assert error.value.sqlstate in ("22000", "22023"), call  # data, argument
    # NaN stays the missing value the tree libraries score; the BI helper scores NULL as NaN
    nan = one(sql, "SELECT pgml.predict('w', ARRAY[1, 'NaN']::real[])")
    assert one(sql, f"SELECT pgml_flow.predict_or_null({model_id}, ARRAY[1, NULL]::real[])") \
        == pytest.approx(nan)
    # 5. catboost is installed in the server's Python: trained and served through pgml
    assert rows(sql, "SELECT * FROM pgml.train('wc', 'regression', 'weather', 'temperature',"
                     " 'catboost', '{\"iterations\": 30, \"depth\": 3}')") == \
        [("wc", "regression", "catboost", True)]
    assert 20 < one(sql, f"SELECT pgml.predict('wc', {null_row})") < 26
    assert one(sql, "SELECT pgml.predict('wc', ARRAY[3, 1]::real[])") == pytest.approx(
        stored_model(sql, deployed(sql, "wc")).predict(np.asarray([[3, 1]]))[0], rel=1e-5)
    # where the server has the C scorer, pgml.predict above was the C function
    assert one(sql, "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                    " WHERE p.oid = 'pgml.predict(text, real[])'::regprocedure") == \
        ("c" if native else "sql")


def test_upgrade_repairs_a_dropped_pgml_schema(flow, db_url, caplog) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA pgml CASCADE")  # how PostgresML's test scripts reset
    caplog.set_level(logging.WARNING, logger="pgml_flow.migrate")
    flow.upgrade()
    assert "schema pgml was dropped" in caplog.text and "lost" in caplog.text
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert one(conn, "SELECT count(*) FROM pgml.models") == 0
        rows(conn, "SELECT * FROM pgml.load_dataset('iris', \"limit\" => 60)")
        rows(conn, "SELECT * FROM pgml.train('i', 'classification', 'pgml.iris', 'target')")
        assert one(conn, "SELECT pgml.predict('i', ARRAY[5.1, 3.5, 1.4, 0.2])") == 0
        assert one(conn, "SELECT to_regclass('analytics.model_quality') IS NOT NULL")
        # partly dropped: the models table (its deployments and files lose their keys)
        conn.execute("DROP TABLE pgml.models CASCADE")
    caplog.clear()
    flow.upgrade()
    assert "pgml.models was dropped" in caplog.text
    assert "pgml.deployments, pgml.files that reference" in caplog.text
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert one(conn, "SELECT count(*) FROM pgml.deployments") == 0
        assert one(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid ="
                         " 'pgml.files'::regclass AND contype = 'f'") == 1
    assert migrate.pgml_damage(db_url) == []  # repaired: nothing more to say
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA pgml CASCADE")
    assert flow.downgrade("base") is None  # and a downgrade works over a dropped schema
