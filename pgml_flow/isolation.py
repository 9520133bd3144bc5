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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
    if conn.execute(_query("client_exists"), {"client_id": client_id}).fetchone() is None:
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
    exists = conn.execute(_query("role_exists"), {"role": role}).fetchone() is not None
    if exists:
        reasons = privileged_reasons(conn, role)
        if reasons:
            raise ConfigurationError(
                f"role {role!r} could see every client, so it cannot be a client's BI login: "
                + "; ".join(reasons) + ". Map a plain role (NOLOGIN groups and attributes "
                "removed), or let `pgml-flow bi grant` create one"
            )
    ident = sql.Identifier(role)
    with conn.transaction():
        if not exists:
            conn.execute(_template("create_login", role=ident))
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
    return BiLogin(client_id, role, not exists)


def privileged_reasons(conn: psycopg.Connection, role: str) -> list[str]:
    """Why ``role`` would see more than one client, one phrase per reason (empty: it would not).

    A role is privileged when it, or any role it is a member of (directly or through
    others: ``SET ROLE`` reaches them whatever ``INHERIT`` says), is a superuser, has
    BYPASSRLS, CREATEROLE (in PostgreSQL 15 it may grant itself ``pgml_flow_ml``) or
    REPLICATION, is ``pgml_flow_ml`` or a predefined ``pg_*`` role, owns pgml-flow's
    relations or the database.
    """
    rows = conn.execute(_query("role_reach"), {"role": role}).fetchall()
    return [reason if via == role else f"through {via}: {reason}" for via, reason in rows]


def bi_logins(conn: psycopg.Connection, client_id: int | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("bi_roles"), {"client_id": client_id}).fetchall()


@dataclass(frozen=True)
class BiUrl:
    """How a client's BI tool connects: a TCP connection string for its login."""

    client_id: int
    login: str
    host: str
    port: int
    database: str
    sslmode: str
    #: whether the login has a password (TCP logins need one); None: unknown (only a
    #: superuser may look)
    password_set: bool | None
    #: ``postgresql://login[:password]@host:port/database?sslmode=...``; the password only
    #: when one was passed
    url: str


#: listen_addresses that name no one address a BI tool could connect to
_ANY_ADDRESS = frozenset({"", "*", "0.0.0.0", "::"})


def tcp_address(conn_host: str, conn_port: int, listen_addresses: str, server_port: int,
                host: str | None = None) -> tuple[str, int]:
    """Where a BI tool reaches the server: (host, port).

    Those of the connection pgml-flow uses when it is TCP; over a unix socket, the one
    address of the server's ``listen_addresses`` and its port. ``host`` overrides the host.
    """
    if conn_host and not conn_host.startswith(("/", "@")):
        return host or conn_host, conn_port
    if host is None:
        addresses = [a.strip() for a in listen_addresses.split(",")]
        if len(addresses) != 1 or addresses[0] in _ANY_ADDRESS:
            raise ConfigurationError(
                "pgml-flow reaches the server through a unix socket and its listen_addresses "
                f"({listen_addresses!r}) name no one address a BI tool could use; pass the "
                "host the BI tool should connect to with --host")
        host = addresses[0]
    return host, server_port


