"""`pgml-flow evaluate` for lead time and rework, on one small project of each dataset.

One test (cheap specs, a few hundred rows) proves: lead time is judged per issue on the
chronological split the import makes (the test rows never in a training view), with the
Median baseline of log(1 + days) equal to the one computed here from the CSV, and the
features known at creation; rework at opening is judged by the ROC AUC of the
probabilities on the chronological test split, with no column known only after opening
and no GitHub login in what is written; the ICSE 2014 merge decision runs its published
protocol (a random half, 90/10 at random) for each feature set beside the published AUC.
The full evaluations are in docs/models.md (`pgml-flow evaluate trajectory|rework`).
"""

from __future__ import annotations

import csv
import gzip
import math
import statistics
from pathlib import Path

import psycopg
import pytest

from pgml_flow.app import PgmlFlow
from pgml_flow.evaluation import report, rework
from pgml_flow.imports.datasets import chronological_split
from tests.conftest import shared_datasets

#: long checks: `./dev test -m slow` (kept out of the default run, docs/contributing.md)
pytestmark = pytest.mark.slow

DATASETS = shared_datasets()
TAWOS = DATASETS / "tawos-resolution-time-esem2022"
GOUSIOS = DATASETS / "gousios-pullreqs-2015"
ICSE = DATASETS / "gousios-pullreqs-icse2014"
#: cheap versions of the evaluation specs (the real ones: pgml_flow/evaluation/*.toml)
SPECS = """
[models.lead_time]
task = "regression"
training_view = "pgml_flow.lead_time_training"
target = "log_lead_time_days"
features = ["issue_type", "story_points", "open_backlog", "created_30d", "resolved_90d",
            "recent_log_lead", "recent_log_lead_30d", "fast_share_90d", "project_age_days"]
algorithm = "xgboost"
hyperparams = { objective = "reg:absoluteerror", n_estimators = 10, max_depth = 2 }
key_metric = "mean_absolute_error"
split = { by = "created" }
min_training_rows = 50
preprocess = { issue_type = { encode = "one_hot", impute = "zero" } }
[models.lead_time.retraining]
schedule = "0 4 * * 6"
min_new_records = 50
performance_threshold = 2.0
data_freshness_days = 21

[models.rework_at_open]
task = "classification"
training_view = "pgml_flow.rework_open_training"
target = "reworked_after_open"
features = ["commits_at_open", "prev_pullreqs", "requester_succ_rate", "followers",
            "main_team_member", "workload", "description_complexity", "intra_branch"]
algorithm = "xgboost"
hyperparams = { n_estimators = 10, max_depth = 2 }
key_metric = "f1"
split = { by = "created_at" }
min_training_rows = 30
[models.rework_at_open.retraining]
schedule = "0 4 * * 6"
min_new_records = 50
performance_threshold = 0.5
data_freshness_days = 21

[models.merge_decision]
task = "classification"
training_view = "pgml_flow_evaluation.merge_decision_training"
target = "merged"
features = ["team_size", "num_commits", "num_comments", "num_participants", "src_churn",
            "prev_pullreqs", "requester_succ_rate", "conflict", "forward_links"]
algorithm = "random_forest"
hyperparams = { n_estimators = 10 }
key_metric = "f1"
split = { by = "draw" }
test_size = 0.1
min_training_rows = 50
[models.merge_decision.retraining]
schedule = "0 4 * * 6"
min_new_records = 50
performance_threshold = 0.5
data_freshness_days = 21
"""
#: columns of gousios-pullreqs-2015 known only after the pull request opened
AFTER_OPENING = {"src_churn", "test_churn", "files_added", "files_deleted", "files_modified",
                 "files_changed", "src_files", "doc_files", "other_files", "num_commits",
                 "num_comments", "num_pr_comments", "num_issue_comments", "num_participants",
                 "commits_on_files_touched", "commits_to_hottest_file", "hotness_vasilescu",
                 "conflict", "forward_links", "first_response", "ci_latency", "ci_errors",
                 "ci_test_failures", "has_tests", "changed_files", "comments"}


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.skipif(not (TAWOS.is_dir() and GOUSIOS.is_dir() and ICSE.is_dir()),
                    reason="needs ../shared/datasets")
