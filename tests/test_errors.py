"""Errors that name the problem: the CLI's exit codes and messages, and the pgml.* SQL errors
as a client (psycopg, a BI tool) sees them: a message, DETAIL, HINT and SQLSTATE, no Python
traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.database import check_url, translate_error
from pgml_flow.engine.errors import FeatureCountMismatch, InvalidHyperparams
from pgml_flow.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseUnreachable,
    ModelError,
)
from pgml_flow.server import boundary
from pgml_flow.server.api import UserError

ROOT = Path(__file__).resolve().parent.parent


# -- the plpython boundary, without a server -------------------------------------------------
class FakePlpy:
    """What sql_errors uses of PL/Python's plpy module."""

    class SPIError(Exception):
        pass

    class Error(Exception):
        pass

    def __init__(self) -> None:
        self.logged: list[tuple[str, str]] = []
        self.raised: dict[str, Any] = {}

    def debug(self, text: str) -> None:
        self.logged.append(("debug", text))

    def log(self, text: str) -> None:
        self.logged.append(("log", text))

    def error(self, message: str, **fields: Any) -> None:
        self.raised = {"message": message, **fields}
        raise self.Error(message)


def _call(exc: BaseException) -> FakePlpy:
    plpy = FakePlpy()

    @boundary.sql_errors
    def entry(plpy: Any) -> None:
        raise exc

    with pytest.raises((FakePlpy.Error, FakePlpy.SPIError)):
        entry(plpy)
    return plpy


def test_a_pgml_flow_error_becomes_message_detail_hint_and_sqlstate() -> None:
    plpy = _call(UserError("project 'x' does not exist", hint="list projects",
                           sqlstate="42704"))
    assert plpy.raised == {"message": "project 'x' does not exist", "hint": "list projects",
                           "detail": "The SQL call cannot be served as given.",
                           "sqlstate": "42704"}
    assert [level for level, _ in plpy.logged] == ["debug"]
    assert "Traceback" in plpy.logged[0][1]


def test_engine_errors_get_their_class_defaults() -> None:
    raised = _call(InvalidHyperparams("alpha must be positive")).raised
    assert raised["sqlstate"] == "22023"
    assert raised["detail"].startswith("The hyperparams")
    assert "docs/sql-api.md" in raised["hint"]
    raised = _call(FeatureCountMismatch("expected 4 features, got 3")).raised
    assert raised["sqlstate"] == "22023"
    assert raised["hint"] == FeatureCountMismatch.hint


def test_a_bug_is_an_internal_error_logged_with_its_traceback() -> None:
    plpy = _call(KeyError("weights"))
    assert plpy.raised["sqlstate"] == "XX000"
    assert plpy.raised["message"] == "pgml.entry failed: KeyError: 'weights'"
    assert "server log" in plpy.raised["hint"] and plpy.raised["detail"]
    assert [level for level, _ in plpy.logged] == ["log"]
    assert "raise exc" in plpy.logged[0][1]


def test_postgres_errors_pass_through_unchanged() -> None:
    error = FakePlpy.SPIError("canceling statement due to statement timeout")
    plpy = _call(error)
    assert plpy.raised == {} and plpy.logged == []


# -- the pgml.* SQL functions, as psycopg sees them --------------------------------------------
@pytest.fixture
def sql(db_url: str) -> Any:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE points AS SELECT g::real AS x, (2 * g - 3)::real AS y "
                     "FROM generate_series(1, 40) g")
        yield conn


