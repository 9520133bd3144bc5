"""Test fixtures: a real PostgreSQL server, one fresh database per test.

The embedded cluster (the same one ``pgml-flow db start`` manages) is started once
per session; a template database is migrated to head once; every test that asks
for ``db_url`` gets ``CREATE DATABASE ... TEMPLATE`` of it, dropped afterwards, so
commits, locks and REFRESH behave exactly as in production.  Set DATABASE_URL to
run the suite against an external server instead (the role needs CREATEDB).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgml_flow.app import PgmlFlow
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.settings import Settings
from pgml_flow.shared import shared_path
from tests.citus_fixture import citus_cluster, citus_url  # noqa: F401  (session fixtures)


def shared_datasets() -> Path:
    """The public datasets (``../shared/datasets``, :func:`pgml_flow.shared.shared_path`);
    ``PGML_FLOW_DATASETS`` names another folder.  Read at run time, never copied."""
    if "PGML_FLOW_DATASETS" in os.environ:
        return Path(os.environ["PGML_FLOW_DATASETS"])
    return shared_path("datasets")


#: the migrated template; PGML_FLOW_TEST_TEMPLATE names another, so that two test runs can share
#: one server without dropping each other's template
TEMPLATE = os.environ.get("PGML_FLOW_TEST_TEMPLATE", "pgmlflow_test_template")




@pytest.fixture(scope="session")
def base_flow() -> PgmlFlow:
    """pgml-flow bound to the session's server (started if embedded)."""
    flow = PgmlFlow()
    if not flow.settings.external:
        flow.start_database()
    return flow


@pytest.fixture(scope="session")
def admin_url(base_flow: PgmlFlow) -> str:
    return with_dbname(base_flow.url, "postgres")


@pytest.fixture(scope="session")
def template_url(base_flow: PgmlFlow, admin_url: str) -> Iterator[str]:
    recreate_database(admin_url, TEMPLATE)
    url = with_dbname(admin_url, TEMPLATE)
    flow_for(url).upgrade()
    yield url


def flow_for(url: str) -> PgmlFlow:
    """A PgmlFlow bound to one database URL."""
    return PgmlFlow(dataclasses.replace(Settings.from_env(), database_url=url))


@pytest.fixture
def empty_db_url(admin_url: str) -> Iterator[str]:
    """A brand-new database with no pgml-flow schema."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    recreate_database(admin_url, name)
    yield with_dbname(admin_url, name)
    drop_database(admin_url, name)


@pytest.fixture
def db_url(admin_url: str, template_url: str) -> Iterator[str]:
    """A fresh database at the head schema revision, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    recreate_database(admin_url, name, template=TEMPLATE)
    yield with_dbname(admin_url, name)
    drop_database(admin_url, name)


@pytest.fixture
def flow(db_url: str) -> PgmlFlow:
    return flow_for(db_url)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as connection:
        yield connection


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for running the real ``pgml-flow`` command in a subprocess."""
    env = dict(os.environ)
    env.pop("PGML_FLOW_DEBUG", None)
    return env


#: the date the seeded data of ``trained_template`` ends at
AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def trained_template(admin_url: str, template_url: str) -> Iterator[str]:
    """A database seeded with two clients, the three built-in models trained for each."""
    name = f"test_trained_{uuid.uuid4().hex[:8]}"
    recreate_database(admin_url, name, template=TEMPLATE)
    try:
        flow = flow_for(with_dbname(admin_url, name))
        flow.seed(clients=2, issues=1500, seed=7, as_of=AS_OF)
        flow.train(["trajectory", "complexity", "rework"])
        yield name
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def tflow(admin_url: str, trained_template: str) -> Iterator[PgmlFlow]:
    """PgmlFlow on a fresh copy of ``trained_template``."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    recreate_database(admin_url, name, template=trained_template)
    yield flow_for(with_dbname(admin_url, name))
    drop_database(admin_url, name)


@pytest.fixture
def bi_flow(tflow: PgmlFlow) -> Iterator[PgmlFlow]:
    """The trained copy with a BI login per client (revoked after: roles are cluster-wide)."""
    tflow.grant_bi_access()
    try:
        yield tflow
    finally:
        tflow.revoke_bi_access()


def as_client(url: str, client_id: int) -> psycopg.Connection:
    """A connection as the client's BI login (what a BI tool gets)."""
    conn = psycopg.connect(url, autocommit=True)
    row = conn.execute("SELECT role_name FROM client_bi_roles WHERE client_id = %s",
                       (client_id,)).fetchone()
    assert row, f"client {client_id} has no BI login: use the bi_flow fixture"
    conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(row[0])))
    return conn
