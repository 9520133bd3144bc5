"""Model choice by validation and `pgml-flow evaluate`, on two small Deep-SE projects.

One evaluation (two projects, two cheap candidates) proves: the per-client choice is made
on the validation slice, recorded with the model and shown by `models runs`; the test
split is never in a training view; the Median baseline equals the dataset's reproduced
one and the published numbers are beside ours; the table is written as Markdown, CSV and
PNG; a BI login cannot read the candidates; an unsupported dataset names what is.
The full evaluation is `pgml-flow evaluate complexity --dataset deepse-storypoints`
(docs/models.md#evaluation).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cli.model_commands import _chosen
from pgml_flow import holdout
from pgml_flow.app import PgmlFlow
from pgml_flow.errors import ConfigurationError, SpecError
from pgml_models.specs import parse_spec
from tests.conftest import shared_datasets

DEEPSE = shared_datasets() / "deepse-storypoints"
PROJECTS = ("jirasoftware", "clover")
#: the complexity spec, cheap, with three candidates: its own trees, a constant (the
#: train median: xgboost's absolute-error base score, no tree steps) and the median of the
#: most similar issues' points (knn over tf-idf, shrunk halfway to the median, snapped)
SPECS = """
[models.complexity]
task = "regression"
training_view = "pgml_flow.complexity_training"
target = "story_points"
features = ["title", "description", "title_length", "description_words"]
algorithm = "xgboost"
hyperparams = { objective = "reg:absoluteerror", n_estimators = 20, max_depth = 2 }
key_metric = "mean_absolute_error"
split = { by = "created" }
seed = 42
min_training_rows = 100
validation_size = 0.25

[models.complexity.preprocess]
title = { encode = "words", top_k = 20 }
description = { encode = "words", top_k = 10 }

[[models.complexity.candidates]]
name = "trees"

[[models.complexity.candidates]]
name = "median"
hyperparams = { n_estimators = 1, learning_rate = 0.0 }

[[models.complexity.candidates]]
name = "neighbours"
algorithm = "knn"
hyperparams = { n_neighbors = 10, metric = "cosine", aggregate = "median", shrink = 0.5 }
[models.complexity.candidates.preprocess]
story_points = { snap = true }
title = { text = "tfidf", ngram = [1, 2] }
description = { text = "tfidf" }
title_length = { scale = "max_abs" }
description_words = { scale = "max_abs" }

