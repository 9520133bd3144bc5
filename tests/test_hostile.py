"""Hostile input, property-based (issue 16, item 3): the pgml API, the tenant surface, the CLI.

Hypothesis draws hostile arguments (project and relation names with SQL in them, JSON
hyperparams and preprocess of every shape, arrays with NULL/NaN/±Infinity, a 200,000-element
array, values of the wrong kind) and sends them to the real embedded PostgreSQL:

* **the pgml API** (as the migrating superuser, the role with the most to lose): every call
  either succeeds or fails with a clear error: a SQLSTATE of the caller's-mistake classes
  (22, 42, 55; 38 for a fit the library refused; 54 for a program limit), never XX000 (a
  bug), a cancel (a hang reaching ``statement_timeout``) or a lost connection; the message
  names the offending argument and carries no Python traceback.  Each call runs in its own
  transaction (autocommit), so an injected statement would commit: after every example the
  canary table must be unchanged and ``public.hostile_pwned`` absent; the connection must be
  alive (a backend crash restarts every backend) and, at the end, ``pg_postmaster_start_time``
  unchanged;
* **the tenant surface**, as the BI login of client 1: every relation and function it can
  reach, enumerated from the catalog with the isolation audit's own queries, called with
  hostile arguments while ``pgml_flow.client_id`` names another client (or garbage): zero
  rows of client 2; ``pgml.train`` / ``pgml.snapshot`` on relations the caller cannot read
  (as the BI login, and as a ``pgml_flow_ml`` member on a relation it was not granted) fail
  before reading a row (a tripwire view raises if one is read); and the audit
  (``pgml-flow verify isolation``) catches each path planted open;
* **the CLI**: hostile names and JSON through ``pgml-flow pgml train/predict`` end in one
  ``error:`` line and an exit code, no traceback.

Reproducible: ``derandomize=True`` (the examples are a function of the test), no example
database.  ``PGML_FLOW_HOSTILE_EXAMPLES`` raises the number of examples (docs/contributing.md).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from pgml_flow import sqlfiles
from pgml_flow.app import PgmlFlow
from pgml_flow.database import drop_database, recreate_database, with_dbname
from tests.conftest import flow_for

#: examples of the API property test; the tenant and CLI tests take a share of it
EXAMPLES = int(os.environ.get("PGML_FLOW_HOSTILE_EXAMPLES", "30"))


def hostile(examples: int) -> settings:
    return settings(max_examples=max(1, examples), deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


# -- strategies ---------------------------------------------------------------------------------
#: names that would do harm if formatted into SQL anywhere, or that name what must stay private
INJECTIONS = [
    "'; DELETE FROM public.hostile_canary; --",
    "x'); DROP TABLE public.hostile_canary; --",
    '"; CREATE TABLE public.hostile_pwned (); --',
    "public.hostile_canary; DROP TABLE public.hostile_canary",
    "hostile_data WHERE false; CREATE TABLE public.hostile_pwned ()",
    "(SELECT secret FROM public.hostile_canary)",
    "hostile_canary", "public.hostile_canary", "pg_catalog.pg_authid", "pgml.files",
    "%s %I %L $1 {0} \\", "1 OR 1=1", "rework__client_2", "", " ", "x" * 3000,
    "\u00e9\U0001f600\u202e", '"Hostile_Data"', "hostile_data.x1",
]
TEXT = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
            max_size=30))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6)
#: hyperparams of the linear algorithm (so that a valid draw fits in milliseconds), or anything
HYPERPARAMS = st.one_of(
    st.dictionaries(st.sampled_from(["fit_intercept", "positive", "tol", "copy_X", "n_jobs"])
                    | TEXT, JSON, max_size=3), JSON)
PREPROCESS = st.one_of(
    st.dictionaries(
        st.sampled_from(["x1", "x2", "c", "y"]) | TEXT,
        st.dictionaries(st.sampled_from(["impute", "scale", "encode", "top_k", "min_count",
                                         "log1p", "snap"]) | TEXT,
                        st.sampled_from(["mean", "zero", "standard", "one_hot", "target"]) | JSON,
                        max_size=3) | JSON,
        max_size=3),
    JSON)
REALS = st.one_of(st.none(), st.floats(width=32),
                  st.sampled_from([math.nan, math.inf, -math.inf, 3.4e38, -0.0]))
HUGE = [1.0] * 200_000
ARRAYS = st.one_of(st.lists(REALS, max_size=12), st.just(HUGE))
BIGINTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1]))


@dataclass(frozen=True)
class Call:
    """One hostile call: the statement, its parameters, what its error must name."""

    label: str
    statement: str
    params: tuple[Any, ...]
    #: a regular expression the error message must match (it names the argument)
    names: str
    #: a plpython3u prediction function: PL/Python's "plpy.Error: " prefix is kept there
    #: (sql/pgml/010_api.sql: no PL/pgSQL wrapper on the hot path)
    python_prefix: bool = False

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        shown = tuple(p[:60] if isinstance(p, str) else
                      (f"<{len(p)} values>" if isinstance(p, list) and len(p) > 20 else p)
                      for p in self.params)
        return f"Call({self.label}: {self.statement} {shown})"


def _jsonb(value: Any) -> str:
    return json.dumps(value)


FEATURES = r"feature|NULL|NaN|infinit"
TRAIN = ("SELECT * FROM pgml.train(%s, 'regression', %s, %s, 'linear', %s::jsonb, "
         "search => %s::pgml.search, search_params => %s::jsonb, search_args => %s::jsonb, "
         "test_size => %s::real, preprocess => %s::jsonb)")
VALID_TRAIN = ("hostile_reg", "public.hostile_data", "y", "{}", None, "{}", "{}", 0.25,
               '{"c": {"encode": "one_hot"}}')


def _train(label: str, names: str, **changes: Any) -> Call:
    order = ["project", "relation", "y", "hyperparams", "search", "search_params",
             "search_args", "test_size", "preprocess"]
    values = dict(zip(order, VALID_TRAIN, strict=True))
    values.update(changes)
    return Call(f"train {label}", TRAIN, tuple(values[k] for k in order), names)


PREDICT = "SELECT pgml.predict(%s::text, %s::real[])"
#: run on every run, whatever the number of examples: the errors that were bugs (XX000) before
#: issue 16, and the inputs named in it
EXPLICIT = [
    _train("preprocess", r"preprocess", preprocess='"scale"'),
    _train("preprocess", r"preprocess", preprocess="[1]"),
    _train("search", r"search", search="grid", search_params='"x"'),
    _train("search", r"search", search="grid", search_args="[1]"),
    _train("relation", r"relation", relation=INJECTIONS[3]),
    Call("predict(name)", PREDICT, ("hostile_reg", HUGE), FEATURES, True),
    Call("predict(name)", PREDICT, ("hostile_reg", [1.0, math.nan, math.inf, None]), FEATURES,
         True),
]


def api_calls(models: dict[str, int]) -> st.SearchStrategy[Call]:
    """Every entry point of the pgml API, one hostile argument (or several) at a time."""
    projects = st.sampled_from(sorted(models)) | TEXT
    ids = st.sampled_from(sorted(models.values())) | BIGINTS
    keys = r"project|model|" + FEATURES
    predict = st.one_of(
        st.builds(lambda p, f: Call("predict(name)", PREDICT, (p, f), keys, True),
                  projects, ARRAYS),
        st.builds(lambda m, f: Call("predict(id)", "SELECT pgml.predict(%s::bigint, %s::real[])",
                                    (m, f), keys, True), ids, ARRAYS),
        st.builds(lambda p, f: Call("predict_proba",
                                    "SELECT pgml.predict_proba(%s::text, %s::real[])",
                                    (p, f), keys + "|classification", True), projects, ARRAYS),
        st.builds(lambda m, f: Call("predict_batch",
                                    "SELECT pgml.predict_batch(%s::bigint, %s::real[])",
                                    (m, f), keys, True), ids, ARRAYS),
        st.builds(lambda p, x1, x2, c: Call(
            "predict(row)", "SELECT pgml.predict(%s::text, ROW(%s::real, %s::real, %s::text, "
            "NULL::real)::public.hostile_data)", (p, x1, x2, c),
            r"project|model|column|categor|" + FEATURES, True), projects, REALS, REALS,
            st.none() | TEXT),
        st.builds(lambda p, t: Call("predict(wrong type)",
                                    f"SELECT pgml.predict(%s::text, %s::{t[0]})", (p, t[1]),
                                    r"record|row|feature|type|function", True),
                  projects, st.sampled_from([("text", "1,2,3"), ("jsonb", "[1, 2, 3]"),
                                             ("integer", 3), ("boolean", True),
                                             ("text[]", ["1", "x"]), ("bytea", b"\x00\xff"),
                                             ("point", "(1,2)")])),
        st.builds(lambda p, f: Call("decompose", "SELECT pgml.decompose(%s::text, %s::real[])",
                                    (p, f), keys + "|decompos", True), projects, ARRAYS),
    )
    train = st.one_of(
        st.builds(lambda v: _train("project", r"project", project=v), TEXT),
        st.builds(lambda v: _train("relation", r"relation|column|label", relation=v),
                  TEXT | st.sampled_from(["public.hostile_canary", "pgml.models"])),
        st.builds(lambda v: _train("y_column", r"column|label", y=v), TEXT),
        st.builds(lambda v: _train("hyperparams", r"hyperparam|param|algorithm|json",
                                   hyperparams=_jsonb(v)), HYPERPARAMS),
        st.builds(lambda v: _train("hyperparams text", r"json", hyperparams=v), TEXT),
        st.builds(lambda v: _train("preprocess", r"preprocess|json|column",
                                   preprocess=_jsonb(v)), PREPROCESS),
        st.builds(lambda p, a: _train("search", r"search", search="grid",
                                      search_params=_jsonb(p), search_args=_jsonb(a)),
                  JSON, JSON),
        st.builds(lambda v: _train("test_size", r"test_size|test", test_size=v),
                  st.floats(width=32)),
    )
    other = st.one_of(
        st.builds(lambda r, y, p: Call("snapshot", "SELECT * FROM pgml.snapshot(%s, %s, "
                                       "preprocess => %s::jsonb)", (r, y, _jsonb(p)),
                                       r"relation|column|label|preprocess"),
                  TEXT | st.just("public.hostile_data"), TEXT | st.just("y"), PREPROCESS),
        st.builds(lambda p, s: Call("deploy",
                                    "SELECT * FROM pgml.deploy(%s::text, %s::pgml.strategy)",
                                    (p, s), r"project|strategy|model|qualified"),
                  projects, st.sampled_from(["best_score", "most_recent", "rollback"]) | TEXT),
        st.builds(lambda m: Call("deploy(id)", "SELECT * FROM pgml.deploy(%s::bigint)", (m,),
                                 r"model"), BIGINTS),
        st.builds(lambda d: Call("load_dataset", "SELECT * FROM pgml.load_dataset(%s::text)", (d,),
                                 r"dataset"), TEXT),
        st.builds(lambda m: Call("delete_model", "SELECT pgml.delete_model(%s::bigint)", (m,),
                                 r"model"), BIGINTS),
        st.builds(lambda p: Call("delete_project", "SELECT pgml.delete_project(%s::text)", (p,),
                                 r"project"), TEXT),
    )
    return st.one_of(predict, train, other)


# -- what a clear error is ----------------------------------------------------------------------
#: SQLSTATE classes of the caller's mistakes: data exception, syntax or access rule, object not
#: in prerequisite state, external routine (a fit the library refused), program limit
CLEAR_CLASSES = {"22", "42", "55", "38", "54"}


def assert_clear(exc: psycopg.Error, call: Call) -> None:
    state = exc.sqlstate
    assert state, f"{call!r}: no SQLSTATE, the connection was lost: {exc}"
    message = exc.diag.message_primary or ""
    everything = " ".join(filter(None, (message, exc.diag.message_detail,
                                         exc.diag.message_hint)))
    assert state[:2] in CLEAR_CLASSES, f"{call!r}: SQLSTATE {state}: {everything}"
    assert "Traceback" not in everything and 'File "' not in everything, (call, everything)
    prefix = re.match(r"(plpy\.\w+|spiexceptions\.\w+): ", message)
    assert prefix is None or (call.python_prefix and prefix.group(1) == "plpy.Error"), (
        f"{call!r}: Python's exception class in the message: {message}")
    assert re.search(call.names, message, re.IGNORECASE), (
        f"{call!r}: the message does not name the argument ({call.names}): {message}")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hflow(admin_url: str, trained_template: str) -> Iterator[PgmlFlow]:
    """One copy of the session's trained database for the whole file (a copy and its drop
    cost seconds each on a loaded machine); the tenant test undoes what it plants."""
    name = f"test_hostile_{uuid.uuid4().hex[:8]}"
    recreate_database(admin_url, name, template=trained_template)
    yield flow_for(with_dbname(admin_url, name))
    drop_database(admin_url, name)


CANARY = ("SELECT (SELECT string_agg(id || ':' || secret, ',' ORDER BY id) "
          "FROM public.hostile_canary), to_regclass('public.hostile_pwned') IS NULL")


@pytest.fixture
def hostile_conn(hflow: PgmlFlow) -> Iterator[psycopg.Connection]:
    """A superuser connection to a copy of the trained database, with the canary, a small
    relation (two reals, a text, the label) and a model trained on it."""
    with hflow.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE public.hostile_canary (id int PRIMARY KEY, secret text)")
        conn.execute("INSERT INTO public.hostile_canary VALUES (1, 'alpha'), (2, 'beta')")
        conn.execute("CREATE TABLE public.hostile_data AS SELECT g::real AS x1, "
                     "(g % 7)::real AS x2, (ARRAY['a', 'b', 'c'])[g % 3 + 1] AS c, "
                     "(2 * g + g % 3)::real AS y FROM generate_series(1, 40) AS g")
        conn.execute("SELECT * FROM pgml.train('hostile_reg', 'regression', "
                     "'public.hostile_data', 'y', preprocess => %s)", (VALID_TRAIN[-1],))
        conn.execute("SET statement_timeout = '30s'")  # a hang fails as 57014, not forever
        yield conn
        conn.execute("RESET statement_timeout")
        conn.execute("SELECT pgml.delete_project(name) FROM pgml.projects "
                     "WHERE name !~ '__client_'")
        conn.execute("DROP TABLE public.hostile_canary, public.hostile_data")


def _alive(conn: psycopg.Connection, call: Call) -> tuple[Any, ...]:
    try:
        row = conn.execute(CANARY).fetchone()
    except psycopg.OperationalError as exc:
        pytest.fail(f"the backend died after {call!r}: {exc}")
    assert row is not None
    return tuple(row)


def test_pgml_api_survives_hostile_input(hostile_conn: psycopg.Connection) -> None:
    conn = hostile_conn
    start = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    canary = _alive(conn, Call("setup", "", (), ""))
    assert canary == ("1:alpha,2:beta", True)
    models = {str(name): int(model_id) for name, model_id in conn.execute(
        "SELECT name, id FROM pgml.deployed_models WHERE name IN ('hostile_reg', "
        "'rework__client_1', 'complexity__client_1')").fetchall()}
    assert len(models) == 3, models
    outcomes: Counter[str] = Counter()

    @hostile(EXAMPLES)
    @given(call=api_calls(models))
    def check(call: Call) -> None:
        try:
            conn.execute(call.statement, call.params).fetchall()
            outcomes["ok"] += 1
        except psycopg.OperationalError as exc:
            pytest.fail(f"{call!r}: the connection died (a backend crash?): {exc}")
        except psycopg.Error as exc:
            assert_clear(exc, call)
            outcomes[exc.sqlstate or "?"] += 1
        assert _alive(conn, call) == canary, f"{call!r} changed the canary"

    for call in EXPLICIT:
        check = example(call=call)(check)
    check()
    assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == start, (
        "the postmaster restarted: a backend crashed")
    print("pgml API outcomes:", dict(outcomes))


# -- the tenant surface -------------------------------------------------------------------------
#: values of pgml_flow.client_id a BI tool could set in its session
CLIENT_SETTINGS = st.one_of(
    st.sampled_from(["2", " 2", "02", "2.0", "-1", "0", "", "1 OR true", "2; RESET ROLE",
                     "9223372036854775808", "NaN", "null", "1,2"]),
    st.integers().map(str), TEXT)
#: argument values by type, for the functions a login can reach
ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "text": st.sampled_from(["rework", "complexity", "trajectory", "rework__client_2",
                             "rework' OR '1'='1"]) | TEXT,
    "bigint": BIGINTS | st.sampled_from([1, 2]),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "boolean": st.booleans(),
    "interval": st.sampled_from(["24 hours", "0", "-1 year", "1 microsecond", "1000 years",
                                 "-178000000 years", "1 day 00:00:01"]),
}

FUNCTION_ARGS = """
SELECT p.oid::regprocedure::text AS signature, n.nspname AS schema, p.proname AS name,
       p.proretset AS set_returning,
       array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) AS t) AS types
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.oid = to_regprocedure(%s)
"""


def connect_as(flow: PgmlFlow, role: str) -> psycopg.Connection:
    return psycopg.connect(flow.url, user=role, autocommit=True)


def _function_call(function: dict[str, Any], args: list[Any]) -> sql.Composed:
    target = sql.Identifier(function["schema"], function["name"])
    params = sql.SQL(", ").join(sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(t))
                                for t in function["types"])
    if function["set_returning"]:
        return sql.SQL("SELECT * FROM {}({})").format(target, params)
    return sql.SQL("SELECT {}({}) AS value").format(target, params)


def test_a_tenant_reaches_no_other_client(hflow: PgmlFlow) -> None:
    """As client 1's BI login: every reachable relation and function, hostile arguments and
    client settings; then train/snapshot on unreadable relations; then the audit, with each
    uncovered path planted open."""
    tflow = hflow
    logins = {login.client_id: login.role for login in tflow.grant_bi_access()}
    login, other_login = logins[1], logins[2]
    with tflow.connect(autocommit=True) as admin:
        relations = admin.execute(sqlfiles.query("reachable_relations", "isolation"),
                                  {"role": login}).fetchall()
        signatures = [r[0] for r in admin.execute(
            sqlfiles.query("reachable_functions", "isolation"), {"role": login}).fetchall()]
        functions = []
        for signature in signatures:
            cur = admin.cursor(row_factory=psycopg.rows.dict_row)
            row = cur.execute(FUNCTION_ARGS, (signature.replace(", ", ","),)).fetchone()
            assert row is not None, signature
            functions.append(row)
        other_name = admin.execute("SELECT name FROM clients WHERE client_id = 2").fetchone()[0]
    assert relations and functions
    scoped = [(schema, name) for schema, name, has_client_id, _ in relations if has_client_id]
    assert len(scoped) == len(relations), "a reachable relation without client_id"

    bi = connect_as(tflow, login)
    seen: Counter[str] = Counter()

    def judge(call: sql.Composed, params: list[Any], label: str) -> None:
        try:
            cur = bi.execute(call, params)
            rows = cur.fetchall()
            columns = [c.name for c in cur.description or []]
        except psycopg.OperationalError as exc:
            pytest.fail(f"{label}: the connection died: {exc}")
        except psycopg.Error as exc:
            assert exc.sqlstate and exc.sqlstate[:2] in CLEAR_CLASSES, (
                label, exc.sqlstate, exc)
            assert other_name not in str(exc), (label, str(exc))
            seen["error " + exc.sqlstate] += 1
            return
        if "client_id" in columns:
            index = columns.index("client_id")
            others = {r[index] for r in rows} - {1}
            assert not others, f"{label}: rows of clients {others} leaked"
        elif columns == ["value"] and label.startswith("pgml_flow.current_client_id"):
            assert rows == [(1,)], f"{label}: resolved to {rows}"
        assert other_name not in repr(rows), f"{label}: client 2's name leaked"
        seen["rows"] += 1

    @hostile(max(4, EXAMPLES // 2))
    @given(data=st.data(), setting=CLIENT_SETTINGS)
    def check(data: st.DataObject, setting: str) -> None:
        try:
            bi.execute("SELECT set_config('pgml_flow.client_id', %s, false)", (setting,))
        except psycopg.errors.InvalidParameterValue as exc:  # pgml_native: digits or empty
            assert "pgml_flow.client_id" in str(exc), exc
            seen["setting refused"] += 1
        if data.draw(st.booleans(), label="relation?"):
            schema, name = data.draw(st.sampled_from(scoped), label="relation")
            judge(sql.SQL("SELECT client_id FROM {}").format(sql.Identifier(schema, name)), [],
                  f"{schema}.{name} with pgml_flow.client_id = {setting!r}")
            return
        function = data.draw(st.sampled_from(functions), label="function")
        args = [data.draw(st.none() | ARGUMENTS.get(t, st.none()), label=t)
                for t in function["types"]]
        judge(_function_call(function, args), args,
              f"{function['signature']}{tuple(args)} with pgml_flow.client_id = {setting!r}")

    with bi:
        check()
        # every function and relation once with the other client named, whatever was drawn
        bi.execute("SELECT set_config('pgml_flow.client_id', '2', false)")
        for schema, name in scoped:
            judge(sql.SQL("SELECT client_id FROM {}").format(sql.Identifier(schema, name)), [],
                  f"{schema}.{name}")
        for function in functions:
            args = [2 if t == "bigint" else None for t in function["types"]]
            judge(_function_call(function, args), args, function["signature"])
        # becoming someone else, or reaching pgml at all, is refused before any row is read
        for attempt in (sql.SQL("SET ROLE {}").format(sql.Identifier(other_login)),
                        sql.SQL("SET ROLE pgml_flow_ml"),
                        sql.SQL("SET SESSION AUTHORIZATION {}").format(
                            sql.Identifier(other_login)),
                        sql.SQL("SELECT * FROM pgml.train('spy', 'regression', 'public.issues', "
                                "'story_points')"),
                        sql.SQL("SELECT * FROM pgml.snapshot('public.issues', 'story_points')"),
                        sql.SQL("SELECT * FROM pgml_flow.serving_model(2, 'rework')")):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute(attempt)
    print("tenant outcomes:", dict(seen))

    try:
        _train_on_unreadable_relations(tflow)
        _audit_catches_planted_paths(tflow, login)
    finally:
        tflow.revoke_bi_access()


def _train_on_unreadable_relations(flow: PgmlFlow) -> None:
    """A pgml_flow_ml member (who may train) on a relation it was not granted: refused by the
    privilege check before the first row; the tripwire view raises if a row is ever read."""
    role = f"ml_{uuid.uuid4().hex[:8]}"
    with flow.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE pgml_flow_ml").format(
            sql.Identifier(role)))
        admin.execute("CREATE FUNCTION public.hostile_tripwire() RETURNS boolean "
                      "LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'TRIPWIRE: a row was read'; "
                      "END$$")
        admin.execute("CREATE VIEW public.hostile_secret AS SELECT i.client_id, 1::real AS y "
                      "FROM public.issues i WHERE public.hostile_tripwire()")
    try:
        with connect_as(flow, role) as ml:
            # an existing project (a new one stops earlier: pgml_flow_ml writes no pgml table)
            for statement in (
                    "SELECT * FROM pgml.train('rework__client_1', NULL, 'public.hostile_secret', "
                    "'y')",
                    "SELECT * FROM pgml.snapshot('public.hostile_secret', 'y')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege,
                                   match=r"hostile_secret.* is not readable by the current role"):
                    ml.execute(statement)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="projects"):
                ml.execute("SELECT * FROM pgml.train('spy', 'regression', "
                           "'public.hostile_secret', 'y')")
            # the control: an admin who may read it trips the wire
            with flow.connect(autocommit=True) as admin, \
                    pytest.raises(psycopg.Error, match="TRIPWIRE"):
                admin.execute("SELECT * FROM pgml.snapshot('public.hostile_secret', 'y')")
    finally:
        with flow.connect(autocommit=True) as admin:
            admin.execute("DROP VIEW public.hostile_secret")
            admin.execute("DROP FUNCTION public.hostile_tripwire()")
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _audit_catches_planted_paths(flow: PgmlFlow, login: str) -> None:
    """The paths the audit did not cover before issue 16, each planted open: the audit reports
    each with its verdict (and the audit of the clean database passes: test_security.py)."""
    with flow.connect(autocommit=True) as admin:
        originals = [r[0] for r in admin.execute(
            "SELECT pg_get_functiondef(f::regprocedure) FROM unnest(ARRAY["
            "'monitoring.health()', 'pgml_flow.current_client_id()']) AS f").fetchall()]
        # a SECURITY DEFINER function of the BI surface whose search_path the caller chooses
        admin.execute("ALTER FUNCTION monitoring.health() RESET search_path")
        # a sequence: its last_value counts every client's prediction log rows
        admin.execute("GRANT SELECT ON SEQUENCE public.ml_prediction_log_id_seq TO pgml_flow_bi")
        # the client setting trusted before the login's own mapping
        admin.execute("""
            CREATE OR REPLACE FUNCTION pgml_flow.current_client_id() RETURNS bigint
            LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
            SET search_path = pg_catalog, pg_temp AS $$
                SELECT coalesce(nullif(current_setting('pgml_flow.client_id', true), '')::bigint,
                                (SELECT r.client_id FROM public.client_bi_roles r
                                  WHERE r.role_name = session_user)) $$""")
    try:
        found = {(c.role, c.object, c.verdict) for c in flow.audit_isolation().failures}
    finally:
        with flow.connect(autocommit=True) as admin:
            for definition in originals:
                admin.execute(definition)
            admin.execute("REVOKE SELECT ON SEQUENCE public.ml_prediction_log_id_seq "
                          "FROM pgml_flow_bi")
    for planted in (("monitoring.health() search_path", "SEARCH_PATH"),
                    ("public.ml_prediction_log_id_seq", "UNSCOPED"),
                    ("setting pgml_flow.client_id (naming another client)", "LEAK")):
        assert (login, *planted) in found, (planted, sorted(found))


# -- the CLI ------------------------------------------------------------------------------------
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str,
            *args: str) -> tuple[int, str]:
    """``pgml-flow ARGS`` in this process (the console entry point, ``cli.app.main``)."""
    from cli.app import main

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["pgml-flow", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


def assert_one_line(code: int, err: str, names: str, args: tuple[str, ...]) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (2, 6), (args, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert "Traceback" not in err and "unexpected error" not in err, (args, err)
    assert re.search(names, lines[0], re.IGNORECASE), (args, names, err)


def test_cli_gives_one_line_errors(hflow: PgmlFlow, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = hflow.url

    @hostile(max(4, EXAMPLES // 3))
    @given(option=st.sampled_from(["--hyperparams", "--search-params", "--search-args",
                                   "--preprocess"]),
           value=st.one_of(TEXT, JSON.filter(lambda v: not isinstance(v, dict)).map(_jsonb)))
    def json_options(option: str, value: str) -> None:
        args = ("pgml", "train", "hostile", option, value)
        if value.strip().startswith("{"):
            return  # an object is valid JSON for the option: the server judges its content
        code, err = run_cli(monkeypatch, capsys, url, *args)
        assert_one_line(code, err, re.escape(option) + ".*JSON", args)

    json_options()
    # names reach the server: each command is a new backend (seconds of imports), so one
    args = ("pgml", "train", INJECTIONS[0], "--task", "regression", "--relation", INJECTIONS[3],
            "--y-column", "y", "--hyperparams", '{"fit_intercept": "1; DROP TABLE clients"}')
    code, err = run_cli(monkeypatch, capsys, url, *args)
    assert_one_line(code, err, "relation_name", args)
    with hflow.connect() as conn:
        assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 2
        assert conn.execute("SELECT to_regclass('public.hostile_pwned')").fetchone()[0] is None