def _error(conn: psycopg.Connection, statement: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(statement)
    return info.value


def _assert_clean(error: psycopg.Error) -> None:
    for text in (str(error), error.diag.message_primary or "", error.diag.context or ""):
        assert "Traceback" not in text
        assert "PL/Python" not in text
        assert "plpy." not in text and "spiexceptions." not in text


@pytest.mark.parametrize(("statement", "sqlstate", "message", "hint"), [
    ("SELECT * FROM pgml.train('p', 'regression', 'no_such_table', 'y')", "42P01",
     "relation 'no_such_table' does not exist", "search_path"),
    ("SELECT * FROM pgml.train('p', 'regression', 'points', 'nope')", "22023",
     "label column 'nope'", "docs/sql-api.md"),
    ("SELECT * FROM pgml.train('p', 'regressio', 'points', 'y')", "22P02",
     'invalid input value for enum pgml.task: "regressio"', "valid values: regression"),
    ("SELECT * FROM pgml.train('p', 'regression', 'points', 'y', "
     "hyperparams => '{\"no_such_param\": 1}')", "22023", "no_such_param", "docs/sql-api.md"),
    ("SELECT * FROM pgml.deploy('nope', 'best_score')", "42704",
     "project 'nope' does not exist", "pgml.projects"),
    ("SELECT * FROM pgml.deploy(123456)", "42704", "model 123456 does not exist",
     "pgml.trained_models"),
    ("SELECT pgml.delete_project('nope')", "42704", "project 'nope' does not exist",
     "pgml.projects"),
    ("SELECT * FROM pgml.snapshot('points', 'nope')", "42703", "column 'nope' is not in",
     "columns are"),
    ("SELECT * FROM pgml.load_dataset('nope')", "22023", "dataset 'nope' is not available",
     "toy sets"),
])
def test_sql_errors_have_message_detail_hint_and_no_traceback(
        sql: psycopg.Connection, statement: str, sqlstate: str, message: str,
        hint: str) -> None:
    error = _error(sql, statement)
    assert error.sqlstate == sqlstate, str(error)
    assert message in (error.diag.message_primary or "")
    assert hint in (error.diag.message_hint or "")
    if sqlstate != "22P02":  # PostgreSQL's own error (an enum input) has no DETAIL
        assert error.diag.message_detail
    _assert_clean(error)


def test_sql_errors_leave_the_session_usable(sql: psycopg.Connection) -> None:
    _error(sql, "SELECT * FROM pgml.deploy('nope', 'best_score')")
    rows = sql.execute("SELECT * FROM pgml.train('p', 'regression', 'points', 'y')").fetchall()
    assert rows == [("p", "regression", "linear", True)]
    assert sql.execute("SELECT project, strategy FROM pgml.deploy('p', 'most_recent')"
                       ).fetchall() == [("p", "most_recent")]


def test_prediction_errors_have_sqlstate_detail_and_hint(sql: psycopg.Connection) -> None:
    """The prediction path stays plpython3u (no subtransaction per row): its CONTEXT still
    shows PL/Python's frames (boundary module doc), but the rest is the same."""
    error = _error(sql, "SELECT pgml.predict('nope', ARRAY[1.0, 2.0])")
    assert error.sqlstate == "42704"
    assert "project 'nope' does not exist" in (error.diag.message_primary or "")
    assert error.diag.message_detail and error.diag.message_hint
    # a huge argument is quoted clipped: its head, how much was left out, and the tail
    error = _error(sql, "SELECT pgml.predict(repeat('x', 200000) || 'END', ARRAY[1.0])")
    message = error.diag.message_primary or ""
    assert len(message) < 1000 and "characters left out" in message, len(message)
    assert "project 'xxx" in message and "END' does not exist" in message


def test_clip_keeps_short_text_and_both_ends_of_long_text() -> None:
    assert boundary.clip("short") == "short"
    clipped = boundary.clip("a" * 1000 + "b" * 1000, limit=90)
    assert clipped == "a" * 60 + "…[1910 characters left out]…" + "b" * 30


# -- the CLI ---------------------------------------------------------------------------------
def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.app", *args], env=env, cwd=ROOT,
                          text=True, capture_output=True, timeout=120)