[models.complexity.retraining]
schedule = "0 3 * * 3"
min_new_records = 200
performance_threshold = 3.0
data_freshness_days = 14
"""


def _split_counts(project: str) -> dict[str, int]:
    with (DEEPSE / "splits" / f"{project}_3sets.txt").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {s: sum(r[s] == "1" for r in rows) for s in ("train", "valid", "test")}


@pytest.mark.skipif(not DEEPSE.is_dir(), reason="needs ../shared/datasets/deepse-storypoints")
def test_evaluate_chooses_on_validation_and_compares_with_published(
        flow: PgmlFlow, conn: psycopg.Connection, tmp_path: Path,
        cli_env: dict[str, str]) -> None:
    (tmp_path / "specs.toml").write_text(SPECS)
    env = {**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "250"}
    command = [sys.executable, "-m", "cli.app", "evaluate", "complexity", "--dataset",
               "deepse-storypoints", "--path", str(DEEPSE), "--specs", "specs.toml",
               "--in-place", "--out", "out", "--json"]
    for project in PROJECTS:
        command += ["--project", project]
    done = subprocess.run(command, env=env, cwd=tmp_path, text=True, capture_output=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    reproduced = {r["project"]: r for r in
                  csv.DictReader((DEEPSE / "reproduced_mean_median_baselines.csv").open())}
    published = {(r["project"], r["method"]): float(r["MAE"]) for r in
                 csv.DictReader((DEEPSE / "published_results.csv").open())
                 if r["source"].startswith("Tawosi2022")}
    by_name = {p["project"]: p for p in out["projects"]}
    assert set(by_name) == set(PROJECTS)
    for name, p in by_name.items():
        counts = _split_counts(name)
        assert p["status"] == "promoted" and p["test_rows"] == counts["test"]
        # the test oracle: the constant train median of the dataset's own reproduction
        assert round(p["baselines"]["Median"], 2) == float(reproduced[name]["MAE_median_baseline"])
        assert p["published"]["GPT2SP (fixed)"] == published[(name, "GPT2SP")]
        assert p["published"]["Deep-SE (raw SP)"] == published[(name, "Deep-SE (DL2SP, raw SP)")]
        assert p["ours"] is not None and 0 < p["ours"] < 10
        assert p["chosen"] in ("trees", "median", "neighbours")
        # the test split never reaches training: the client's training view holds train
        # and valid only, and the candidates' slices and the held-out rows cover it
        view = f"pgml_flow_training.complexity_evaluation__client_{p['client_id']}"
        rows = conn.execute(f"SELECT count(*) FROM {view}").fetchone()
        assert rows == (counts["train"] + counts["valid"],)
        scored = conn.execute(
            "SELECT label, validation_value, chosen, fit_rows, validation_rows, model_id "
            "FROM ml_model_candidates WHERE client_id = %s ORDER BY candidate",
            (p["client_id"],)).fetchall()
        assert [s[0] for s in scored] == ["trees", "median", "neighbours"]
        assert all(s[1] is not None for s in scored)  # each trained and scored, knn too
        best = min(scored, key=lambda s: (s[1], [x[0] for x in scored].index(s[0])))
        assert [s[0] for s in scored if s[2]] == [best[0]] == [p["chosen"]]
        assert scored[0][3] + scored[0][4] + holdout.test_rows(rows[0], 0.25) == rows[0]
    assert [t["met"] for t in out["targets"]] and len(out["targets"]) == 3
    md = (tmp_path / "out" / "complexity-deepse-storypoints.md").read_text()
    assert "| jirasoftware |" in md and "GPT2SP (fixed)" in md and "mean of 2" in md
    table = list(csv.DictReader((tmp_path / "out" / "complexity-deepse-storypoints.csv").open()))
    assert [r["project"] for r in table] == list(PROJECTS)
    png = (tmp_path / "out" / "complexity-deepse-storypoints.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    # `models runs` shows the choice with the model (its "chosen on validation" column)
    runs = flow.retraining_events("complexity_evaluation")
    chosen = sorted(p["chosen"] for p in by_name.values())
    assert sorted(r["chosen"]["label"] for r in runs) == chosen
    assert {r["chosen"]["candidates"] for r in runs} == {3}
    assert _chosen(runs[0]["chosen"]).endswith(" of 3")

    # the candidates are operator information: a BI login reads none of them
    client = by_name["clover"]["client_id"]
    flow.grant_bi_access([client])
    try:
        with flow.bi_session(client) as bi, pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("SELECT count(*) FROM ml_model_candidates")
    finally:
        flow.revoke_bi_access()

    # what is not supported says so, and what is
    with pytest.raises(ConfigurationError) as raised:
        flow.evaluate("trajectory", "deepse-storypoints", DEEPSE, in_place=True)
    assert "evaluate trajectory is not yet supported for dataset 'deepse-storypoints'" in str(
        raised.value)


def test_candidates_in_specs_are_checked() -> None:
    body = {"task": "regression", "training_view": "v", "target": "y", "features": ["x"],
            "retraining": {"schedule": "0 3 * * 3", "min_new_records": 1,
                           "performance_threshold": 0.5, "data_freshness_days": 1}}
    spec = parse_spec("m", {**body, "candidates": [{"hyperparams": {"alpha": 1}},
                                                   {"algorithm": "ridge"}]})
    assert len(spec.candidates) == 2 and spec.validation_size == 0.2
    for bad, words in (
            ({"candidates": [{"depth": 3}]}, "unknown key(s) ['depth']"),
            ({"candidates": [{"name": "a"}, {"name": "a"}]}, "repeats an earlier one"),
            ({"candidates": [{"name": "a"}], "search": "grid",
              "search_params": {"alpha": [1, 2]}}, "cannot also search"),
            ({"validation_size": 0}, "validation_size must be a positive number")):
        with pytest.raises(SpecError, match=None) as raised:
            parse_spec("m", {**body, **bad})
        assert words in str(raised.value)
