"""Model choice by validation, per client: which of a spec's candidates a client gets.

A spec may list ``candidates`` (``[[models.NAME.candidates]]``): alternatives to its own
``algorithm``, ``hyperparams`` and ``preprocess``. What suits one team's story points does
not suit another's, and the only honest judge of a choice is data the choice was not made
on, so a client's rows, in the spec's split order, are cut in three::

    | fit: the candidates learn here | validation: they are judged here | held out |

The held-out rows are the spec's ``test_size`` (the newest rows), on which champion and
challenger are compared (``pgml_flow.holdout``); the validation slice is the
``validation_size`` share (or row count) of the rows before them. :func:`select` trains
each candidate with ``pgml.train`` on the fit and validation rows (``test_sampling =>
'last'``: the validation slice is its test set, so the key metric pgml.train stores is the
candidate's score on it), keeps the one with the best key metric (the first on a tie: list
the simplest first), and deletes the candidates' models. The chosen one is then trained,
like a spec without candidates, on all the rows before the held-out ones and judged on
those (``pgml_flow.training.challenge``): the held-out rows decide deployment, never the
choice. :func:`record` keeps every candidate's score with the model it chose for
(``ml_model_candidates``), which ``pgml-flow models runs`` shows.

A choice is reused when nothing it depends on changed: :func:`select` digests the fit and
validation rows (in split order) with the candidates as they are trained (``rows_key``);
when the project's latest recorded choice has the same key, the candidates would be
trained with the same seeds on the same rows and score the same, so their recorded scores
are taken instead of training them again (``Selection.reused``, said in the event). A
forced retrain of a client whose rows did not change, or a retrain due to staleness alone,
then trains one model instead of one per candidate and one; new rows change the key.

A candidate's keys are merged onto the spec's: ``preprocess`` column by column,
``hyperparams`` key by key when it keeps the spec's algorithm (a candidate naming another
algorithm starts from no hyperparams), so ``{ hyperparams = { max_depth = 3 } }`` is the
spec with deeper trees. The spec itself is not a candidate unless listed: a candidate
with only a name (``{ name = "as specified" }``) is the spec as it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgml_flow import holdout, sqlfiles
from pgml_flow.errors import ModelError, PgmlFlowError
from pgml_models.client import PgmlClient
from pgml_models.specs import ModelSpec, beats, metric_label

SOURCE = "selection"


@dataclass(frozen=True)
class Scored:
    """One candidate, as the spec it makes, and how it did on the validation slice."""

    index: int
    label: str
    spec: ModelSpec
    #: the key metric on the validation slice; None: it failed or could not be scored
    value: float | None
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class Selection:
    """The candidates of one client's training, scored, and the one chosen."""

    candidates: tuple[Scored, ...]
    chosen: int
    fit_rows: int
    validation_rows: int
    #: digest of the rows and candidates (see the module docstring); None: not computed
    rows_key: str | None = None
    #: the model whose recorded choice, made with the same rows_key, was reused
    reused: int | None = None

    @property
    def winner(self) -> Scored:
        return self.candidates[self.chosen]

    def describe(self) -> str:
        """``chose xgboost depth 3 (mae 1.234 on 120 validation rows; 4 candidates)``."""
        w = self.winner
        metric = metric_label(w.spec.key_metric)
        reused = (f"; reused model {self.reused}'s choice: same rows and candidates"
                  if self.reused is not None else "")
        return (f"chose {w.label} ({metric} {_num(w.value)} on {self.validation_rows} "
                f"validation rows; {len(self.candidates)} candidates{reused})")


def candidate_spec(spec: ModelSpec, candidate: dict[str, Any]) -> ModelSpec:
    """The spec with one candidate's algorithm, hyperparams and preprocess merged in."""
    algorithm = str(candidate.get("algorithm", spec.algorithm))
    base = spec.hyperparams if algorithm == spec.algorithm else {}
    return dataclasses.replace(
        spec, algorithm=algorithm,
        hyperparams={**base, **dict(candidate.get("hyperparams", {}))},
        preprocess={**spec.preprocess, **dict(candidate.get("preprocess", {}))},
        candidates=(),
    )


def label(spec: ModelSpec, candidate: dict[str, Any]) -> str:
    """A candidate's name, or what it changes: ``xgboost max_depth=3 title=tfidf``."""
    if candidate.get("name"):
        return str(candidate["name"])
    parts = [str(candidate.get("algorithm", spec.algorithm))]
    parts += [f"{k}={_short(v)}" for k, v in dict(candidate.get("hyperparams", {})).items()]
    for column, rule in dict(candidate.get("preprocess", {})).items():
        value = rule.get("text") or rule.get("encode") if isinstance(rule, dict) else rule
        parts.append(f"{column}={_short(value)}")
    return " ".join(parts)


def slices(spec: ModelSpec, rows: int) -> tuple[int, int]:
    """(fit rows, validation rows) of ``rows`` training rows: the validation slice is the
    ``validation_size`` share (or count) of the rows before the held-out ones."""
    before = rows - holdout.test_rows(rows, spec.test_size)
    size = spec.validation_size
    validation = math.ceil(before * size) if size <= 1 else int(size)
    if before < 4 or validation < 2 or before - validation < 2:
        raise ModelError(
            f"{spec.name}: {rows} rows leave {before} before the held-out ones, too few for "
            f"a validation slice of {validation} (validation_size {size:g}) and rows to fit "
            "on; lower validation_size, or raise min_training_rows so that such clients "
            "are skipped")
    return before - validation, validation


