"""The suite's Citus cluster: a coordinator and two workers, migrated and seeded once.

Session fixtures, registered in tests/conftest.py so that every module that asks for them
(tests/test_citus.py, the model-placement and rebalancing tests) shares one cluster:
started under a scratch directory right under /tmp (the unprivileged server user must
reach it; pytest's own tmp directories are private to root), stopped and deleted at the
end of the session. Citus is built from the vendored source first when the server lacks
it (pgml_flow.citus_build), as `pgml-flow db cluster start` does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from collections.abc import Iterator

import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.citus_cluster import CitusCluster
from tests.scratch import own_cluster_settings

#: clients the cluster is seeded with, and their issues each (small: the data only has to
#: land on both workers; 6 clients over 8 shards do)
CITUS_CLIENTS = 6
CITUS_ISSUES = 100
CITUS_AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[CitusCluster]:
    """A local coordinator and two workers, joined (``db cluster start --workers 2``)."""
    home, settings = own_cluster_settings("pgml-flow-citus-")
    flow = PgmlFlow(settings)
    try:
        flow.start_citus(2)
        yield flow.citus
    finally:
        flow.citus.stop(immediate=True)
        # three data directories of many small shard files: removed in the background (15 s
        # on a busy disk), the session does not wait for it
        subprocess.Popen(["rm", "-rf", str(home)], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def citus_url(citus_cluster: CitusCluster) -> str:
    """The coordinator's database at head, seeded with 6 clients: shared by the session's
    Citus tests, which leave it at head."""
    url = citus_cluster.url()
    flow = PgmlFlow(dataclasses.replace(citus_cluster.settings, database_url=url))
    flow.upgrade()
    flow.seed(clients=CITUS_CLIENTS, issues=CITUS_ISSUES, seed=5, as_of=CITUS_AS_OF)
    return url
