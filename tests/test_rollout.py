"""The kill switch, the rollout to a share of clients, and online A/B tests (issue 14).

On copies of the session's trained database: the BI side always reads as a client's BI
login, over one connection kept open while the operator flips switches.
"""

from __future__ import annotations

import psycopg
import pytest

from pgml_flow.abtest import decide
from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError
from pgml_flow.rollout import bucket
from pgml_flow.training import HOLDOUT_SAMPLING
from pgml_models.client import PgmlClient

POINTS = ("SELECT count(*), count(predicted_story_points), count(model_id), "
          "min(serving_state), max(serving_state), max(serving_reason) "
          "FROM analytics.issue_story_points")
REWORK = ("SELECT count(*), count(rework_probability), count(rework_risk), "
          "min(serving_state), max(serving_reason) FROM analytics.pull_request_rework_risk")


def test_kill_switch_rollout_and_ab_tests(tflow: PgmlFlow) -> None:
    """One copy of the trained database and one BI connection of client 1, kept open
    throughout (its backend loads each model once): the sections below share them."""
    flow = tflow
    flow.grant_bi_access([1])
    with flow.bi_session(1) as bi:
        _kill_switch(flow, bi)
        _ab_tests(flow, bi)


def _other(flow: PgmlFlow, client_id: int, model: str) -> tuple[str, str | None]:
    with flow.connect() as conn:
        row = conn.execute("SELECT state, reason FROM pgml_flow.rollout_state(%s, %s)",
                           (client_id, model)).fetchone()
    assert row is not None
    return row[0], row[1]