def bi_urls(conn: psycopg.Connection, client_id: int, *, password: str | None = None,
            host: str | None = None) -> list[BiUrl]:
    """The TCP connection string of each BI login of ``client_id``.

    Host and port: those of ``conn`` when it is a TCP connection (``DATABASE_URL``'s); over
    a unix socket (the embedded cluster's), the server's own ``listen_addresses`` (one
    address, such as 127.0.0.1) and ``port``. ``host`` overrides the host. sslmode: the
    one ``conn`` was given, else ``require`` when the server offers SSL, ``disable`` when
    it does not. The password appears only when passed.
    """
    if conn.execute(_query("client_exists"), {"client_id": client_id}).fetchone() is None:
        raise ClientNotFound(f"client {client_id} does not exist; see the clients table")
    logins = [login for login in bi_logins(conn, client_id) if login["role_exists"]]
    if not logins:
        raise ConfigurationError(
            f"client {client_id} has no BI login; create one with "
            f"`pgml-flow bi grant --client {client_id} --password ...`")
    with conn.cursor(row_factory=dict_row) as cur:
        server = cur.execute(_query("server_address")).fetchone()
    assert server is not None
    host, port = tcp_address(conn.info.host, conn.info.port, str(server["listen_addresses"]),
                             int(server["port"]), host)
    sslmode = conn.info.get_parameters().get("sslmode") or (
        "require" if server["ssl"] else "disable")
    superuser = conn.execute(_query("is_superuser")).fetchone()
    urls = []
    for login in logins:
        role = str(login["role_name"])
        password_set = None
        if superuser and superuser[0]:
            found = conn.execute(_query("role_password_set"), {"role": role}).fetchone()
            password_set = bool(found and found[0])
        secret = "" if password is None else ":" + quote(password, safe="")
        where = f"[{host}]" if ":" in host else host
        url = (f"postgresql://{quote(role, safe='')}{secret}@{where}:{port}/"
               f"{quote(str(server['database']), safe='')}?sslmode={sslmode}")
        urls.append(BiUrl(client_id, role, host, port, str(server["database"]), sslmode,
                          password_set, url))
    return urls


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
    # ok, LEAK, MISSING, READABLE, ERROR, NO RLS, NO POLICY, PRIVILEGED, UNSCOPED, DEFINER,
    # UNTRUSTED, SEARCH_PATH, WRITABLE, SETTABLE, PLACEHOLDER
    verdict: str
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


#: functions a BI login may call besides the set-returning functions of ``analytics`` (which
#: the audit calls): SECURITY DEFINER, but it only tells the caller its own client
BI_HELPERS = frozenset({"pgml_flow.current_client_id()"})
#: pgml settings any session may change, and why that is harmless
USER_SETTINGS = {"pgml.native_cache_mb": "a cache size of the caller's own backend",
                 "pgml_flow.client_id": "ignored for BI logins"}
#: settings that must be superuser-only even where PostgreSQL does not know them (pgml_native
#: absent): a path Python imports from, and the connection a server-side retrain runs as
GUARDED_SETTINGS = ("pgml.venv", "pgml_flow.loopback_conninfo")


def audit(conn: psycopg.Connection,
          progress: Callable[[str, int], None] | None = None) -> AuditReport:
    """Audit tenant isolation; see the module docstring.  Needs a superuser connection.

    For each mapped login it enumerates everything the login can reach — every relation
    and function outside the system catalogs it may use (through PUBLIC, any group or a
    direct grant), every table or schema it may write, every pgml setting it may change,
    every role it may become — and tests each as that login.  ``progress(role, logins)``
    is called after each login.
    """
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
        models = [r[0] for r in conn.execute(_query("registered_models")).fetchall()]
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
            for label, relation, scoped, surface in _reachable_relations(conn, role):
                if scoped:
                    report.checks.append(
                        _check_bi(conn, role, client_id, spoof, label, relation, surface))
                else:
                    report.checks.append(Check(
                        role, client_id, label, "bi", "UNSCOPED",
                        detail="readable by the login and has no client_id column, so nothing "
                               "shows it is limited to one client; revoke it"))
            report.checks.extend(_reachable_functions(conn, role, client_id, spoof, models))
            for label, relation in internals:
                report.checks.append(_check_internal(conn, role, client_id, label, relation))
            report.checks.extend(_writable(conn, role, client_id))
            report.checks.extend(_settings(conn, role, client_id))
            report.checks.append(_client_setting(conn, role, client_id, spoof))
            if progress:
                progress(role, len(logins))
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


