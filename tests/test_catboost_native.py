"""CatBoost served by the C scorer (issue 15, item 5), through SQL on the embedded server.

One test, small models (20-30 trees): regression, binary and multiclass classification are
trained by ``pgml.train``, stored with their compiled form (blob kind 3, oblivious trees),
and ``pgml.predict``/``pgml.predict_proba`` (C, array and ROW forms) agree with the Python
path (``pgml._py_predict*``, which runs CatBoost) and with CatBoost's own predictions on the
stored model to a relative 1e-5.  A model the compiler refuses (a non-symmetric grow policy)
stays on Python and its training says why; ``db status`` says how CatBoost is served.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from pgml_flow.server_venv import catboost_status
from tests.test_pgml_api import deployed, one, rows, stored_model

pytest.importorskip("catboost")


@pytest.fixture
def sql(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def _rel(a: object, b: object) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12)))


def _is_native(sql: psycopg.Connection, model_id: int) -> bool:
    return bool(one(sql, "SELECT count(*) FROM pgml.files WHERE model_id = %s"
                         " AND path = 'native'", model_id))


def test_catboost_models_are_served_natively_like_catboost(sql, base_flow) -> None:
    if not one(sql, "SELECT count(*) FROM pg_extension WHERE extname = 'pgml_native'"):
        pytest.skip("pgml_native is not installed on this server (./dev setup builds it)")
    rows(sql, "SELECT * FROM pgml.load_dataset('diabetes')")
    rows(sql, "SELECT * FROM pgml.load_dataset('iris')")
    sql.execute("CREATE VIEW flowers AS SELECT sepal_length, sepal_width, petal_length,"
                " petal_width, (target = 2) AS virginica FROM pgml.iris")
    small = '{"iterations": 30, "depth": 4, "thread_count": 1}'
    for project, task, relation, label in [
        ("cb reg", "regression", "pgml.diabetes", "target"),
        ("cb multi", "classification", "pgml.iris", "target"),
        ("cb bin", "classification", "flowers", "virginica"),
    ]:
        assert rows(sql, "SELECT * FROM pgml.train(%s, %s, %s, %s, 'catboost', %s::jsonb)",
                    project, task, relation, label, small) == [(project, task, "catboost", True)]
        assert _is_native(sql, deployed(sql, project)), project
        # the model's row section too: pgml.predict(model_id, row) runs in C
        assert one(sql, "SELECT pgml_flow.native_rows(%s)", deployed(sql, project)), project

    diabetes = "ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]"
    pairs = rows(sql, f"SELECT pgml.predict('cb reg', {diabetes}),"
                      f" pgml._py_predict('cb reg', {diabetes}), {diabetes}::real[],"
                      " pgml.predict(%s, ROW(age, sex, bmi, bp, s1, s2, s3, s4, s5, s6))"
                      " FROM pgml.diabetes LIMIT 120", deployed(sql, "cb reg"))
    c_form, py_form = [p[0] for p in pairs], [p[1] for p in pairs]
    own = stored_model(sql, deployed(sql, "cb reg")).backend.models[0].predict(
        np.asarray([p[2] for p in pairs], dtype=np.float32))
    assert _rel(c_form, own) <= 1e-5 and _rel(py_form, own) <= 1e-5
    assert _rel([p[3] for p in pairs], own) <= 1e-5  # the ROW form in C
    assert len(set(c_form)) > 100  # a real model, not a constant

    iris = "ARRAY[sepal_length, sepal_width, petal_length, petal_width]"
    for project in ("cb multi", "cb bin"):
        got = rows(sql, f"SELECT pgml.predict_proba(%s, {iris}), pgml._py_predict_proba(%s,"
                        f" {iris}), pgml.predict(%s, {iris}), {iris}::real[]"
                        " FROM pgml.iris", project, project, project)
        proba = stored_model(sql, deployed(sql, project)).backend.models[0].predict_proba(
            np.asarray([g[3] for g in got], dtype=np.float32))
        assert np.asarray([g[0] for g in got]).shape == proba.shape, project
        assert _rel([g[0] for g in got], proba) <= 1e-5, project
        assert _rel([g[1] for g in got], proba) <= 1e-5, project
        # the class: the likeliest (iris's labels 0, 1, 2 and the boolean's 0, 1 are indices)
        assert [g[2] for g in got] == np.argmax(proba, axis=1).tolist(), project

    # refused by the compiler: served by CatBoost, and the training says why
    notices: list[str] = []
    sql.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    rows(sql, "SELECT * FROM pgml.train('cb lossguide', 'regression', 'pgml.diabetes',"
              " 'target', 'catboost', '{\"iterations\": 5, \"grow_policy\": \"Lossguide\"}')")
    assert not _is_native(sql, deployed(sql, "cb lossguide"))
    assert any("Python path" in n and "non-symmetric" in n for n in notices), notices
    assert one(sql, "SELECT pgml.predict('cb lossguide', ARRAY[0.03, 0.05, 0.06, 0.02, -0.04,"
                    " -0.03, -0.04, 0.0, 0.02, -0.02]::real[])") is not None
    # db status: installed, and served by the C scorer
    status = catboost_status(base_flow.database_info().server_venv)
    assert "served by the C scorer" in status and "categorical" in status
