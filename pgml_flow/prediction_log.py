"""Retention of the prediction log (``ml_prediction_log``): status and prune.

What a BI read logs, and what a prune deletes, is decided in SQL
(``sql/idempotent/250_prediction_log.sql``): a read logs a sample of its predictions, once
per unchanged prediction, under the client's hourly cap; ``pgml_flow.prune_prediction_log``
deletes each client's rows older than its ``retention_days`` and beyond its newest
``max_rows``, in batches it commits one by one.  This module runs those for the CLI
(``pgml-flow log``) and the scheduler's ``prune:public.ml_prediction_log`` job; pg_cron
calls the procedure directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgml_flow import sqlfiles
from pgml_flow.errors import ConfigurationError

SOURCE = "prediction_log"
#: rows deleted per committed batch
BATCH_SIZE = 5000


def _query(name: str) -> str:
    return sqlfiles.query(name, SOURCE)


def status(conn: psycopg.Connection,
           client_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Per client: rows, bytes, oldest, what a prune would delete, limits and usage."""
    ids = list(client_ids) if client_ids is not None else None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_query("status"), {"client_ids": ids}).fetchall()


def prune(conn: psycopg.Connection, client_ids: Sequence[int] | None = None, *,
          batch_size: int = BATCH_SIZE, dry_run: bool = False) -> list[dict[str, Any]]:
    """Delete each client's expired and over-size rows; per client, ``deleted``.

    ``conn`` must be in autocommit (the procedure commits after each batch).  With
    ``dry_run``, nothing is deleted: the rows are those of :func:`status` (``expired_rows``
    and ``over_size_rows`` say what would go) with ``deleted`` None.
    """
    if batch_size < 1:
        raise ConfigurationError(f"the batch size must be at least 1, got {batch_size}")
    ids = list(client_ids) if client_ids is not None else None
    if dry_run:
        return [{**row, "deleted": None} for row in status(conn, ids)]
    if not conn.autocommit:
        raise ConfigurationError("pruning the prediction log commits after each batch: "
                                 "use a connection in autocommit mode")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_query("clients"), {"client_ids": ids}).fetchall()
    for row in rows:
        done = conn.execute(_query("prune"), {"client_id": row["client_id"],
                                              "batch_size": batch_size}).fetchone()
        row["deleted"] = int(done[0]) if done and done[0] is not None else 0
    return rows
