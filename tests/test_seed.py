"""The synthetic tenants: deterministic, referentially sound, and learnable per client."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError, ReplaceRefused
from pgml_flow.seed import ClientProfile, generate_client
from pgml_flow.seed import seed as run_seed
from tests.conftest import flow_for

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parent.parent

CONTENT_HASH = """
SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (
  SELECT client_id, issue_id, issue_key, issuetype_id, parent_issue_id, story_points, created,
         work_first_started_at, work_last_completed_at, total_lead_time_seconds, status,
         priority, components, title, description FROM issues
  UNION ALL
  SELECT client_id, pull_request_id, title, repository_id, issue_id, review_cycles, created_at,
         merged_at, first_review_at, additions, state, '', '{}', '', '' FROM pull_requests
) t
"""


def test_generation_is_deterministic() -> None:
    def draw(seed: int) -> dict[str, list[str]]:
        rng = np.random.default_rng((seed, 3))
        return generate_client(ClientProfile.draw(3, rng), 400, AS_OF, rng).issues

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_same_seed_same_database_content(db_url: str, empty_db_url: str) -> None:
    other = flow_for(empty_db_url)
    other.upgrade()
    for url in (db_url, empty_db_url):
        flow_for(url).seed(clients=2, issues=600, seed=11, as_of=AS_OF)
    with psycopg.connect(db_url) as a, psycopg.connect(empty_db_url) as b:
        assert a.execute(CONTENT_HASH).fetchone() == b.execute(CONTENT_HASH).fetchone()


def test_reseeding_replaces_a_client(flow: PgmlFlow, conn: psycopg.Connection) -> None:
    """On an external database (the tests' databases are), even a synthetic client is
    replaced only with replace=True."""
    first_report = flow.seed(clients=1, issues=300, seed=1, as_of=AS_OF)
    assert first_report.replaced == ()
    first = conn.execute("SELECT count(*) FROM issues").fetchone()
    conn.commit()
    with pytest.raises(ReplaceRefused, match=r"client 1 'Acme' \(synthetic\): 300 issues"):
        flow.seed(clients=1, issues=300, seed=1, as_of=AS_OF)
    report = flow.seed(clients=1, issues=300, seed=1, as_of=AS_OF, replace=True)
    assert [c.client_id for c in report.replaced] == [1]
    assert conn.execute("SELECT count(*) FROM issues").fetchone() == first


def test_synthetic_clients_are_replaced_without_asking_on_the_embedded_database(
        flow: PgmlFlow, conn: psycopg.Connection) -> None:
    """What PgmlFlow.seed does when DATABASE_URL is unset (replace_synthetic=True)."""
    flow.seed(clients=2, issues=100, seed=1, as_of=AS_OF)
    assert conn.execute("SELECT bool_and(synthetic) FROM clients").fetchone() == (True,)
    # a model of the second client: its deletion came after the first client's fast-path
    # load, whose SET LOCAL session_replication_role = replica (no cascades) outlived it
    conn.execute("CREATE TABLE points AS SELECT g::real AS x, 2 * g::real AS y "
                 "FROM generate_series(1, 40) g")
    conn.execute("SELECT * FROM pgml.train('complexity__client_2', 'regression', 'points', 'y')")
    conn.commit()
    report = run_seed(conn, clients=2, issues=120, seed=2, as_of=AS_OF, replace_synthetic=True)
    assert [c.client_id for c in report.replaced] == [1, 2]
    assert conn.execute("SELECT count(*) FROM issues").fetchone() == (240,)
    assert conn.execute("SELECT (SELECT count(*) FROM pgml.projects)"
                        " + (SELECT count(*) FROM pgml.models)"
                        " + (SELECT count(*) FROM pgml.deployments)").fetchone() == (0,)


def _real_client(conn: psycopg.Connection) -> None:
    """Client 1 as a real tenant: 2 issues, 1 pull request, 1 logged prediction, 1 retraining
    event, 1 model (project complexity__client_1), a BI login; not synthetic."""
    conn.execute("INSERT INTO clients (client_id, name, slug, ml_enabled) "
                 "VALUES (1, 'Real Co', 'real_co', false)")
    conn.execute("INSERT INTO issuetypes (client_id, issuetype_id, original_name) "
                 "VALUES (1, 1, 'Story')")
    conn.execute("INSERT INTO repositories (client_id, repository_id, name, created_at) "
                 "VALUES (1, 1, 'core', now())")
    conn.execute("INSERT INTO issues (client_id, issue_id, issue_key, issuetype_id, created, "
                 "updated, status, status_category, priority, title, story_points) "
                 "SELECT 1, i, 'REAL-' || i, 1, now(), now(), 'To Do', 'todo', 'Medium', "
                 "'Do it', 3 FROM generate_series(1, 2) i")
    conn.execute("INSERT INTO pull_requests (client_id, pull_request_id, repository_id, "
                 "issue_id, number, title, author_id, created_at, state) "
                 "VALUES (1, 1, 1, 1, 1, 'fix', 1, now(), 'open')")
    conn.execute("INSERT INTO ml_prediction_log (client_id, model_name, prediction) "
                 "VALUES (1, 'complexity', 4.0)")
    conn.execute("INSERT INTO ml_retraining_events (client_id, model_name, reason, status) "
                 "VALUES (1, 'complexity', 'manual', 'promoted')")
    conn.execute("INSERT INTO client_bi_roles (client_id, role_name) VALUES (1, 'real_co_bi')")
    conn.execute("CREATE TABLE real_points AS SELECT g::real AS x, 2 * g::real AS y "
                 "FROM generate_series(1, 40) g")
    conn.execute("SELECT * FROM pgml.train('complexity__client_1', 'regression', "
                 "'real_points', 'y')")
    conn.commit()


FOOTPRINT = ("client 1 'Real Co' (not synthetic): 2 issues, 1 pull requests, "
             "1 prediction-log rows, 1 retraining events, 1 models")


def test_a_real_client_is_replaced_only_with_replace(
        flow: PgmlFlow, conn: psycopg.Connection, cli_env: dict[str, str]) -> None:
    _real_client(conn)
    env = {**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "200"}
    command = [sys.executable, "-m", "cli.app", "seed", "--clients", "2", "--issues", "50"]

    refused = subprocess.run(command, env=env, cwd=ROOT, text=True, capture_output=True,
                             timeout=120)
    assert refused.returncode == 2, refused.stderr
    message = " ".join(refused.stderr.split())
    assert FOOTPRINT in message
    assert "needs --replace: client 1 is not synthetic" in message
    assert "--first-client 2" in message
    assert "Traceback" not in refused.stderr
    # nothing was written: client 2 was not seeded either
    assert conn.execute("SELECT count(*), bool_or(synthetic) FROM clients").fetchone() == (
        1, False)
    with pytest.raises(ReplaceRefused, match="not synthetic"):
        run_seed(conn, clients=1, issues=50, replace_synthetic=True)
    conn.rollback()

    done = subprocess.run([*command, "--replace"], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert FOOTPRINT in " ".join(done.stderr.split())
    assert "seeded 2 clients" in done.stdout
    row = conn.execute("SELECT name, synthetic, ml_enabled FROM clients WHERE client_id = 1"
                       ).fetchone()
    assert row == ("Acme", True, True)
    counts = conn.execute(
        """SELECT (SELECT count(*) FROM issues WHERE client_id = 1),
                  (SELECT count(*) FROM ml_prediction_log),
                  (SELECT count(*) FROM ml_retraining_events),
                  (SELECT count(*) FROM pgml.projects),
                  (SELECT count(*) FROM pgml.models),
                  (SELECT count(*) FROM pgml.snapshots),
                  (SELECT array_agg(role_name) FROM client_bi_roles)""").fetchone()
    assert counts == (50, 0, 0, 0, 0, 0, ["real_co_bi"]), "the BI login stays"


def test_seed_elsewhere_leaves_a_real_client_alone(flow: PgmlFlow,
                                                   conn: psycopg.Connection) -> None:
    _real_client(conn)
    report = flow.seed(clients=1, issues=50, seed=1, as_of=AS_OF, first_client_id=2)
    assert report.replaced == ()
    rows = conn.execute("SELECT client_id, synthetic FROM clients ORDER BY 1").fetchall()
    assert rows == [(1, False), (2, True)]
    assert conn.execute("SELECT count(*) FROM issues WHERE client_id = 1").fetchone() == (2,)


def test_bad_sizes_are_rejected(flow: PgmlFlow) -> None:
    with pytest.raises(ConfigurationError, match="--issues"):
        flow.seed(clients=1, issues=3, seed=1)


@pytest.fixture
def seeded_conn(flow: PgmlFlow, conn: psycopg.Connection) -> psycopg.Connection:
    flow.seed(clients=3, issues=4000, seed=3, as_of=AS_OF)
    return conn


def test_references_are_sound(seeded_conn: psycopg.Connection) -> None:
    """The bulk load skips per-row FK triggers, so check every reference by anti-join."""
    orphans = seeded_conn.execute(
        """SELECT
             (SELECT count(*) FROM issues i WHERE NOT EXISTS (SELECT 1 FROM issuetypes t
                 WHERE t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id)),
             (SELECT count(*) FROM issues i WHERE i.parent_issue_id IS NOT NULL AND NOT EXISTS
                 (SELECT 1 FROM issues p WHERE p.client_id = i.client_id
                     AND p.issue_id = i.parent_issue_id)),
             (SELECT count(*) FROM pull_requests p WHERE NOT EXISTS (SELECT 1 FROM issues i
                 WHERE i.client_id = p.client_id AND i.issue_id = p.issue_id)),
             (SELECT count(*) FROM pull_requests p WHERE NOT EXISTS (SELECT 1 FROM repositories r
                 WHERE r.client_id = p.client_id AND r.repository_id = p.repository_id))"""
    ).fetchone()
    assert orphans == (0, 0, 0, 0)
    # and the FK constraints themselves agree: validating them from scratch succeeds
    for table, constraint in (("issues", "issues_parent_fkey"),
                              ("pull_requests", "pull_requests_issue_fkey")):
        seeded_conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
    seeded_conn.rollback()


def test_timeline_is_consistent(seeded_conn: psycopg.Connection) -> None:
    bad = seeded_conn.execute(
        """SELECT count(*) FILTER (WHERE work_first_started_at < created),
                  count(*) FILTER (WHERE work_last_completed_at < work_first_started_at),
                  count(*) FILTER (WHERE status_category = 'done'
                                   AND total_lead_time_seconds IS NULL),
                  count(*) FILTER (WHERE work_last_completed_at > %s),
                  count(*) FILTER (WHERE status_category = 'todo')
             FROM issues""",
        (AS_OF,),
    ).fetchone()
    assert bad[:4] == (0, 0, 0, 0)
    assert bad[4] > 0, "there must be open work to predict"


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def test_story_points_carry_signal(seeded_conn: psycopg.Connection) -> None:
    rows = np.array(seeded_conn.execute(
        """SELECT story_points, length(description), t.original_name = 'Story',
                  title LIKE 'Fix typo%%'
             FROM issues i JOIN issuetypes t USING (client_id, issuetype_id)
            WHERE story_points IS NOT NULL AND client_id = 1"""
    ).fetchall(), dtype=float)
    points, desc_len, is_story, is_typo = rows.T
    assert _spearman(points, desc_len) > 0.4
    assert points[is_story == 1].mean() > points[is_story == 0].mean()
    assert points[is_typo == 1].mean() < points.mean()


def test_epic_lead_time_grows_with_size_and_load(seeded_conn: psycopg.Connection) -> None:
    rows = np.array(seeded_conn.execute(
        """SELECT e.total_lead_time_seconds, sum(c.story_points), count(c.*)
             FROM issues e JOIN issuetypes t USING (client_id, issuetype_id)
             JOIN issues c ON c.client_id = e.client_id AND c.parent_issue_id = e.issue_id
            WHERE t.original_name = 'Epic' AND e.total_lead_time_seconds > 0 AND e.client_id = 2
            GROUP BY e.client_id, e.issue_id, e.total_lead_time_seconds"""
    ).fetchall(), dtype=float)
    assert len(rows) > 50
    assert _spearman(rows[:, 0], rows[:, 2]) > 0.5


def test_per_client_models_beat_a_global_model(seeded_conn: psycopg.Connection) -> None:
    """Clients differ in how rework depends on size, tests and seniority."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    rows = np.array(seeded_conn.execute(
        """SELECT client_id, ln(1 + additions + deletions), ln(1 + changed_files),
                  has_tests::int, reviewers,
                  (review_cycles > 2 OR rework_commit_count > 3)::int
             FROM pull_requests WHERE merged_at IS NOT NULL ORDER BY client_id, pull_request_id"""
    ).fetchall(), dtype=float)
    client, features, label = rows[:, 0], rows[:, 1:5], rows[:, 5]
    train = np.arange(len(rows)) % 4 != 0
    global_model = LogisticRegression(max_iter=1000).fit(features[train], label[train])
    per_client_loss = global_loss = 0.0
    for c in np.unique(client):
        own = client == c
        model = LogisticRegression(max_iter=1000).fit(features[own & train], label[own & train])
        test = own & ~train
        weight = test.sum()
        per_client_loss += log_loss(label[test], model.predict_proba(features[test])) * weight
        global_loss += log_loss(label[test], global_model.predict_proba(features[test])) * weight
    print(f"per-client log loss {per_client_loss:.1f} vs global {global_loss:.1f}")
    assert per_client_loss < 0.97 * global_loss
