"""Security as the least-privileged role that could try (issue 10, points 1-3).

Each attack runs on a real login connection (the embedded cluster trusts its own unix
socket, which only its OS user and root can reach), never as the superuser:

* a ``.pth`` file planted in a directory a local account controls must never run, whatever a
  BI login or a ``pgml_flow_ml`` member sets (``pgml.venv`` is superuser-only, defined by
  pgml_native before any session starts);
* the loopback connection and webhook of server-side retrains are a superuser's choice;
* ``bi grant --role`` refuses roles that could reach every client;
* the isolation audit finds what each login can reach, including grants it was not told of.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError


@pytest.fixture
def logins(tflow: PgmlFlow) -> Iterator[dict[int, str]]:
    created = tflow.grant_bi_access()
    yield {login.client_id: login.role for login in created}
    tflow.revoke_bi_access()


@pytest.fixture
def ml_member(tflow: PgmlFlow) -> Iterator[str]:
    """A login that is a member of pgml_flow_ml, with pg_read_all_settings as the issue had."""
    role = f"ml_{uuid.uuid4().hex[:8]}"
    with tflow.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE pgml_flow_ml, pg_read_all_settings")
                     .format(sql.Identifier(role)))
    yield role
    drop_roles(tflow, role)


def drop_roles(flow: PgmlFlow, *roles: str) -> None:
    with flow.connect(autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def connect_as(flow: PgmlFlow, role: str) -> psycopg.Connection:
    return psycopg.connect(flow.url, user=role, autocommit=True)


@pytest.fixture
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A venv-shaped directory with a .pth file that records that it ran."""
    root = Path(f"/tmp/pgml-flow-evil-{uuid.uuid4().hex[:8]}")
    packages = root / "lib" / "python3.11" / "site-packages"
    packages.mkdir(parents=True)
    marker = root / "ran"
    (packages / "evil.pth").write_text(
        f"import os; open({str(marker)!r}, 'w').write(str(os.getuid()))\n")
    for path in (root, root / "lib", root / "lib" / "python3.11", packages):
        path.chmod(0o777)  # any local account, the server's OS user included
    (packages / "evil.pth").chmod(0o644)
    yield root, marker
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    root.rmdir()


SET_ATTEMPTS = ("SET pgml.venv = {value}",
                "SELECT set_config('pgml.venv', {value}, false)",
                "SET LOCAL pgml.venv = {value}")


def try_to_set_venv(conn: psycopg.Connection, role: str, value: str) -> None:
    literal = sql.Literal(value)
    for attempt in SET_ATTEMPTS:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"pgml\.venv"):
            conn.execute(sql.SQL(attempt).format(value=literal))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql.SQL("ALTER ROLE {} SET pgml.venv = {}").format(
            sql.Identifier(role), literal))
    with pytest.raises(psycopg.errors.InvalidName, match="reserved prefix"):
        conn.execute("SET pgml.anything_else = 'x'")  # no new placeholder either


def test_settings_that_choose_code_are_superuser_only(tflow: PgmlFlow) -> None:
    with tflow.connect() as conn:
        rows: dict[str, str] = dict(conn.execute(
            "SELECT name, context FROM pg_settings WHERE name IN "
            "('pgml.venv', 'pgml_flow.loopback_conninfo')").fetchall())
    assert rows == {"pgml.venv": "superuser", "pgml_flow.loopback_conninfo": "superuser"}


def test_a_bi_login_cannot_choose_where_python_imports_from(
    tflow: PgmlFlow, logins: dict[int, str], planted: tuple[Path, Path]
) -> None:
    venv, marker = planted
    role = logins[1]
    with connect_as(tflow, role) as bi:
        try_to_set_venv(bi, role, str(venv))
        # reading a prediction view bootstraps the in-database Python of this backend
        assert bi.execute("SELECT count(*) FROM analytics.pull_request_rework_risk"
                          " WHERE rework_probability IS NOT NULL").fetchone()[0] > 0
        bi.execute("SELECT count(*) FROM analytics.predictions('rework')")
    assert not marker.exists(), "the planted .pth file ran as the server's OS user"


