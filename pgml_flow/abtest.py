"""Online A/B tests of a challenger against a client's deployed model (``pgml-flow abtest``).

A test attaches a challenger (a model of the client's project that is not deployed) to the
champion: in ``shadow`` mode BI keeps seeing the champion while the challenger scores the
same items; in ``split`` mode the items whose hash of (client, model, item) falls under
``split_percent`` are served the challenger.  Either way both arms' predictions of every
item are logged (``pgml_flow.abtest_serve``), and once an item's outcome arrives (the
issue is done with its actual story points, the epic completed, the pull request merged)
the two predictions and the outcome form a pair.

Why a paired test: both arms predicted the same items, so comparing them item by item
removes the items' own difficulty from the comparison (far more power than comparing two
means).  Regression: the Wilcoxon signed-rank test on the differences of absolute errors
(no normality assumed; story points and lead times have heavy tails).  Classification:
McNemar's exact test on the items where exactly one arm's class was right.  The rule,
each side one-sided at ``alpha`` (docs/operations.md): fewer than ``min_pairs`` pairs:
continue; the challenger significantly better: promote (deployed, recorded as a
``deployed`` event); significantly worse: keep the champion; neither after ``max_pairs``:
keep the champion; otherwise continue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.errors import ConfigurationError, ModelError
from pgml_models.client import PgmlClient
from pgml_models.specs import ModelSpec

SOURCE = "rollout"
MODES = ("shadow", "split")


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


@dataclass(frozen=True)
class Verdict:
    """What the paired test says now: ``promote``, ``keep`` or ``continue``."""

    decision: str
    pairs: int
    test: str
    p_better: float | None
    p_worse: float | None
    champion_error: float | None
    challenger_error: float | None
    detail: str


def decide(task: str, pairs: Sequence[tuple[float | None, float | None, float]], *,
           min_pairs: int, max_pairs: int, alpha: float) -> Verdict:
    """The decision rule on (champion prediction, challenger prediction, outcome) pairs.

    Pairs where either arm gave no prediction are left out.  Regression: Wilcoxon
    signed-rank on |champion error| - |challenger error| (errors: mean absolute error);
    classification: exact McNemar on the discordant items (errors: error rate).
    """
    from scipy import stats

    usable = [(a, b, y) for a, b, y in pairs
              if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    n = len(usable)
    if task == "classification":
        name = "McNemar exact (discordant items)"
        champ_wrong = [round(a) != round(y) for a, _, y in usable]
        chal_wrong = [round(b) != round(y) for _, b, y in usable]
        better = sum(1 for c, d in zip(champ_wrong, chal_wrong, strict=True) if c and not d)
        worse = sum(1 for c, d in zip(champ_wrong, chal_wrong, strict=True) if d and not c)
        errors = (sum(champ_wrong) / n, sum(chal_wrong) / n) if n else (None, None)
        label = "error rate"
        if better + worse == 0:
            p_better = p_worse = 1.0
        else:
            p_better = float(stats.binomtest(better, better + worse, 0.5,
                                             alternative="greater").pvalue)
            p_worse = float(stats.binomtest(worse, better + worse, 0.5,
                                            alternative="greater").pvalue)
    else:
        name = "Wilcoxon signed-rank (absolute errors)"
        label = "mae"
        diffs = [abs(a - y) - abs(b - y) for a, b, y in usable]
        errors = ((sum(abs(a - y) for a, _, y in usable) / n,
                   sum(abs(b - y) for _, b, y in usable) / n) if n else (None, None))
        nonzero = [d for d in diffs if d != 0]
        if len(nonzero) < 2:
            p_better = p_worse = 1.0
        else:
            p_better = float(stats.wilcoxon(nonzero, alternative="greater").pvalue)
            p_worse = float(stats.wilcoxon(nonzero, alternative="less").pvalue)
    champion_error, challenger_error = errors
    facts = (f"{n} pairs; {label} champion {_fmt(champion_error)}, challenger "
             f"{_fmt(challenger_error)}; {name}: p(better) {p_better:.3g}, "
             f"p(worse) {p_worse:.3g}, alpha {alpha:g}")
    if n < min_pairs:
        decision, why = "continue", f"fewer than min_pairs {min_pairs} outcomes"
    elif p_better < alpha:
        decision, why = "promote", "the challenger is significantly better"
    elif p_worse < alpha:
        decision, why = "keep", "the challenger is significantly worse"
    elif n >= max_pairs:
        decision, why = "keep", f"no significant improvement after max_pairs {max_pairs}"
    else:
        decision, why = "continue", "no significant difference yet"
    return Verdict(decision, n, name, p_better, p_worse, champion_error, challenger_error,
                   f"{why}: {facts}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def start(conn: psycopg.Connection, spec: ModelSpec, client_id: int, challenger: int, *,
          mode: str = "shadow", split_percent: int = 50, min_pairs: int = 30,
          max_pairs: int = 1000, alpha: float = 0.05) -> dict[str, Any]:
    """Attach ``challenger`` to the client's deployed model; committed.  Returns the test."""
    if mode not in MODES:
        raise ConfigurationError(f"unknown A/B test mode {mode!r}; one of {', '.join(MODES)}")
    if not 0 <= split_percent <= 100:
        raise ConfigurationError(f"--split must be 0..100 (% of items), got {split_percent}")
    if not 0 < alpha < 0.5:
        raise ConfigurationError(f"--alpha must be in (0, 0.5), got {alpha:g}")
    if min_pairs < 5 or max_pairs < min_pairs:
        raise ConfigurationError(f"need 5 <= --min-pairs <= --max-pairs, got {min_pairs} and "
                                 f"{max_pairs}")
    if not spec.feature_view:
        raise ConfigurationError(f"model {spec.name} has no feature_view, so the BI surface "
                                 "does not serve it: nothing to test online")
    project = spec.project(client_id)
    pgml = PgmlClient(conn)
    champion = pgml.deployed_model(project)
    if champion is None:
        raise ModelError(f"{project} has no deployed model to test against; train it first "
                         f"(`pgml-flow train --model {spec.name} --client {client_id}`)")
    if challenger == champion.id:
        raise ModelError(f"model {challenger} is the deployed champion of {project}; pick "
                         "another of its models (pgml.models, `pgml-flow events`)")
    if challenger not in {m.id for m in pgml.models(project)}:
        raise ModelError(f"model {challenger} is not a model of {project}; list them with "
                         f"`pgml-flow events --client {client_id}` or pgml.models")
    try:
        row = conn.execute(_query("abtest_insert"), {
            "client_id": client_id, "model": spec.name, "champion": champion.id,
            "challenger": challenger, "mode": mode,
            "split": split_percent if mode == "split" else 0, "min_pairs": min_pairs,
            "max_pairs": max_pairs, "alpha": alpha}).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        conn.rollback()
        raise ModelError(f"{project} already has a running A/B test; see `pgml-flow abtest "
                         f"status --client {client_id}` and stop it first") from exc
    conn.commit()
    assert row is not None
    return tests(conn, [client_id], spec.name, limit=1, running=True)[0] | {"id": row[0]}


