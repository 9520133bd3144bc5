"""The training summary view: content, and refreshing it without blocking readers."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from pgml_flow.app import PgmlFlow

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
def seeded(flow: PgmlFlow) -> PgmlFlow:
    flow.seed(clients=2, issues=1500, seed=7, as_of=AS_OF)
    return flow


def test_summary_matches_the_tables(seeded: PgmlFlow, conn: psycopg.Connection) -> None:
    rows = {(r["client_id"], r["model_type"]): r for r in seeded.training_summary()}
    assert {key[1] for key in rows} == {"trajectory", "complexity", "rework"}
    assert {key[0] for key in rows} == {1, 2}
    for client in (1, 2):
        rate, merged = conn.execute(
            """SELECT avg((review_cycles > 2 OR rework_commit_count > 3)::int)::float8, count(*)
                 FROM pull_requests WHERE client_id = %s AND active AND merged_at IS NOT NULL""",
            (client,),
        ).fetchone()
        rework = rows[(client, "rework")]
        assert rework["training_records"] == merged
        assert rework["target_avg"] == pytest.approx(rate)
        epics = conn.execute(
            """SELECT count(*) FROM issues i JOIN issuetypes t USING (client_id, issuetype_id)
                WHERE i.client_id = %s AND t.original_name = 'Epic'
                  AND i.total_lead_time_seconds > 0""",
            (client,),
        ).fetchone()
        assert rows[(client, "trajectory")]["training_records"] == epics[0]
        assert rows[(client, "complexity")]["latest_data"] <= AS_OF


def test_concurrent_refresh_does_not_wait_for_readers(seeded: PgmlFlow, db_url: str) -> None:
    with psycopg.connect(db_url) as reader, psycopg.connect(db_url, autocommit=True) as writer:
        # The reader holds the view open inside a transaction (AccessShareLock) and a
        # snapshot (REPEATABLE READ), as a long dashboard query would.
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        before = reader.execute("SELECT count(*) FROM mv_ml_training_summary").fetchone()
        writer.execute("SET lock_timeout = '3s'")
        writer.execute("INSERT INTO clients (client_id, name, slug) VALUES (99, 'New', 'new_99')")
        writer.execute(
            "INSERT INTO repositories (client_id, repository_id, name, created_at) "
            "VALUES (99, 1, 'r', now())"
        )
        writer.execute(
            """INSERT INTO pull_requests (client_id, pull_request_id, repository_id, number,
                   title, author_id, created_at, merged_at, state)
               VALUES (99, 1, 1, 1, 't', 1, now(), now(), 'merged')"""
        )
        writer.execute("SELECT pgml_flow.refresh_training_summary()")  # would time out if blocked
        # The reader keeps reading while the refresh commits.
        during = reader.execute("SELECT count(*) FROM mv_ml_training_summary").fetchone()
        reader.commit()
        after = reader.execute("SELECT count(*) FROM mv_ml_training_summary").fetchone()
    assert before == during
    assert after[0] == before[0] + 1


def test_plain_refresh_would_block_the_reader(seeded: PgmlFlow, db_url: str) -> None:
    """The control for the test above: without CONCURRENTLY the refresh has to wait."""
    with psycopg.connect(db_url) as reader, psycopg.connect(db_url, autocommit=True) as writer:
        reader.execute("SELECT count(*) FROM mv_ml_training_summary").fetchone()
        writer.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            writer.execute("SELECT pgml_flow.refresh_training_summary(false)")
        reader.rollback()


def test_readers_see_old_rows_while_a_refresh_runs(seeded: PgmlFlow, db_url: str) -> None:
    """A slow concurrent refresh in one session; another keeps reading without waiting."""
    done = threading.Event()

    def refresh() -> None:
        with psycopg.connect(db_url, autocommit=True) as writer, writer.transaction():
            writer.execute("SELECT pgml_flow.refresh_training_summary()")
            writer.execute("SELECT pg_sleep(1.5)")  # keep the refresh's locks held
        done.set()

    thread = threading.Thread(target=refresh)
    thread.start()
    with psycopg.connect(db_url, autocommit=True) as reader:
        reader.execute("SET lock_timeout = '500ms'")
        reads = 0
        while not done.is_set():
            assert reader.execute("SELECT count(*) FROM mv_ml_training_summary").fetchone()[0] > 0
            reads += 1
    thread.join()
    assert reads > 3
