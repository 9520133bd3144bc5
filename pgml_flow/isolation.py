"""Tenant isolation: a database login per client for BI tools, and the audit that proves it.

Each client's BI tool logs in as its own role (``<database>_client_<id>`` by default),
a member of ``pgml_flow_bi`` and mapped to the client in ``client_bi_roles``.  Row-Level
Security on every tenant table, and the SECURITY DEFINER functions of the ``analytics``
schema, resolve the client from that login (``pgml_flow.current_client_id()``), so a BI
login can neither see nor ask for another client's rows.  See docs/isolation.md.

:func:`audit` checks it from the outside: as each mapped login, every relation and
function of the BI surface must return that client's rows only (and all of them), and
every pgml internal must be unreadable.  It runs in one transaction that is rolled
back, so the predictions it triggers leave no log rows behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.errors import ClientNotFound, ConfigurationError, IsolationBreach

logger = logging.getLogger(__name__)
SOURCE = "isolation"


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def _template(name: str, **parts: sql.Composable) -> sql.Composed:
    return sql.SQL(_query(name)).format(**parts)


# -- BI logins -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BiLogin:
    client_id: int
    role: str
    created: bool


def grant_bi_access(
    conn: psycopg.Connection, client_id: int, *, role: str | None = None,
    password: str | None = None,
) -> BiLogin:
    """Create (or reuse) a login for one client's BI tool and map it to the client.

    Idempotent: an existing role is reused (and given ``password`` if one is passed).
    """
    exists = conn.execute(_query("client_exists"), {"client_id": client_id}).fetchone()
    if exists is None:
        raise ClientNotFound(f"client {client_id} does not exist; see the clients table")
    if role is None:
        row = conn.execute(_query("default_bi_role"), {"client_id": client_id}).fetchone()
        assert row is not None
        role = str(row[0])
    mapped = conn.execute(_query("role_client"), {"role": role}).fetchone()
    if mapped is not None and int(mapped[0]) != client_id:
        raise ConfigurationError(
            f"role {role!r} already reads client {mapped[0]}; a login serves one client, "
            "pick another --role"
        )
    facts = conn.execute(_query("role_facts"), {"role": role}).fetchone()
    ident = sql.Identifier(role)
    with conn.transaction():
        if facts is None:
            conn.execute(_template("create_login", role=ident))
        elif facts[0]:
            raise ConfigurationError(
                f"role {role!r} is a superuser, bypasses RLS or is a member of pgml_flow_ml, "
                "so it would see every client; use a plain role"
            )
        else:
            conn.execute(_template("grant_bi_group", role=ident))
        if password is not None:
            conn.execute(_template("set_password", role=ident, password=sql.Literal(password)))
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(_template("grant_connect", role=ident,
                               database=sql.Identifier(str(database[0]))))
        conn.execute(_query("map_role"), {"client_id": client_id, "role": role})
    conn.commit()
    logger.info("bi login", extra={"action": "bi_grant", "client_id": client_id, "role": role})
    return BiLogin(client_id, role, facts is None)


def bi_logins(conn: psycopg.Connection, client_id: int | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("bi_roles"), {"client_id": client_id}).fetchall()


def revoke_bi_access(conn: psycopg.Connection, client_id: int | None = None) -> list[str]:
    """Unmap a client's logins (every client's with None) and drop the roles.

    A role that still holds privileges in another database is unmapped but kept.
    """
    dropped = []
    for login in bi_logins(conn, client_id):
        role = str(login["role_name"])
        ident = sql.Identifier(role)
        with conn.transaction():
            conn.execute(_query("unmap_role"), {"role": role})
        if login["role_exists"]:
            try:
                with conn.transaction():
                    conn.execute(_template("drop_owned", role=ident))
                    conn.execute(_template("drop_role", role=ident))
                dropped.append(role)
            except psycopg.errors.DependentObjectsStillExist:
                logger.warning("role kept", extra={"action": "bi_revoke_kept", "role": role})
    conn.commit()
    return dropped


# -- the audit -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One audited fact: a login reading one object."""

    role: str
    client_id: int | None
    object: str
    kind: str  # bi (must show own rows only), internal (must be unreadable), structure
    verdict: str  # ok, LEAK, MISSING, READABLE, ERROR, NO RLS, NO POLICY, PRIVILEGED
    rows: int | None = None
    expected: int | None = None
    other_clients: tuple[int, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass
class AuditReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_on_failure(self) -> None:
        if self.failures:
            first = self.failures[0]
            raise IsolationBreach(
                f"isolation audit failed: {len(self.failures)} check(s), first: {first.role} "
                f"on {first.object}: {first.verdict} {first.detail}".rstrip()
            )


def audit(conn: psycopg.Connection) -> AuditReport:
    """Audit tenant isolation; see the module docstring.  Needs a superuser connection."""
    row = conn.execute(_query("is_superuser")).fetchone()
    if not row or not row[0]:
        raise ConfigurationError(
            "the isolation audit switches to each BI login with SET SESSION AUTHORIZATION, "
            "which needs a superuser; run it as the role that migrates the database"
        )
    report = AuditReport()
    try:
        _structure(conn, report)
        logins = bi_logins(conn)
        if not logins:
            raise ConfigurationError(
                "no BI logins to audit; create them with `pgml-flow bi grant --all`"
            )
        client_ids = sorted({int(login["client_id"]) for login in logins})
        bi_objects = _bi_objects(conn)
        internals = _internal_objects(conn)
        for login in logins:
            role, client_id = str(login["role_name"]), int(login["client_id"])
            if not login["role_exists"]:
                report.checks.append(Check(role, client_id, "(role)", "structure", "ERROR",
                                           detail="mapped in client_bi_roles but missing"))
                continue
            _role_privileges(conn, report, role, client_id)
            # An attempt to pick another client through the admin setting must not work.
            spoof = next((c for c in client_ids if c != client_id), client_id + 1)
            for label, relation in bi_objects:
                report.checks.append(
                    _check_bi(conn, role, client_id, spoof, label, relation))
            for label, relation in internals:
                report.checks.append(_check_internal(conn, role, client_id, label, relation))
    finally:
        conn.rollback()
    return report


def _structure(conn: psycopg.Connection, report: AuditReport) -> None:
    with conn.cursor(row_factory=dict_row) as cur:
        tables = cur.execute(_query("tenant_tables")).fetchall()
    for t in tables:
        verdict = "ok" if t["rls"] and t["bi_policy"] else (
            "NO RLS" if not t["rls"] else "NO POLICY")
        detail = "" if verdict == "ok" else (
            "row-level security is disabled" if not t["rls"]
            else "no policy applies to pgml_flow_bi (BI logins see no rows)")
        report.checks.append(Check("-", None, f"public.{t['name']}", "structure", verdict,
                                   detail=detail))


def _bi_objects(conn: psycopg.Connection) -> list[tuple[str, sql.Composable]]:
    objects: list[tuple[str, sql.Composable]] = []
    for schema, name in conn.execute(_query("bi_relations")).fetchall():
        objects.append((f"{schema}.{name}", sql.Identifier(schema, name)))
    models = [r[0] for r in conn.execute(_query("registered_models")).fetchall()]
    for name, required, first_arg in conn.execute(_query("bi_functions")).fetchall():
        function = sql.Identifier("analytics", name)
        if required == 0:
            objects.append((f"analytics.{name}()", sql.SQL("{}()").format(function)))
        elif required == 1 and first_arg == "model_name":
            for model in models:
                objects.append((f"analytics.{name}('{model}')",
                                sql.SQL("{}({})").format(function, sql.Literal(model))))
        else:
            logger.warning("not audited", extra={"action": "audit_skip", "function": name})
    return objects


def _internal_objects(conn: psycopg.Connection) -> list[tuple[str, sql.Composable]]:
    return [(f"{schema}.{name}", sql.Identifier(schema, name))
            for schema, name in conn.execute(_query("internal_relations")).fetchall()]


def _role_privileges(
    conn: psycopg.Connection, report: AuditReport, role: str, client_id: int
) -> None:
    with conn.cursor(row_factory=dict_row) as cur:
        facts = cur.execute(_query("role_privileges"), {"role": role}).fetchone()
    assert facts is not None
    for key, label in (("pgml_usage", "schema pgml"),
                       ("training_usage", "schema pgml_flow_training"),
                       ("ml_member", "role pgml_flow_ml"),
                       ("bypass", "superuser / BYPASSRLS")):
        verdict = "PRIVILEGED" if facts[key] else "ok"
        report.checks.append(Check(role, client_id, label, "internal", verdict,
                                   detail="the login must not have this" if facts[key] else ""))


def _as_role(conn: psycopg.Connection, role: str) -> None:
    conn.execute(_template("set_session_authorization", role=sql.Identifier(role)))


def _check_bi(
    conn: psycopg.Connection, role: str, client_id: int, spoof: int, label: str,
    relation: sql.Composable,
) -> Check:
    try:
        with conn.transaction():
            conn.execute(_query("set_admin_client"), {"client_id": str(client_id)})
            expected_row = conn.execute(_template("count_for_client", relation=relation),
                                        {"client_id": client_id}).fetchone()
        expected = int(expected_row[0]) if expected_row else 0
        with conn.transaction():
            conn.execute(_query("set_admin_client"), {"client_id": str(spoof)})
            _as_role(conn, role)
            seen = conn.execute(_template("count_by_client", relation=relation)).fetchall()
            conn.execute(_query("reset_session_authorization"))
    except psycopg.Error as exc:
        return Check(role, client_id, label, "bi", "ERROR",
                     detail=str(exc).strip().splitlines()[0])
    counts = {int(c): int(n) for c, n in seen if c is not None}
    others = tuple(sorted(c for c in counts if c != client_id))
    rows = sum(n for _, n in seen)
    own = counts.get(client_id, 0)
    if others or own != rows:
        verdict, detail = "LEAK", f"also sees clients {list(others)}"
    elif own < expected:
        verdict, detail = "MISSING", f"sees {own} of its {expected} rows"
    else:
        verdict, detail = "ok", ""
    return Check(role, client_id, label, "bi", verdict, rows, expected, others, detail)


def _check_internal(
    conn: psycopg.Connection, role: str, client_id: int, label: str, relation: sql.Composable
) -> Check:
    try:
        with conn.transaction():
            _as_role(conn, role)
            conn.execute(_template("probe", relation=relation)).fetchall()
            conn.execute(_query("reset_session_authorization"))
    except psycopg.errors.InsufficientPrivilege:
        return Check(role, client_id, label, "internal", "ok")
    except psycopg.Error as exc:
        return Check(role, client_id, label, "internal", "ERROR",
                     detail=str(exc).strip().splitlines()[0])
    return Check(role, client_id, label, "internal", "READABLE",
                 detail="a BI login can read it")


def summarize(report: AuditReport) -> Iterable[dict[str, Any]]:
    """One row per login and kind: how many checks, how many failed."""
    groups: dict[tuple[str, int | None, str], list[Check]] = {}
    for check in report.checks:
        groups.setdefault((check.role, check.client_id, check.kind), []).append(check)
    for (role, client_id, kind), checks in groups.items():
        failed = [c for c in checks if not c.ok]
        yield {"role": role, "client_id": client_id, "kind": kind, "checks": len(checks),
               "rows_seen": sum(c.rows or 0 for c in checks), "failed": len(failed)}