def tests(conn: psycopg.Connection, client_ids: Sequence[int] | None = None,
          model: str | None = None, *, limit: int = 50,
          running: bool = False) -> list[dict[str, Any]]:
    """The tests (running ones first, then the newest finished)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("abtests"), {
            "client_ids": list(client_ids) if client_ids is not None else None,
            "model": model, "limit": limit, "running": running}).fetchall()


def evaluate(conn: psycopg.Connection, test: dict[str, Any]) -> Verdict:
    """The paired test of one test's pairs with a known outcome, now."""
    rows = conn.execute(_query("abtest_outcomes"),
                        {"client_id": test["client_id"], "id": test["id"]}).fetchall()
    return decide(str(test["task"]), [(r[0], r[1], float(r[2])) for r in rows],
                  min_pairs=int(test["min_pairs"]), max_pairs=int(test["max_pairs"]),
                  alpha=float(test["alpha"]))


def record(conn: psycopg.Connection, test: dict[str, Any], status: str, verdict: Verdict | None,
           detail: str) -> None:
    """Store the test's figures (and its end, unless ``running``); committed."""
    conn.execute(_query("abtest_update"), {
        "client_id": test["client_id"], "id": test["id"], "status": status,
        "pairs": verdict.pairs if verdict else test["pairs"],
        "p_value": verdict.p_better if verdict else test["p_value"], "detail": detail})
    conn.commit()


def review(conn: psycopg.Connection, specs: dict[str, ModelSpec], test: dict[str, Any], *,
           apply: bool = True) -> dict[str, Any]:
    """Evaluate one test and, with ``apply``, act on it: promote (deploy the challenger,
    recorded as a ``deployed`` event), keep the champion (the test ends) or continue.

    A test whose champion is no longer deployed (a retrain or an operator deployed another
    model) stops: its pairs no longer compare the model BI sees.  Returns the test's row
    with ``decision`` and ``verdict`` (the figures, as a dict).
    """
    from pgml_flow import retraining

    result = dict(test)
    if test["status"] != "running":
        return result | {"decision": test["status"], "verdict": None}
    spec = specs[str(test["model"])]
    project = spec.project(int(test["client_id"]))
    deployed = PgmlClient(conn).deployed_model(project)
    if deployed is None or deployed.id != test["champion_model_id"]:
        detail = (f"stopped: the champion model {test['champion_model_id']} is no longer "
                  f"deployed (model {deployed.id if deployed else '-'} is)")
        if apply:
            record(conn, test, "stopped", None, detail)
        return result | {"decision": "stop", "verdict": None, "detail": detail,
                         "status": "stopped" if apply else "running"}
    verdict = evaluate(conn, test)
    status = {"promote": "promoted", "keep": "kept_champion"}.get(verdict.decision, "running")
    if apply:
        if verdict.decision == "promote":
            retraining.deploy(conn, spec, int(test["client_id"]),
                              int(test["challenger_model_id"]))
        record(conn, test, status, verdict, verdict.detail)
    return result | {"decision": verdict.decision, "verdict": vars(verdict),
                     "detail": verdict.detail, "pairs": verdict.pairs,
                     "p_value": verdict.p_better, "status": status if apply else "running"}
