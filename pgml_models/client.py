"""A typed client for the pgml SQL API.

Thin by design: each method is one SQL call of the API (``pgml.train``,
``pgml.predict``, ``pgml.deploy``) or one read of its tables, so anything the client
does can be done from psql too.  Database errors from the API become
:class:`pgml_flow.errors.ModelError` with the server's message and hint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.database import connection_lost, server_message
from pgml_flow.errors import ModelError


@dataclass(frozen=True)
class TrainOutcome:
    project: str
    task: str
    algorithm: str
    deployed: bool


@dataclass(frozen=True)
class Deployment:
    project: str
    strategy: str
    algorithm: str


@dataclass(frozen=True)
class ModelInfo:
    id: int
    project: str
    task: str
    algorithm: str
    status: str
    metrics: dict[str, Any]
    hyperparams: dict[str, Any]
    num_features: int
    created_at: dt.datetime
    deployed: bool

    def key_metric(self) -> float | None:
        """The task's default key metric (r2, f1, ...) as stored at training."""
        name = KEY_METRICS.get(self.task)
        return self.metric(name) if name else None

    def metric(self, name: str) -> float | None:
        """One metric as stored at training (on its test rows), e.g. mean_absolute_error."""
        value = self.metrics.get(name)
        return None if value is None else float(value)


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    task: str
    created_at: dt.datetime
    models: int
    deployed_model_id: int | None


KEY_METRICS = {
    "regression": "r2",
    "classification": "f1",
    "clustering": "silhouette",
    "decomposition": "cumulative_explained_variance",
}