def select(conn: psycopg.Connection, spec: ModelSpec, client_id: int, rows: int,
           table: sql.Identifier) -> Selection | None:
    """Train and judge each candidate of ``spec`` for one client (see the module
    docstring); None when the spec has none. ``table``: the client's training rows
    (:func:`pgml_flow.holdout.materialize`). The caller holds the transaction.

    Raises :class:`ModelError` when no candidate could be scored.
    """
    if not spec.candidates:
        return None
    project = spec.project(client_id)
    fit, validation = slices(spec, rows)
    view = sql.Identifier(f"selection_{project}")
    before = sql.Literal(fit + validation)

    def run(name: str, **parts: sql.Composable) -> psycopg.Cursor[Any]:
        return conn.execute(sql.SQL(sqlfiles.query(name, SOURCE)).format(**parts))

    run("drop_selection_view", view=view)
    run("create_selection_view", view=view, table=table, rows=before,
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in (*spec.features, spec.target)))
    digest = run("selection_rows_digest", table=table, rows=before).fetchone()
    key = rows_key(spec, str(digest[0]) if digest else "", fit, validation)
    chosen = (_reuse(conn, spec, client_id, key, fit, validation)
              or _train_candidates(conn, spec, client_id, key, fit, validation))
    # (on an error, the caller's transaction rolls it back with everything else)
    run("drop_selection_view", view=view)
    return chosen


def rows_key(spec: ModelSpec, rows_digest: str, fit: int, validation: int) -> str:
    """The digest of what a choice depends on: the rows (``rows_digest``, md5 of them in
    order), the slices, and each candidate as trained (task, target, key metric,
    algorithm, hyperparams, preprocess, seed)."""
    candidates = [{"algorithm": v.algorithm, "hyperparams": v.hyperparams,
                   "preprocess": v.preprocess}
                  for v in (candidate_spec(spec, c) for c in spec.candidates)]
    text = json.dumps({"rows": rows_digest, "fit": fit, "validation": validation,
                       "task": spec.task, "target": spec.target, "metric": spec.key_metric,
                       "seed": spec.seed, "candidates": candidates},
                      sort_keys=True, default=str)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _reuse(conn: psycopg.Connection, spec: ModelSpec, client_id: int, key: str, fit: int,
           validation: int) -> Selection | None:
    """The project's latest choice with this ``key``, as a Selection; None: there is none
    (or its candidates are not the spec's any more)."""
    found = conn.execute(sqlfiles.query("reusable_selection", SOURCE), {
        "client_id": client_id, "project": spec.project(client_id), "key": key}).fetchall()
    if ([int(r[0]) for r in found] != list(range(len(spec.candidates)))
            or sum(bool(r[4]) for r in found) != 1):
        return None
    scored = tuple(Scored(int(index), str(name), candidate_spec(spec, spec.candidates[index]),
                          None if value is None else float(value), 0.0, error)
                   for index, name, value, error, _, _ in found)
    chosen = next(int(r[0]) for r in found if r[4])
    return Selection(scored, chosen, fit, validation, key, int(found[0][5]))


def _train_candidates(conn: psycopg.Connection, spec: ModelSpec, client_id: int, key: str,
                      fit: int, validation: int) -> Selection:
    """Train and score every candidate on the selection view (see :func:`select`)."""
    project = spec.project(client_id)
    relation = conn.execute(sqlfiles.query("selection_view_name", SOURCE),
                            {"view": f"selection_{project}"}).fetchone()
    assert relation is not None
    pgml = PgmlClient(conn)
    scored: list[Scored] = []
    for index, candidate in enumerate(spec.candidates):
        variant = candidate_spec(spec, candidate)
        started = time.perf_counter()
        value: float | None = None
        error = None
        try:
            with conn.transaction():
                pgml.train(project, task=spec.task, relation=str(relation[0]),
                           y_column=spec.target, algorithm=variant.algorithm,
                           hyperparams=variant.hyperparams_with_seed(),
                           test_size=float(validation), test_sampling="last",
                           preprocess=variant.preprocess, automatic_deploy=False)
                model = pgml.models(project)[-1]
                value = model.metric(spec.key_metric)
                pgml.delete_model(model.id)
        except PgmlFlowError as exc:
            error = str(exc).strip().splitlines()[0]
        if value is not None and not math.isfinite(value):
            value = None
        scored.append(Scored(index, label(spec, candidate), variant, value,
                             time.perf_counter() - started, error))
    best: Scored | None = None
    for s in scored:
        if s.value is not None and (best is None or best.value is None
                                    or beats(spec.key_metric, s.value, best.value)):
            best = s
    if best is None:
        first = next((s.error for s in scored if s.error), "no candidate had a key metric")
        raise ModelError(f"{spec.name}: none of the {len(scored)} candidates could be "
                         f"trained and scored on the validation slice; first error: {first}")
    return Selection(tuple(scored), best.index, fit, validation, key)


def record(conn: psycopg.Connection, spec: ModelSpec, client_id: int, model_id: int,
           selection: Selection) -> None:
    """Keep every candidate's score with the model it chose for (``ml_model_candidates``)."""
    for s in selection.candidates:
        conn.execute(sqlfiles.query("insert_candidate", SOURCE), {
            "client_id": client_id, "model_id": model_id, "candidate": s.index,
            "model_name": spec.name, "project": spec.project(client_id), "label": s.label,
            "algorithm": s.spec.algorithm, "hyperparams": Jsonb(s.spec.hyperparams),
            "preprocess": Jsonb(s.spec.preprocess), "key_metric": spec.key_metric,
            "validation_value": s.value, "fit_rows": selection.fit_rows,
            "validation_rows": selection.validation_rows, "seconds": s.seconds,
            "chosen": s.index == selection.chosen, "error": s.error,
            "rows_key": selection.rows_key,
        })


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
