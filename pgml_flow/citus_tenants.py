"""Tenants on a Citus cluster: a client's training runs on the node that holds its rows.

On Citus every per-client table is distributed by ``client_id`` and co-located, so all of
one client's rows are in one shard group, on one worker. Training there reads them locally
(no rows cross the network) and spreads the clients' fits over the workers instead of the
coordinator's cores; the model lands in the ``pgml`` reference tables, present on every
node (``sql/idempotent/055_citus_pgml.sql``), so ``pgml.predict`` finds it on whichever
node a one-client query is routed to, before and after a rebalance.

:func:`route` groups clients by the node holding their shard and gives the connection
string of that node: the coordinator's own (same role, database and password) with the
node's host and port from ``pg_dist_node``, which only a superuser can write (a
non-superuser never chooses where pgml-flow connects). On a plain server it is one group:
the server itself. The worker connection turns off Citus's DDL propagation for its
session: the client's training view (``pgml_flow_training.<model>__client_<id>``) is then
created on that worker only, where the training reads it, instead of being refused
("operation is not allowed on this node"). It also runs multi-shard commands over one
connection per node (``citus.multi_shard_modify_mode=sequential``): a training that read
several shards in parallel (the trajectory features do) could not write the ``pgml``
reference tables in the same transaction afterwards ("cannot modify table projects because
there was a parallel operation on a distributed table"). And its writes to the ``pgml``
reference tables take row locks only (``citus.all_modifications_commutative=on``): by
default an UPDATE or DELETE of a reference table locks the whole table cluster-wide
(ExclusiveLock on its shard) until the transaction ends, so two trainings that had each
inserted a project (RowExclusiveLock) and then updated it (``touch_project``) deadlocked,
and every training on every node would wait for the one in hand. A training writes its
own project's rows only, and one project is not trained by two runs at once (the run's
advisory lock, the scheduler's job lock): the writes commute, and the replicas cannot
diverge, since row locks are held on every placement until the two-phase commit. The
caller registers the specs on the coordinator
first (``training.register``), whose DDL (the feature view's grant) reaches every node.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgml_flow import isolation, sqlfiles
from pgml_flow.errors import ConfigurationError
from pgml_flow.isolation import AuditReport, Check

SOURCE = "citus_tenants"
logger = logging.getLogger(__name__)
#: options of a connection that trains on a worker (see the module docstring)
WORKER_OPTIONS = ("-c citus.enable_ddl_propagation=off "
                  "-c citus.multi_shard_modify_mode=sequential "
                  "-c citus.all_modifications_commutative=on")


@dataclass(frozen=True)
class NodeGroup:
    """Clients whose shard is on one node, and how to connect there."""

    #: the node's host (or unix socket directory) and port; None: the server itself
    node: tuple[str, int] | None
    url: str
    client_ids: list[int]

    @property
    def label(self) -> str:
        return "the server" if self.node is None else f"{self.node[0]}:{self.node[1]}"


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def is_citus(conn: psycopg.Connection) -> bool:
    """Whether ``conn`` is a Citus coordinator with at least one active worker."""
    row = conn.execute(_query("has_citus")).fetchone()
    if not (row and row[0]):
        return False
    row = conn.execute(_query("active_workers")).fetchone()
    return bool(row and row[0])


def node_url(url: str, host: str, port: int) -> str:
    """``url`` (a URL or key=value string) with another host and port, and the options of
    a worker connection."""
    params: dict[str, Any] = conninfo_to_dict(url)
    params.update(host=host, port=str(port))
    params["options"] = " ".join(str(o) for o in (params.get("options"), WORKER_OPTIONS) if o)
    return make_conninfo("", **params)


def client_nodes(conn: psycopg.Connection, client_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """The node holding each client's shard (clients without one are left out)."""
    rows = conn.execute(_query("client_nodes"), {"client_ids": list(client_ids)}).fetchall()
    return {int(cid): (str(host), int(port)) for cid, host, port in rows}


def route(conn: psycopg.Connection, url: str, client_ids: Sequence[int]) -> list[NodeGroup]:
    """The clients grouped by the node holding their rows, in the order of ``client_ids``'
    first client of each node; one group with ``url`` on a plain server."""
    if not is_citus(conn):
        conn.rollback()
        return [NodeGroup(None, url, list(client_ids))]
    nodes = client_nodes(conn, client_ids)
    conn.rollback()
    groups: dict[tuple[str, int] | None, list[int]] = {}
    for cid in client_ids:
        # a client id with no shard yet (no such client): the coordinator says so
        groups.setdefault(nodes.get(cid), []).append(cid)
    return [NodeGroup(node, url if node is None else node_url(url, *node), ids)
            for node, ids in groups.items()]