def test_an_ml_member_cannot_choose_where_python_imports_from(
    tflow: PgmlFlow, ml_member: str, planted: tuple[Path, Path]
) -> None:
    venv, marker = planted
    with connect_as(tflow, ml_member) as conn:
        try_to_set_venv(conn, ml_member, str(venv))
        version = conn.execute("SELECT pgml.version()").fetchone()
        assert version and version[0]
        # the Python path itself (what a model without a native form uses)
        conn.execute("SELECT pgml._py_predict('rework__client_1', "
                     "(SELECT features FROM pgml_flow.rework_features LIMIT 1))")
        # nor choose the bytes the server loads as a model: writing pgml's model tables,
        # directly or through pgml.train/pgml.deploy, is the owning role's alone
        for statement in ("SELECT pgml.deploy('rework__client_1', 'most_recent')",
                          "SELECT * FROM pgml.train('ml_member_probe', 'regression',"
                          " 'pgml_flow.rework_features', 'label', 'linear')",
                          "INSERT INTO pgml.files (model_id, path, part, data)"
                          " SELECT id, 'x', 0, '' FROM pgml.models LIMIT 1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="permission denied for table"):
                conn.execute(statement)
    assert not marker.exists(), "the planted .pth file ran as the server's OS user"


def test_server_side_retrains_are_a_superusers_choice(tflow: PgmlFlow, ml_member: str) -> None:
    with connect_as(tflow, ml_member) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="loopback_conninfo"):
            conn.execute("SET pgml_flow.loopback_conninfo = 'user=pgmlflow'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pgml_flow.run_job('retrain:rework', "
                         "webhook_url => 'http://127.0.0.1:9/hook')")
    # even when a careless operator grants EXECUTE back, the function refuses
    with tflow.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("GRANT EXECUTE ON FUNCTION pgml_flow.run_job(text, double "
                              "precision, text, integer) TO {}").format(sql.Identifier(ml_member)))
    with connect_as(tflow, ml_member) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a superuser"):
        conn.execute("SELECT pgml_flow.run_job('retrain:rework', "
                         "webhook_url => 'http://127.0.0.1:9/hook')")


# -- bi grant --role ----------------------------------------------------------------------------
@pytest.mark.parametrize(("attributes", "reason"), [
    ("CREATEROLE", "CREATEROLE"),
    ("IN ROLE pg_read_all_data", "pg_read_all_data"),
    ("IN ROLE pg_write_server_files", "pg_write_server_files"),
    ("REPLICATION", "REPLICATION"),
    ("BYPASSRLS", "BYPASSRLS"),
])
def test_bi_grant_refuses_a_role_that_could_see_every_client(
    tflow: PgmlFlow, attributes: str, reason: str
) -> None:
    role = f"bi_{uuid.uuid4().hex[:8]}"
    with tflow.connect(autocommit=True) as conn:
        conn.execute(sql.SQL(f"CREATE ROLE {{}} LOGIN {attributes}").format(sql.Identifier(role)))
    try:
        with pytest.raises(ConfigurationError, match=reason):
            tflow.grant_bi_access([1], role=role)
        assert tflow.bi_logins(1) == []
    finally:
        drop_roles(tflow, role)


def test_bi_grant_refuses_a_role_that_reaches_a_privileged_one(tflow: PgmlFlow) -> None:
    """Membership through another group counts, whatever INHERIT says: SET ROLE reaches it."""
    group, role = f"grp_{uuid.uuid4().hex[:8]}", f"bi_{uuid.uuid4().hex[:8]}"
    with tflow.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE pgml_flow_ml").format(
            sql.Identifier(group)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT IN ROLE {}").format(
            sql.Identifier(role), sql.Identifier(group)))
    try:
        with pytest.raises(ConfigurationError, match=f"through {role} -> {group} -> pgml_flow_ml"):
            tflow.grant_bi_access([1], role=role)
        with tflow.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group),
                                                             sql.Identifier(role)))
        login = tflow.grant_bi_access([1], role=role)[0]  # a plain role is accepted
        assert (login.role, login.created) == (role, False)
        tflow.revoke_bi_access(1)
    finally:
        with tflow.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}, {}").format(
                sql.Identifier(role), sql.Identifier(group)))


# -- the audit ----------------------------------------------------------------------------------
def failures(flow: PgmlFlow) -> set[tuple[str, str]]:
    return {(c.object, c.verdict) for c in flow.audit_isolation().failures}


