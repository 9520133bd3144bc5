"""Without the native scorer: the Python path serves every prediction, and status says so.

The scorer is installed on the test server, so its absence is produced the way an operator
would switch it off: ``pgml.native_scoring = off`` for the database, the extension dropped,
the SQL re-applied (``pgml-flow db upgrade``). Switching it back on restores the C functions.
"""

from __future__ import annotations

import json

import numpy as np
import psycopg
from typer.testing import CliRunner

from cli.app import app
from pgml_flow.app import PgmlFlow
from tests.conftest import AS_OF

FEATURES = ("SELECT features FROM pgml_flow.trajectory_features "
            "WHERE client_id = 1 ORDER BY entity_id LIMIT 300")


def predict_language(flow: PgmlFlow) -> str:
    with flow.connect() as conn:
        row = conn.execute("SELECT l.lanname FROM pg_proc p JOIN pg_language l "
                           "ON l.oid = p.prolang WHERE p.oid = "
                           "'pgml.predict(text, real[])'::regprocedure").fetchone()
    return str(row[0]) if row else ""


def predictions(flow: PgmlFlow) -> np.ndarray:
    with flow.connect() as conn:
        rows = conn.execute("SELECT pgml.predict('trajectory__client_1', f.features) "
                            f"FROM ({FEATURES}) f").fetchall()
    return np.array([r[0] for r in rows], dtype=float)


def set_native(flow: PgmlFlow, on: bool) -> None:
    with flow.connect(autocommit=True) as conn:
        db = conn.execute("SELECT current_database()").fetchone()
        assert db is not None
        action = "RESET pgml.native_scoring" if on else "SET pgml.native_scoring = off"
        conn.execute(psycopg.sql.SQL("ALTER DATABASE {} " + action).format(
            psycopg.sql.Identifier(str(db[0]))))
        if not on:
            conn.execute("DROP EXTENSION IF EXISTS pgml_native")
    flow.upgrade()


def test_python_path_serves_everything_when_the_scorer_is_off(tflow: PgmlFlow) -> None:
    assert predict_language(tflow) == "c"
    native = predictions(tflow)
    set_native(tflow, on=False)
    assert predict_language(tflow) == "sql"
    with tflow.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension "
                            "WHERE extname = 'pgml_native'").fetchone() == (0,)
        # a model trained now gets no compiled form, and still predicts
        conn.execute("SELECT * FROM pgml.train('trajectory__client_1', relation_name => "
                     "'pgml_flow_training.trajectory__client_1', "
                     "y_column_name => 'lead_time_days', algorithm => 'xgboost', "
                     "test_sampling => 'last')")
        new = conn.execute("SELECT max(id) FROM pgml.models").fetchone()
        assert new is not None
        assert conn.execute("SELECT count(*) FROM pgml.files WHERE model_id = %s AND "
                            "path = 'native'", (new[0],)).fetchone() == (0,)
        conn.rollback()
    np.testing.assert_allclose(predictions(tflow), native, rtol=1e-5, atol=1e-4)
    env = {"DATABASE_URL": tflow.url, "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--json", "--now", AS_OF.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    assert {s["serving"] for s in json.loads(result.output)} == {
        "python (pgml.native_scoring is off)"}
    result = runner.invoke(app, ["db", "status"], env=env)
    assert "native_scoring" in result.output and " off" in result.output
    # and back on: the C functions return, the models compiled at training are served natively
    set_native(tflow, on=True)
    assert predict_language(tflow) == "c"
    result = runner.invoke(app, ["status", "--json", "--now", AS_OF.isoformat()], env=env)
    # complexity's ROW form too (its learned encodings are compiled with the model)
    assert {s["serving"] for s in json.loads(result.output)} == {"native"}
    np.testing.assert_allclose(predictions(tflow), native, rtol=1e-6)