def rebalance(conn: psycopg.Connection) -> dict[tuple[str, int], int]:
    """Move shards until every worker holds about as many (``citus_rebalance_start``,
    then wait for its background job); the shards of ``issues``' co-location group per
    node afterwards. Reads go on during the moves: a client's rows stay readable at their
    old place until the switch, and its models need no copy (reference tables)."""
    conn.execute(_query("sync_nodes"))
    conn.commit()
    conn.execute(_query("rebalance_start"))
    conn.commit()
    conn.execute(_query("rebalance_wait"))
    conn.commit()
    rows = conn.execute(_query("shard_moves")).fetchall()
    conn.rollback()
    return {(str(host), int(port)): int(n) for host, port, n in rows}


def nodes(conn: psycopg.Connection) -> list[tuple[str, str, int]]:
    """Every active node, the coordinator first: (label, host, port)."""
    rows = conn.execute(_query("all_nodes")).fetchall()
    conn.rollback()
    return [(str(label), str(host), int(port)) for label, host, port in rows]


def login_url(url: str, host: str, port: int, role: str) -> str:
    """A connection string for ``role`` on a node: the host, port and database of the
    cluster, none of the migrating role's credentials (a BI login has its own)."""
    params: dict[str, Any] = conninfo_to_dict(url)
    for key in ("password", "passfile", "options", "sslcert", "sslkey"):
        params.pop(key, None)
    params.update(host=host, port=str(port), user=role)
    return make_conninfo("", **params)


def audit_nodes(conn: psycopg.Connection, url: str,
                progress: Callable[[str, int], None] | None = None,
                client_ids: Iterable[int] | None = None) -> AuditReport:
    """Tenant isolation on every node of a Citus cluster, tested as each BI login.

    The catalog audit (:func:`pgml_flow.isolation.audit`) switches roles inside one
    transaction, which Citus refuses once a placement was touched by another role, and
    reads the analytics views without naming a client, which Citus cannot plan for every
    view; so on Citus each login logs in itself, on the coordinator and on every worker
    (a tenant may connect straight to a worker), and for everything it may read that has
    a client_id column checks: a table shows its own client's rows only (LEAK otherwise);
    a view, read for its own client (the routed query BI tools send), shows those rows
    (MISSING when fewer than an admin sees) and, read for another client, nothing; the
    pgml internals and training views are unreadable (READABLE); and naming another
    client in ``pgml_flow.client_id`` does not change who it is (LEAK). A relation that is
    not on a node (the training summary is the coordinator's) is skipped there.
    ``client_ids``: audit these clients' logins only.
    """
    report = AuditReport()
    wanted = None if client_ids is None else set(client_ids)
    logins = [login for login in isolation.bi_logins(conn)
              if wanted is None or int(login["client_id"]) in wanted]
    if not logins:
        raise ConfigurationError("no BI logins to audit; create them with "
                                 "`pgml-flow bi grant --all`")
    clients = sorted({int(login["client_id"]) for login in logins})
    internals = [(str(a), str(b)) for a, b in conn.execute(_query("internal_relations"))]
    conn.rollback()
    for login in logins:
        role, client_id = str(login["role_name"]), int(login["client_id"])
        other = next((c for c in clients if c != client_id), client_id + 1)
        relations = [((str(a), str(b)), bool(v)) for a, b, v in
                     conn.execute(_query("login_relations"), {"role": role})]
        expected = {rel: _count(conn, rel, client_id, admin=True)
                    for rel, is_view in relations if is_view}
        conn.rollback()
        for label, host, port in nodes(conn):
            report.checks.extend(_audit_login(url, label, host, port, role, client_id, other,
                                              relations, expected, internals))
        if progress:
            progress(role, len(logins))
    return report


def _count(conn: psycopg.Connection, relation: tuple[str, str], client_id: int, *,
           admin: bool = False) -> int:
    """Rows of ``relation`` for one client (as an admin: with pgml_flow.client_id set, by
    a SET LOCAL that Citus passes on to the node the query is routed to: a session's own
    settings stay on the node it is connected to)."""
    if admin:
        conn.execute(_query("propagate_set_local"))
        conn.execute(sql.SQL("SET LOCAL pgml_flow.client_id = {}").format(
            sql.Literal(str(client_id))))
    query = sql.SQL("SELECT count(*) FROM {} WHERE client_id = %(c)s").format(
        sql.Identifier(*relation))
    row = conn.execute(query, {"c": client_id}).fetchone()
    return int(row[0]) if row else 0