def test_audit_finds_what_each_login_can_reach(tflow: PgmlFlow, logins: dict[int, str]) -> None:
    assert tflow.audit_isolation().ok
    login = logins[1]
    leaks = {
        # a view in another schema, granted to every BI login (views run as their owner)
        "leak.all_issues": [
            "CREATE SCHEMA leak",
            "GRANT USAGE ON SCHEMA leak TO pgml_flow_bi",
            "CREATE VIEW leak.all_issues AS SELECT client_id, title FROM public.issues",
            "GRANT SELECT ON leak.all_issues TO pgml_flow_bi"],
        # a view without client_id granted straight to one login
        "public.titles": [
            "CREATE VIEW public.titles AS SELECT title FROM public.issues",
            "GRANT SELECT ON public.titles TO {login}"],
        # a scalar SECURITY DEFINER function taking a client id (EXECUTE is PUBLIC by default)
        "public.issue_count(bigint)": [
            "CREATE FUNCTION public.issue_count(c bigint) RETURNS bigint LANGUAGE sql "
            "SECURITY DEFINER AS 'SELECT count(*) FROM public.issues WHERE client_id = c'"],
        # untrusted code any login may run
        "public.shell(text)": [
            "CREATE FUNCTION public.shell(cmd text) RETURNS text LANGUAGE plpython3u "
            "AS 'return cmd'"],
        # a table the login may write
        "public.notes": [
            "CREATE TABLE public.notes (body text)",
            "GRANT INSERT ON public.notes TO {login}"],
    }
    expected = {
        "leak.all_issues": "LEAK", "public.titles": "UNSCOPED",
        "public.issue_count(bigint)": "DEFINER", "public.shell(text)": "UNTRUSTED",
        "public.notes": "WRITABLE",
    }
    with tflow.connect(autocommit=True) as conn:
        for statements in leaks.values():
            for statement in statements:
                conn.execute(sql.SQL(statement).format(login=sql.Identifier(login)))
    found = failures(tflow)
    for obj, verdict in expected.items():
        assert (obj, verdict) in found, (obj, verdict, found)
    # one login was granted the view directly: the other login's audit does not list it
    report = tflow.audit_isolation()
    assert {c.role for c in report.failures if c.object == "public.titles"} == {login}
    with tflow.connect(autocommit=True) as conn:
        conn.execute("DROP SCHEMA leak CASCADE")
        conn.execute("DROP VIEW public.titles")
        conn.execute("DROP FUNCTION public.issue_count(bigint), public.shell(text)")
        conn.execute("DROP TABLE public.notes")
    assert tflow.audit_isolation().ok


def test_audit_treats_a_mapped_createrole_login_as_privileged(tflow: PgmlFlow) -> None:
    """A role put in client_bi_roles by hand, past `bi grant`'s checks."""
    role = f"cr_{uuid.uuid4().hex[:8]}"
    with tflow.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE IN ROLE pgml_flow_bi").format(
            sql.Identifier(role)))
        conn.execute("INSERT INTO client_bi_roles (client_id, role_name) VALUES (1, %s)",
                     (role,))
    try:
        report = tflow.audit_isolation()
        privileged = [c for c in report.failures if c.role == role and c.verdict == "PRIVILEGED"]
        assert privileged and "CREATEROLE" in privileged[0].detail
    finally:
        with tflow.connect(autocommit=True) as conn:
            conn.execute("DELETE FROM client_bi_roles WHERE role_name = %s", (role,))
        drop_roles(tflow, role)


def test_planted_pth_would_run_if_the_path_were_trusted(
    tflow: PgmlFlow, planted: tuple[Path, Path]
) -> None:
    """The control: the same .pth file does run when a superuser adds its directory, so the
    tests above prove the guard and not a file the server could not read."""
    venv, marker = planted
    with tflow.connect(autocommit=True) as conn:
        conn.execute("CREATE FUNCTION pg_temp.add_site(path text) RETURNS void "
                     "LANGUAGE plpython3u AS 'import site; site.addsitedir(path)'")
        conn.execute("SELECT pg_temp.add_site(%s)",
                     (str(venv / "lib" / "python3.11" / "site-packages"),))
    assert marker.exists()
