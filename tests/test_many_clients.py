"""What makes retraining many clients cheaper keeps its results (issue 16).

A retrain reuses a client's model choice when the rows and candidates it was made on did
not change (``ml_model_candidates.rows_key``), scores champion and challenger in one read
of the held-out rows, and computes the baseline without the training view's split order.
The figures are bench/many_clients.py's (docs/benchmarks.md), never asserted here.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgml_flow import holdout
from pgml_flow.app import PgmlFlow
from pgml_flow.retraining import RetrainOptions
from pgml_models.specs import builtin_specs
from tests.conftest import AS_OF

PROJECT = "complexity__client_1"


def _candidates(flow: PgmlFlow, model_id: int) -> list[tuple[Any, ...]]:
    with flow.connect() as conn:
        return conn.execute(
            "SELECT candidate, label, validation_value, chosen, rows_key, seconds "
            "FROM ml_model_candidates WHERE client_id = 1 AND model_id = %s "
            "ORDER BY candidate", (model_id,)).fetchall()


def _retrain(flow: PgmlFlow) -> tuple[int, str, dict[str, Any]]:
    (result,) = flow.retrain(["complexity"], [1], now=AS_OF,
                             options=RetrainOptions(force=True))
    assert result.status in ("promoted", "kept_champion"), result.detail
    assert result.model_id is not None and result.detail
    with flow.connect() as conn:
        row = conn.execute("SELECT metrics_before FROM ml_retraining_events WHERE id = %s",
                           (result.event_id,)).fetchone()
    assert row is not None
    return result.model_id, result.detail, row[0]


def test_a_choice_is_reused_only_on_the_same_rows(tflow: PgmlFlow) -> None:
    spec = builtin_specs()["complexity"]
    with tflow.connect() as conn:
        (first,) = conn.execute(
            "SELECT max(model_id) FROM ml_model_candidates WHERE project = %s",
            (PROJECT,)).fetchone()
        (last_id,) = conn.execute("SELECT max(id) FROM pgml.models").fetchone()
    earlier = _candidates(tflow, first)
    assert earlier and all(c[4] for c in earlier) and sum(bool(c[3]) for c in earlier) == 1

    # unchanged rows: the recorded choice is taken, no candidate is trained (the challenger
    # is the only model made), and the scores are the earlier ones
    model, detail, before = _retrain(tflow)
    assert f"reused model {first}'s choice" in detail
    assert model == last_id + 1
    reused = _candidates(tflow, model)
    assert [c[:5] for c in reused] == [c[:5] for c in earlier]
    assert all(c[5] == 0 for c in reused)

    # champion and challenger were scored in one read: the champion's score is what
    # scoring it alone gives, and the baseline is the per-client view's
    champion = before["model_id"]
    with tflow.connect() as conn:
        (rows,) = conn.execute(f"SELECT count(*) FROM pgml_flow_training.{PROJECT}").fetchone()
        alone, held_out = holdout.score(conn, spec, 1, int(champion), rows)
        assert before[spec.key_metric] == pytest.approx(alone)
        assert before["holdout_rows"] == held_out
        stored, view = conn.execute(
            "SELECT (SELECT target_mean FROM ml_model_baselines WHERE client_id = 1 AND "
            f"model_id = %s), (SELECT avg(story_points) FROM pgml_flow_training.{PROJECT})",
            (model,)).fetchone()
        assert stored == pytest.approx(view)

        # one row the candidates fit on changes: the choice is made again
        conn.execute("UPDATE issues SET title = title || ' (edited)' WHERE client_id = 1 AND "
                     "issue_id = (SELECT entity_id FROM pgml_flow.complexity_training "
                     "WHERE client_id = 1 ORDER BY created LIMIT 1)")
        conn.commit()
    model, detail, _ = _retrain(tflow)
    assert "reused" not in detail
    again = _candidates(tflow, model)
    assert len(again) == len(earlier) and again[0][4] != earlier[0][4]
    assert all(c[5] > 0 for c in again)