def _audit_login(url: str, node: str, host: str, port: int, role: str, client_id: int,
                 other: int, relations: list[tuple[tuple[str, str], bool]],
                 expected: dict[tuple[str, str], int],
                 internals: list[tuple[str, str]]) -> list[Check]:
    checks: list[Check] = []

    def check(obj: tuple[str, str] | str, verdict: str, detail: str = "",
              rows: int | None = None, want: int | None = None,
              others: tuple[int, ...] = ()) -> None:
        label = obj if isinstance(obj, str) else ".".join(obj)
        checks.append(Check(role, client_id, f"{node}: {label}", "bi", verdict, rows, want,
                            others, detail))

    def here(relation: tuple[str, str]) -> bool:
        row = conn.execute(_query("exists_here"),
                           {"schema": relation[0], "name": relation[1]}).fetchone()
        return bool(row and row[0])

    try:
        conn = psycopg.connect(login_url(url, host, port, role), autocommit=True,
                               connect_timeout=10)
    except psycopg.OperationalError as exc:
        check("(login)", "ERROR", f"cannot log in as {role} on {host}:{port}: "
              f"{str(exc).strip().splitlines()[0]}; the audit logs in as each BI login on "
              "every node (a password in PGPASSWORD or ~/.pgpass, or trusted local sockets)")
        return checks
    with conn:
        for relation, is_view in relations:
            name = sql.Identifier(*relation)
            if not here(relation):
                continue
            try:
                if is_view:
                    own = _count(conn, relation, client_id)
                    foreign = _count(conn, relation, other)
                    if foreign:
                        check(relation, "LEAK", f"shows {foreign} rows of client {other}",
                              foreign, 0, (other,))
                    elif own < expected.get(relation, 0):
                        check(relation, "MISSING", f"sees {own} of its "
                              f"{expected[relation]} rows", own, expected[relation])
                    else:
                        check(relation, "ok", rows=own, want=expected.get(relation))
                    continue
                seen = conn.execute(sql.SQL(
                    "SELECT client_id, count(*) FROM {} GROUP BY 1").format(name)).fetchall()
                leaked = tuple(sorted(int(c) for c, _ in seen if c != client_id))
                rows = sum(int(n) for _, n in seen)
                check(relation, "LEAK" if leaked else "ok",
                      f"also sees clients {list(leaked)}" if leaked else "", rows,
                      others=leaked)
            except psycopg.Error as exc:
                check(relation, "ERROR", str(exc).strip().splitlines()[0])
        for relation in internals:
            label = f"{node}: {'.'.join(relation)}"
            try:
                conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(
                    sql.Identifier(*relation))).fetchall()
                checks.append(Check(role, client_id, label, "internal", "READABLE",
                                    detail="a BI login can read it"))
            except psycopg.errors.InsufficientPrivilege:
                checks.append(Check(role, client_id, label, "internal", "ok"))
            except psycopg.errors.UndefinedTable:
                continue  # a client's training view is on the node that trained it
            except psycopg.Error as exc:
                checks.append(Check(role, client_id, label, "internal", "ERROR",
                                    detail=str(exc).strip().splitlines()[0]))
        try:
            conn.execute(_query("try_other_client"), {"client_id": str(other)})
            row = conn.execute(_query("login_client_id")).fetchone()
            resolved = None if row is None or row[0] is None else int(row[0])
            check("pgml_flow.current_client_id()",
                  "ok" if resolved == client_id else "LEAK",
                  "" if resolved == client_id else
                  f"with pgml_flow.client_id = {other} it says {resolved}")
        except psycopg.Error as exc:
            check("pgml_flow.current_client_id()", "ERROR", str(exc).strip().splitlines()[0])
    return checks


def per_group(groups: Sequence[NodeGroup],
              run: Callable[[NodeGroup, Callable[[R], None] | None], Sequence[R]],
              progress: Callable[[R], None] | None = None) -> list[Sequence[R]]:
    """``run(group, progress)`` for every node group at once, one thread each (the work is
    in the nodes' backends: the threads only wait), the results in the groups' order.

    Each node trains its own clients, so N workers retrain N clients at a time where one
    thread per cluster would keep one node busy at a time. ``progress`` is called under a
    lock (one line at a time). Every group finishes; then the first group's error, if
    any, is raised (the others are logged), as a run on one server raises its first."""
    if len(groups) <= 1:
        return [run(group, progress) for group in groups]
    lock = threading.Lock()

    def report(result: R) -> None:
        if progress is not None:
            with lock:
                progress(result)

    outcomes: list[Sequence[R]] = [[] for _ in groups]
    errors: dict[int, BaseException] = {}

    def work(index: int) -> None:
        try:
            outcomes[index] = run(groups[index], report if progress else None)
        except BaseException as exc:  # raised below, once every group is done
            errors[index] = exc

    threads = [threading.Thread(target=work, args=(n,), name=f"pgml-flow-node-{n + 1}",
                                daemon=True) for n in range(len(groups))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        first = min(errors)
        for index, exc in sorted(errors.items()):
            if index != first:
                logger.warning("retraining on %s failed: %s", groups[index].label,
                               str(exc).strip().splitlines()[0] if str(exc).strip()
                               else repr(exc), extra={"action": "retrain_node_failed"})
        raise errors[first]
    return outcomes


class _PerClient(Protocol):
    @property
    def client_id(self) -> int: ...


R = TypeVar("R", bound=_PerClient)


def in_order(results: Sequence[Sequence[R]], client_ids: Sequence[int]) -> list[R]:
    """The results of each group (each in its clients' order) back in ``client_ids`` order,
    as a run on one server gives them."""
    by_client: dict[int, list[R]] = {}
    for outcome in results:
        for result in outcome:
            by_client.setdefault(int(result.client_id), []).append(result)
    return [r for cid in dict.fromkeys(client_ids) for r in by_client.get(cid, [])]