def _reachable_relations(
    conn: psycopg.Connection, role: str
) -> list[tuple[str, sql.Composable, bool, bool]]:
    """(label, relation, has a client_id column, part of the BI surface) of what ``role`` reads."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_query("reachable_relations"), {"role": role}).fetchall()
    return [(f"{r['schema']}.{r['name']}", sql.Identifier(r["schema"], r["name"]),
             bool(r["has_client_id"]), bool(r["bi_surface"])) for r in rows]


def _reachable_functions(
    conn: psycopg.Connection, role: str, client_id: int, spoof: int, models: list[str]
) -> list[Check]:
    """Call the BI surface's set-returning functions; judge every other callable function."""
    with conn.cursor(row_factory=dict_row) as cur:
        functions = cur.execute(_query("reachable_functions"), {"role": role}).fetchall()
    checks = []
    for f in functions:
        signature = str(f["signature"])
        if f["definer"]:
            checks.append(_check_search_path(role, client_id, signature, f["search_path"]))
        # the BI surface: analytics, and the monitoring functions (sql/idempotent/400_monitoring)
        if f["schema"] in ("analytics", "monitoring") and f["set_returning"]:
            function = sql.Identifier(f["schema"], f["name"])
            if f["required_args"] == 0:
                checks.append(_check_bi(conn, role, client_id, spoof,
                                        f"{f['schema']}.{f['name']}()",
                                        sql.SQL("{}()").format(function), True))
                continue
            if f["required_args"] == 1 and f["first_arg"] == "model_name":
                for model in models:
                    checks.append(_check_bi(
                        conn, role, client_id, spoof, f"analytics.{f['name']}('{model}')",
                        sql.SQL("{}({})").format(function, sql.Literal(model)), True))
                continue
        if signature in BI_HELPERS:
            verdict, detail = "ok", ""
        elif f["definer"]:
            verdict, detail = "DEFINER", (
                "SECURITY DEFINER outside the audited BI surface: it runs with its owner's "
                "rights, so it may return any client's rows; revoke EXECUTE from the login")
        elif not f["trusted"] and f["language"] not in ("c", "internal"):
            verdict, detail = "UNTRUSTED", (
                f"written in the untrusted language {f['language']}: it can do anything the "
                "server's OS user can; revoke EXECUTE from the login")
        else:
            verdict, detail = "ok", ""  # runs with the login's rights: RLS applies
        checks.append(Check(role, client_id, signature, "function", verdict, detail=detail))
    return checks


def _check_search_path(role: str, client_id: int, signature: str,
                       search_path: str | None) -> Check:
    """A SECURITY DEFINER function must pin its search_path, with pg_temp last.

    Otherwise the caller chooses what its unqualified names mean: its own ``search_path``
    setting, or temporary tables and functions (every login may create them, and ``pg_temp``
    is searched first unless it is listed) shadow the objects the function meant, and run
    with the owner's rights, which read every client.
    """
    label = f"{signature} search_path"
    schemas = [s.strip().strip('"') for s in (search_path or "").split(",") if s.strip()]
    if schemas and schemas[-1] == "pg_temp":
        return Check(role, client_id, label, "function", "ok")
    why = ("has no fixed search_path (SET search_path = pg_catalog, pg_temp)"
           if not schemas else f"search_path {search_path!r} does not end with pg_temp")
    return Check(role, client_id, label, "function", "SEARCH_PATH",
                 detail=f"SECURITY DEFINER and {why}: the caller's search_path or temporary "
                        "objects choose what it reads with its owner's rights")


def _client_setting(conn: psycopg.Connection, role: str, client_id: int,
                    spoof: int) -> Check:
    """The setting that names a client (``pgml_flow.client_id``) must not move a login.

    As the login, with the setting naming another client (set the way a BI tool could:
    ``set_config`` in its own session), ``pgml_flow.current_client_id()``, which every
    policy and analytics function trusts, must still be the login's own client.
    """
    label = "setting pgml_flow.client_id (naming another client)"
    try:
        with conn.transaction():
            _as_role(conn, role)
            conn.execute(_query("set_admin_client"), {"client_id": str(spoof)})
            row = conn.execute(_query("caller_client")).fetchone()
            conn.execute(_query("reset_session_authorization"))
    except psycopg.Error as exc:
        return Check(role, client_id, label, "setting", "ERROR",
                     detail=str(exc).strip().splitlines()[0])
    seen = row[0] if row else None
    if seen == client_id:
        return Check(role, client_id, label, "setting", "ok")
    return Check(role, client_id, label, "setting", "LEAK",
                 other_clients=(int(seen),) if seen is not None else (),
                 detail=f"with pgml_flow.client_id = {spoof} the login resolves to client "
                        f"{seen}, not {client_id}")