def _kill_switch(flow: PgmlFlow, bi: psycopg.Connection) -> None:
    """Flipping a switch changes the next query of an already open BI connection."""
    n, scored, with_model, low, high, why = bi.execute(POINTS).fetchone()
    assert n > 0 and scored == with_model == n and low == high == "enabled" and why is None

    # a BI login may not flip anything
    for statement in ("SELECT pgml_flow.set_rollout('disabled')",
                      "INSERT INTO public.ml_rollout_global (model_name, state) "
                      "VALUES ('*', 'disabled')",
                      "DELETE FROM public.ml_rollout",
                      "UPDATE public.ml_abtests SET status = 'promoted'"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute(statement)

    # one client's model: its next query has NULL predictions and says why; the other
    # client and the other models are untouched
    flow.set_rollout("disabled", model="complexity", client_id=1,
                     reason="estimates off by 3x")
    assert bi.execute(POINTS).fetchone() == (
        n, 0, 0, "disabled", "disabled",
        "client switch of complexity: estimates off by 3x")
    assert _other(flow, 2, "complexity") == ("enabled", None)
    rework = bi.execute(REWORK).fetchone()
    assert rework[0] > 0 and rework[1] == rework[2] == rework[0] and rework[3] == "enabled"

    # shadow: scored (and logged) but not shown
    flow.set_rollout("shadow", model="complexity", client_id=1, reason="watching")
    assert bi.execute(POINTS).fetchone()[1:5] == (0, 0, "shadow", "shadow")

    # the global switch wins over everything, and clears back
    flow.set_rollout("disabled", reason="incident 42")
    rework = bi.execute(REWORK).fetchone()
    assert rework[1:] == (0, 0, "disabled", "global switch (every model): incident 42")
    assert _other(flow, 2, "complexity")[0] == "disabled"
    flow.set_rollout("clear")
    flow.set_rollout("clear", model="complexity", client_id=1)
    assert bi.execute(POINTS).fetchone() == (n, n, n, "enabled", "enabled", None)

    # rollout to a share of clients: deterministic per client and model, the same
    # bucket in SQL and in Python
    flow.set_rollout("enabled", model="rework", percent=50)
    states = flow.rollout_status(model="rework")["states"]
    assert {s["client_id"]: s["state"] for s in states} == {
        c: "enabled" if bucket(c, "rework") < 50 else "disabled" for c in (1, 2)}
    inside = bi.execute(REWORK).fetchone()
    assert (inside[3] == "enabled") == (bucket(1, "rework") < 50)
    with flow.connect() as conn:
        sql_buckets = conn.execute(
            "SELECT array_agg(pgml_flow.rollout_bucket(g, 'rework') ORDER BY g) "
            "FROM generate_series(1, 1000) g").fetchone()[0]
    assert sql_buckets == [bucket(c, "rework") for c in range(1, 1001)]
    assert 430 < sum(b < 50 for b in sql_buckets) < 570

    with pytest.raises(ConfigurationError, match="unknown model 'nope'"):
        flow.set_rollout("disabled", model="nope")
    with pytest.raises(ConfigurationError, match="percentage applies to one model"):
        flow.set_rollout("enabled", model="rework", client_id=1, percent=10)


def _reopen(flow: PgmlFlow, ids: list[int], is_open: bool) -> None:
    """Items open again (scored by BI reads), or done with their outcome (story points)."""
    with flow.connect() as conn:
        conn.execute("UPDATE issues SET status_category = %s WHERE client_id = 1 "
                     "AND issue_id = ANY(%s)", ("in_progress" if is_open else "done", ids))
        conn.commit()


def _status(flow: PgmlFlow) -> dict:
    return flow.abtest_status([1], "complexity")[0]


def _ab_tests(flow: PgmlFlow, bi: psycopg.Connection) -> None:
    """A genuinely better challenger is promoted after enough outcomes, a worse one is not,
    too few outcomes keep the test running."""
    spec = flow.model_specs()["complexity"]
    project = spec.project(1)
    with flow.connect() as conn:
        pgml = PgmlClient(conn)
        good = pgml.deployed_model(project)
        assert good is not None
        # a genuinely worse model of the same project: one boosting round
        pgml.train(project, task="regression", relation=f"pgml_flow_training.{project}",
                   y_column=spec.target, algorithm="xgboost",
                   hyperparams=dict(spec.hyperparams_with_seed(), n_estimators=1),
                   test_size=spec.test_size, test_sampling=HOLDOUT_SAMPLING,
                   preprocess=spec.preprocess, automatic_deploy=False)
        weak = pgml.models(project)[-1].id
        # items whose outcome arrives during the tests: the newest estimated issues (held
        # out from both models' training), opened again
        items = [r[0] for r in conn.execute(
            "SELECT entity_id FROM pgml_flow.complexity_features WHERE client_id = 1 "
            "AND is_training AND NOT is_open ORDER BY created DESC LIMIT 80")]
        conn.commit()
    read = ("SELECT issue_id, model_id, serving_state FROM analytics.issue_story_points "
            "WHERE issue_id = ANY(%s) ORDER BY issue_id")

    # 1. shadow, worse challenger: BI sees the champion; too few outcomes continue; then kept
    flow.abtest_start("complexity", 1, weak, mode="shadow", min_pairs=30)
    assert _status(flow)["decision"] == "continue"
    _reopen(flow, items, True)
    seen = bi.execute(read, (items,)).fetchall()
    assert len(seen) == 80 and {(m, s) for _, m, s in seen} == {(good.id, "enabled")}
    _reopen(flow, items[:10], False)
    first = _status(flow)
    assert (first["decision"], first["pairs"], first["status"]) == ("continue", 10, "running")
    _reopen(flow, items[10:], False)
    worse = _status(flow)
    assert (worse["decision"], worse["status"], worse["pairs"]) == ("keep", "kept_champion", 80)
    assert worse["verdict"]["p_worse"] < 0.05, worse["detail"]
    with flow.connect() as conn:
        assert PgmlClient(conn).deployed_model(project).id == good.id

    # 2. split, better challenger against the weak model as champion: about half the items
    # are served the challenger, the same ones at every read; then promoted
    flow.deploy("complexity", 1, weak)
    flow.abtest_start("complexity", 1, good.id, mode="split", split_percent=50, min_pairs=30)
    _reopen(flow, items, True)
    arms = bi.execute(read, (items,)).fetchall()
    assert bi.execute(read, (items,)).fetchall() == arms
    served = {i: m for i, m, _ in arms}
    assert set(served.values()) == {good.id, weak}
    assert all((served[i] == good.id) == (bucket(1, f"complexity|{i}") < 50) for i in items)
    _reopen(flow, items, False)
    better = _status(flow)
    assert (better["decision"], better["status"]) == ("promote", "promoted"), better["detail"]
    with flow.connect() as conn:
        assert PgmlClient(conn).deployed_model(project).id == good.id


def test_paired_decision_rule_for_classification() -> None:
    """McNemar on the discordant items: 20 fixed by the challenger and 2 broken beat the
    champion; the mirror image keeps it; below min_pairs it continues."""
    fixed = [(0.0, 1.0, 1.0)] * 20 + [(1.0, 0.0, 1.0)] * 2 + [(1.0, 1.0, 1.0)] * 20
    def rule(pairs: list[tuple[float, float, float]], max_pairs: int = 1000) -> str:
        return decide("classification", pairs, min_pairs=30, max_pairs=max_pairs,
                      alpha=0.05).decision

    assert rule(fixed) == "promote"
    assert rule([(b, a, y) for a, b, y in fixed]) == "keep"
    assert rule(fixed[:25]) == "continue"
    assert rule([(1.0, 1.0, 1.0)] * 40, max_pairs=40) == "keep"
