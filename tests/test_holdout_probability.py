"""A spec whose key metric scores probabilities (``roc_auc``, ``log_loss``): champion and
challenger are compared on the positive class's probability of the held-out rows
(``pgml_flow.predict_positive_rows``), not on labels, which made such a spec fail with a
KeyError at its first retrain."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from pgml_flow import holdout
from pgml_flow.app import PgmlFlow
from pgml_models.specs import builtin_specs


def test_probability_key_metrics_score_the_held_out_rows_as_pgml_train_did(
        tflow: PgmlFlow) -> None:
    spec = builtin_specs()["rework"]
    project = spec.project(1)
    with tflow.connect() as conn:
        model_id, stored = conn.execute(
            "SELECT m.id, m.metrics FROM pgml.deployed_models d JOIN pgml.models m ON m.id = d.id"
            " WHERE d.name = %s", (project,)).fetchone()
        (rows,) = conn.execute(
            f"SELECT count(*) FROM pgml_flow_training.{project}").fetchone()
        for name in ("roc_auc", "log_loss"):
            scored, held_out = holdout.score(
                conn, dataclasses.replace(spec, key_metric=name), 1, model_id, rows)
            # the rows pgml.train held out, scored as it scored them
            assert held_out == holdout.test_rows(rows, spec.test_size)
            assert scored == pytest.approx(stored[name], abs=1e-4), name
        # labels for f1 as before: the probability path is only taken for those two
        f1, _ = holdout.score(conn, spec, 1, model_id, rows)
        assert f1 == pytest.approx(stored["f1"], abs=1e-4)
        # a model that is not a two-class classifier has no positive class's probability
        (regression,) = conn.execute(
            "SELECT m.id FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id"
            " WHERE p.task = 'regression' LIMIT 1").fetchone()
        with pytest.raises(psycopg.Error, match="not a two-class classifier"):
            conn.execute("SELECT pgml_flow.predict_positive_rows(%s, ARRAY[]::json[])",
                         (regression,))