def _stderr(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "unexpected error" not in proc.stderr, proc.stderr
    return " ".join(proc.stderr.split())


@pytest.fixture
def env(flow: PgmlFlow, cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "200"}


@pytest.mark.parametrize(("url", "code", "message"), [
    ("not a url at all", 2, "is not a valid PostgreSQL URL"),
    ("postgresql://u:secret@localhost:notaport/db", 2, "'notaport', which is not a number"),
    ("postgresql://u@127.0.0.1:1/db", 4, "cannot connect to"),
])
def test_a_bad_or_unreachable_database_url(cli_env: dict[str, str], url: str, code: int,
                                           message: str) -> None:
    for args in (["status"], ["db", "upgrade"], ["pgml", "models"]):
        proc = _cli({**cli_env, "DATABASE_URL": url}, *args)
        assert proc.returncode == code, (args, proc.stderr)
        text = _stderr(proc)
        assert message in text and "secret" not in text


def test_check_url_accepts_what_libpq_accepts() -> None:
    for url in ("postgresql://u:p@h:5432/db", "postgresql:///db?host=/run/pg&port=5433",
                "host=h1,h2 port=5432,5433 dbname=db", ""):
        check_url(url)
    with pytest.raises(ConfigurationError, match="not a valid PostgreSQL URL"):
        check_url("postgresql://u@h:5432/db?sslmode")


def test_a_lost_connection_and_other_driver_errors_are_translated() -> None:
    lost = translate_error(psycopg.OperationalError("server closed the connection "
                                                    "unexpectedly"))
    assert isinstance(lost, DatabaseUnreachable) and "lost the connection" in str(lost)
    assert lost.exit_code == 4

    class Wrapped(Exception):  # like sqlalchemy.exc.DBAPIError
        orig = psycopg.OperationalError("terminating connection due to administrator command")

    assert isinstance(translate_error(Wrapped()), DatabaseUnreachable)
    refused = translate_error(psycopg.errors.UndefinedTable("relation \"x\" does not exist"))
    assert isinstance(refused, DatabaseError)
    assert translate_error(ValueError("x")) is None


def test_refresh_names_the_view(env: dict[str, str]) -> None:
    for view, message in (("public.nope", "relation \"public.nope\" does not exist"),
                          ("public.issues", "issues is not a materialized view")):
        proc = _cli(env, "refresh", view)
        assert proc.returncode == 2, proc.stderr
        assert f"cannot refresh '{view}'" in _stderr(proc) and message in _stderr(proc)


def test_a_misspelt_algorithm_names_the_valid_ones(env: dict[str, str], flow: PgmlFlow) -> None:
    with flow.connect() as conn:
        conn.execute("CREATE TABLE points AS SELECT g::real AS x, g::real AS y "
                     "FROM generate_series(1, 40) g")
        conn.commit()
    proc = _cli(env, "pgml", "train", "p", "--task", "regression", "--relation", "points",
                "--y-column", "y", "--algorithm", "xgbost")
    assert proc.returncode == ModelError.exit_code
    text = _stderr(proc)
    assert "'xgbost' is not a pgml.algorithm value; did you mean 'xgboost'?" in text
    assert "lightgbm" in text


@pytest.mark.parametrize("args", [
    ["events", "--limit", "-1"], ["events", "--limit", "0"], ["models", "runs", "--limit", "-1"],
    ["scheduler", "runs", "--limit", "-1"],
])
def test_a_negative_limit_is_refused(env: dict[str, str], args: list[str]) -> None:
    proc = _cli(env, *args)
    assert proc.returncode == 2, proc.stderr
    assert "--limit must be a positive number of rows" in _stderr(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["events", "--model", "nope"], "no model named 'nope'; known: complexity"),
    (["events", "--client", "99"], "client(s) 99 do not exist"),
    (["events", "--status", "nope"], "no event status 'nope'"),
    (["models", "runs", "--model", "nope"], "no model named 'nope'"),
    (["scheduler", "runs", "--job", "nope"], "no job named 'nope'; known:"),
    (["pgml", "models", "--project", "nope"], "project 'nope' does not exist"),
    (["status", "--client", "99"], "client(s) 99 do not exist"),
])
def test_unknown_filters_fail_instead_of_printing_nothing(env: dict[str, str], args: list[str],
                                                          message: str) -> None:
    proc = _cli(env, *args)
    assert proc.returncode != 0, proc.stdout
    assert message in _stderr(proc)


def test_known_filters_with_no_rows_still_print_a_table(env: dict[str, str]) -> None:
    proc = _cli(env, "events", "--model", "complexity", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_predict_takes_negative_numbers(env: dict[str, str], flow: PgmlFlow) -> None:
    with flow.pgml() as client:
        client.conn.execute("CREATE TABLE line AS SELECT g::real AS x, (2 * g - 3)::real AS y "
                            "FROM generate_series(-20, 20) g")
        client.train("line", task="regression", relation="line", y_column="y")
        client.conn.commit()
    for args in (["-2"], ["--", "-2"], ["-2.0", "--json"]):
        proc = _cli(env, "pgml", "predict", "line", *args)
        assert proc.returncode == 0, proc.stderr
        assert "-7" in proc.stdout
    proc = _cli(env, "pgml", "predict", "line", "1", "-1e1")
    assert proc.returncode == ModelError.exit_code
    assert "expected 1 features, got 2" in _stderr(proc)