def _writable(conn: psycopg.Connection, role: str, client_id: int) -> list[Check]:
    rows = conn.execute(_query("writable_objects"), {"role": role}).fetchall()
    if not rows:
        return [Check(role, client_id, "(no table or schema writable)", "privilege", "ok")]
    return [Check(role, client_id, str(obj), "privilege", "WRITABLE",
                  detail=f"the login has {privilege} privileges on it; BI logins write nothing")
            for obj, privilege in rows]


def _settings(conn: psycopg.Connection, role: str, client_id: int) -> list[Check]:
    """Every pgml setting the login could change must be harmless; the guarded ones defined."""
    known = {str(n): str(c) for n, c in conn.execute(_query("pgml_settings")).fetchall()}
    checks = []
    for name in sorted(set(known) | set(GUARDED_SETTINGS)):
        label = f"setting {name}"
        if name in USER_SETTINGS:
            checks.append(Check(role, client_id, label, "setting", "ok",
                                detail=f"user-settable: {USER_SETTINGS[name]}"))
            continue
        if name not in known:
            checks.append(Check(role, client_id, label, "setting", "PLACEHOLDER",
                                detail="PostgreSQL does not know it, so any session may set it; "
                                       "preload pgml_native (shared_preload_libraries)"))
            continue
        row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        value = str(row[0]) if row else ""
        try:
            with conn.transaction():
                _as_role(conn, role)
                conn.execute(_query("try_setting"), {"name": name, "value": value})
                conn.execute(_query("reset_session_authorization"))
        except psycopg.errors.InsufficientPrivilege:
            checks.append(Check(role, client_id, label, "setting", "ok"))
            continue
        except psycopg.Error as exc:
            checks.append(Check(role, client_id, label, "setting", "ERROR",
                                detail=str(exc).strip().splitlines()[0]))
            continue
        checks.append(Check(role, client_id, label, "setting", "SETTABLE",
                            detail=f"context {known[name]}: the login may change it"))
    return checks


def _internal_objects(conn: psycopg.Connection) -> list[tuple[str, sql.Composable]]:
    return [(f"{schema}.{name}", sql.Identifier(schema, name))
            for schema, name in conn.execute(_query("internal_relations")).fetchall()]


def _role_privileges(
    conn: psycopg.Connection, report: AuditReport, role: str, client_id: int
) -> None:
    reasons = privileged_reasons(conn, role)
    for reason in reasons:
        report.checks.append(Check(role, client_id, "(role)", "privilege", "PRIVILEGED",
                                   detail=reason))
    if not reasons:
        report.checks.append(Check(role, client_id, "(role and its memberships)", "privilege",
                                   "ok"))
    with conn.cursor(row_factory=dict_row) as cur:
        facts = cur.execute(_query("role_privileges"), {"role": role}).fetchone()
    assert facts is not None
    for key, label in (("pgml_usage", "schema pgml"),
                       ("training_usage", "schema pgml_flow_training")):
        verdict = "PRIVILEGED" if facts[key] else "ok"
        report.checks.append(Check(role, client_id, label, "internal", verdict,
                                   detail="the login must not have this" if facts[key] else ""))


def _as_role(conn: psycopg.Connection, role: str) -> None:
    conn.execute(_template("set_session_authorization", role=sql.Identifier(role)))


def _check_bi(
    conn: psycopg.Connection, role: str, client_id: int, spoof: int, label: str,
    relation: sql.Composable, surface: bool,
) -> Check:
    """Count rows per client as the login (while it tries to pick ``spoof``) and as an admin.

    LEAK when the login sees another client's rows; on the BI surface (``surface``), MISSING
    when it sees fewer of its own than an admin does.
    """
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
    elif surface and own < expected:
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