def test_lead_time_and_rework_evaluations(flow: PgmlFlow, conn: psycopg.Connection,
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    specs = tmp_path / "specs.toml"
    specs.write_text(SPECS)

    # lead time, per issue: CXX (156 resolved issues, in creation order)
    lead = flow.evaluate("trajectory", "tawos-resolution-time-esem2022", TAWOS,
                         projects=("CXX",), spec_files=[str(specs)], in_place=True)
    [cxx] = lead.projects
    data = _rows(TAWOS / "data" / "rq2_rq3" / "CXX.csv.gz")
    parts = chronological_split(len(data))
    y = {p: [math.log1p(float(r["Resolution_Time_Minutes"]) / 1440)
             for r, s in zip(data, parts, strict=True) if s == p] for p in set(parts)}
    median = statistics.median(y["train"])
    oracle = statistics.fmean(abs(v - median) for v in y["test"])
    assert cxx.status == "promoted" and cxx.test_rows == len(y["test"]) == 33
    assert cxx.baselines["Median"] == pytest.approx(oracle, abs=1e-5)
    assert cxx.ours is not None and 0 < cxx.ours < 5 and lead.spec.name == "lead_time_evaluation"
    view = f"pgml_flow_training.lead_time_evaluation__client_{cxx.client_id}"
    assert conn.execute(f"SELECT count(*) FROM {view}").fetchone() == (
        len(y["train"]) + len(y["valid"]),)
    # known at creation: the first issue has no history, the second sees the first open
    first = conn.execute(
        "SELECT open_backlog, created_30d, resolved_90d, project_age_days FROM "
        "pgml_flow.lead_time_features WHERE client_id = %s ORDER BY created LIMIT 2",
        (cxx.client_id,)).fetchall()
    assert first[0] == (0, 0, 0, 0) and first[1][0] == 1
    # the per-type and per-points history: the mean log(1 + days) of the issues of the same
    # type (story points) resolved before the issue was created, never itself or later ones
    history = conn.execute(
        "SELECT i.issue_key, f.type_log_lead, f.points_log_lead "
        "FROM pgml_flow.lead_time_features f JOIN issues i "
        "ON i.client_id = f.client_id AND i.issue_id = f.entity_id "
        "WHERE f.client_id = %s ORDER BY f.created", (cxx.client_id,)).fetchall()
    by_key = {r["Issue_Key"]: r for r in data}
    for key, by_type, by_points in history[::10]:
        issue = by_key[key]
        before = [r for r in data if r is not issue and r["Resolution_Date"] != "NULL"
                  and r["Resolution_Date"] <= issue["Creation_Date"]]

        def mean_of(rows: list[dict[str, str]], fallback: float) -> float:
            return statistics.fmean(math.log1p(float(r["Resolution_Time_Minutes"]) / 1440)
                                    for r in rows) if rows else fallback

        overall = mean_of(before, 0.0)
        assert by_type == pytest.approx(
            mean_of([r for r in before if r["Type"] == issue["Type"]], overall), abs=1e-3)
        assert by_points == pytest.approx(
            mean_of([r for r in before if r["Story_Point"] == issue["Story_Point"]], overall),
            abs=1e-3)
    assert len(lead.targets) == 1 and lead.targets[0].result.endswith("of 1")

    # rework at opening: zsh-completions (193 pull requests, 35 % reworked)
    spec = flow.model_specs([str(rework.SPECS)])["rework_at_open"]
    assert not set(spec.features) & AFTER_OPENING, "a feature known only after opening"
    found = flow.evaluate("rework", "gousios-pullreqs-2015", GOUSIOS,
                          projects=("zsh-users@zsh-completions",), spec_files=[str(specs)],
                          in_place=True)
    [zsh] = found.projects
    prs = _rows(GOUSIOS / "data" / "zsh-users@zsh-completions.csv.gz")
    assert zsh.status == "promoted" and zsh.test_rows == chronological_split(
        len(prs)).count("test")
    assert zsh.ours is not None and 0 <= zsh.ours <= 1 and zsh.held_out is not None
    # the AUC is of the probabilities, as sklearn computes it from pgml.predict_proba
    scored = conn.execute(
        "SELECT reworked_after_open, (pgml.predict_proba(m.id, ARRAY[commits_at_open, "
        "prev_pullreqs, requester_succ_rate, followers, main_team_member, workload, "
        "description_complexity, intra_branch]))[2] FROM "
        "pgml_flow_evaluation.rework_at_open_test t, pgml.deployed_models m "
        "WHERE t.client_id = %s AND m.name = %s",
        (zsh.client_id, f"rework_at_open_evaluation__client_{zsh.client_id}")).fetchall()
    from sklearn.metrics import roc_auc_score
    assert zsh.ours == pytest.approx(roc_auc_score([s[0] for s in scored],
                                                   [s[1] for s in scored]))
    files = report.write(found, tmp_path / "out")
    written = " ".join(f.read_text() for f in files if f.suffix in (".md", ".csv"))
    logins = {r["requester"] for r in prs} | {r["merger"] for r in prs if r["merger"]}
    assert "zsh-users@zsh-completions" in written
    assert not [login for login in logins if login and f" {login} " in f" {written} "]
    assert len(found.targets) == 2 and "pooled" in found.targets[1].goal

    # the ICSE 2014 merge decision, its protocol, one run on one project
    monkeypatch.setenv(rework.RUNS_ENV, "1")
    merge = flow.evaluate("rework", "gousios-pullreqs-icse2014", ICSE,
                          projects=("JetBrains@kotlin",), spec_files=[str(specs)],
                          in_place=True)
    by = {p.project: p for p in merge.projects}
    assert list(by) == [rework.PAPER, rework.ARRIVAL, rework.REVIEW]
    assert by[rework.PAPER].published["random forest (published)"] == 0.94
    # beside the paper's table, its own 10 runs on half the rows (published_results/)
    assert by[rework.PAPER].published[rework.PER_RUN_2014[83442]] == pytest.approx(0.920,
                                                                                abs=5e-4)
    assert all(p.ours is not None and 0 <= p.ours <= 1 for p in merge.projects)
    total = len(_rows(ICSE / "data" / "JetBrains@kotlin.csv.gz"))
    half = conn.execute("SELECT count(*) FROM pgml_flow_evaluation.merge_decision_training "
                        "WHERE client_id = %s", (by[rework.PAPER].client_id,)).fetchone()
    assert half is not None and abs(half[0] - total / 2) < total / 5
    assert "0.94" in report.markdown(merge)