class PgmlClient:
    """The pgml API on one psycopg connection.

    Each call runs in its own transaction, or in a savepoint when the caller has one
    open, so a failed call never poisons the caller's transaction.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """One call = one transaction (a savepoint inside the caller's), errors translated."""
        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as exc:
            if connection_lost(exc) or self.conn.broken:
                raise  # the connection (or the server) is gone: not the call's fault
            # the call's own failure, OperationalErrors included: a model that cannot be
            # loaded (55000), a statement timeout (57014), a full disk (53100)
            raise ModelError(self._explain(exc)) from exc

    def _explain(self, exc: psycopg.Error) -> str:
        """The server's message and hint; for a misspelt enum value (an --algorithm typo)
        the valid values, and the closest one."""
        text = _message(exc)
        found = re.match(r'invalid input value for enum ([\w.]+): "(.*)"',
                         exc.diag.message_primary or "")
        if isinstance(exc, psycopg.errors.InvalidTextRepresentation) and found:
            with contextlib.suppress(psycopg.Error), self.conn.transaction():
                labels = [str(r[0]) for r in self.conn.execute(
                    "SELECT enumlabel FROM pg_enum WHERE enumtypid = to_regtype(%s) "
                    "ORDER BY enumsortorder", (found[1],))]
                if labels:
                    close = difflib.get_close_matches(found[2], labels, n=1)
                    guess = f"did you mean {close[0]!r}? " if close else ""
                    text = (f"{found[2]!r} is not a {found[1]} value; {guess}valid: "
                            f"{', '.join(labels)}")
        return text

    def _rows(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._errors(), self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sqlfiles.query(name), params).fetchall()

    def fetch(self, statement: sql.Composed, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of one query over the API (e.g. ``pgml.predict`` of many rows), in a
        savepoint of its own, errors translated like every call."""
        with self._errors():
            return self.conn.execute(statement, params).fetchall()

    def _value(self, statement: sql.SQL | sql.Composed, params: Sequence[Any]) -> Any:
        with self._errors():
            row = self.conn.execute(statement, params).fetchone()
        return row[0] if row else None

    # -- facts ------------------------------------------------------------------------
    def backend(self) -> str:
        """``pgml-flow`` (our implementation) or ``postgresml`` (the real extension)."""
        rows = self._rows("pgml_backend", {})
        return str(rows[0]["value"]) if rows else "postgresml"

    def version(self) -> str:
        return str(self._value(sql.SQL("SELECT pgml.version()"), ()))

    # -- training ---------------------------------------------------------------------
    def train(
        self,
        project: str,
        *,
        task: str | None = None,
        relation: str | None = None,
        y_column: str | Sequence[str] | None = None,
        algorithm: str = "linear",
        hyperparams: dict[str, Any] | None = None,
        search: str | None = None,
        search_params: dict[str, Any] | None = None,
        search_args: dict[str, Any] | None = None,
        test_size: float = 0.25,
        test_sampling: str = "stratified",
        automatic_deploy: bool = True,
        preprocess: dict[str, Any] | None = None,
    ) -> TrainOutcome:
        """``pgml.train`` (or ``train_joint`` when ``y_column`` is a list)."""
        joint = y_column is not None and not isinstance(y_column, str)
        params = {
            "project": project, "task": task, "relation": relation,
            "y_column": list(y_column) if joint and y_column is not None else y_column,
            "algorithm": algorithm, "hyperparams": json.dumps(hyperparams or {}),
            "search": search, "search_params": json.dumps(search_params or {}),
            "search_args": json.dumps(search_args or {}), "test_size": test_size,
            "test_sampling": test_sampling, "automatic_deploy": automatic_deploy,
            "preprocess": json.dumps(preprocess or {}),
        }
        row = self._rows("pgml_train_joint" if joint else "pgml_train", params)[0]
        return TrainOutcome(**row)

    # -- prediction -------------------------------------------------------------------
    def predict(self, project_or_model: str | int, features: Sequence[float]) -> float:
        return float(self._call("predict", project_or_model, features))

    def predict_proba(self, project_or_model: str | int, features: Sequence[float]) -> list[float]:
        return [float(v) for v in self._call("predict_proba", project_or_model, features)]

    def predict_joint(self, project_or_model: str | int, features: Sequence[float]) -> list[float]:
        return [float(v) for v in self._call("predict_joint", project_or_model, features)]

    def predict_batch(self, model_id: int, rows: Sequence[Sequence[float]]) -> list[float]:
        flat = [float(v) for row in rows for v in row]
        return [float(v) for v in self._call("predict_batch", int(model_id), flat)]

    def _call(self, function: str, key: str | int, features: Sequence[float]) -> Any:
        key_type = "text" if isinstance(key, str) else "bigint"
        statement = sql.SQL("SELECT pgml.{}(%s::{}, %s::real[])").format(
            sql.Identifier(function), sql.SQL(key_type)
        )
        return self._value(statement, (key, list(features)))

    # -- deployment -------------------------------------------------------------------
    def deploy(self, project: str, strategy: str = "best_score",
               algorithm: str | None = None) -> Deployment:
        row = self._rows("pgml_deploy_strategy",
                         {"project": project, "strategy": strategy, "algorithm": algorithm})[0]
        return Deployment(**row)

    def deploy_model(self, model_id: int) -> Deployment:
        return Deployment(**self._rows("pgml_deploy_model", {"model_id": model_id})[0])

    # -- catalog ----------------------------------------------------------------------
    def models(self, project: str | None = None) -> list[ModelInfo]:
        rows = self._rows("pgml_models", {"project": project})
        return [
            ModelInfo(
                id=r["id"], project=r["project"], task=r["task"], algorithm=r["algorithm"],
                status=r["status"], metrics=r["metrics"] or {}, hyperparams=r["hyperparams"] or {},
                num_features=r["num_features"], created_at=r["created_at"],
                deployed=bool(r["deployed"]),
            )
            for r in rows
        ]

    def deployed_model(self, project: str) -> ModelInfo | None:
        return next((m for m in self.models(project) if m.deployed), None)

    def projects(self) -> list[ProjectInfo]:
        return [ProjectInfo(**r) for r in self._rows("pgml_projects", {})]

    # -- cleanup ----------------------------------------------------------------------
    def delete_model(self, model_id: int, *, force: bool = False) -> None:
        if self.backend() == "pgml-flow":
            self._value(sql.SQL("SELECT pgml.delete_model(%s, %s)"), (model_id, force))
        elif not self._rows("pgml_delete_model_sql", {"model_id": model_id}):
            raise ModelError(f"model {model_id} does not exist")

    def delete_project(self, project: str) -> None:
        if self.backend() == "pgml-flow":
            self._value(sql.SQL("SELECT pgml.delete_project(%s)"), (project,))
        elif not self._rows("pgml_delete_project_sql", {"project": project}):
            raise ModelError(f"project {project!r} does not exist")


def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = server_message(diag.message_primary or str(exc))
    if diag.message_hint:
        text += f" ({diag.message_hint})"
    return text
