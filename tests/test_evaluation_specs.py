"""The evaluation specs (pgml_flow/evaluation/*.toml) are valid before a long run uses them.

An evaluation spec is read only by `pgml-flow evaluate`, whose full runs take from minutes
to half an hour: a hyperparameter the estimator does not know would surface only as a
failed training at the end of the import. This checks, without a database (no training),
that each spec parses and that its estimator accepts every hyperparameter of the spec and
of its candidates; and that the ICSE 2014 merge decision keeps what its published protocol
fixes (the paper's 16 features, 10 % held out in the draw order), whatever learner it uses
(docs/models.md, "Rework: Gousios").
"""

from __future__ import annotations

from pathlib import Path

from pgml_flow.engine import algorithms
from pgml_flow.evaluation import rework
from pgml_models.specs import load_file

EVALUATION = Path(rework.__file__).resolve().parent
#: gousiosg/pullreqs R/merge-decision.R, merge.decision.model at the time of the data
PAPER_FEATURES = ("team_size", "num_commits", "files_changed", "perc_external_contribs",
                  "sloc", "src_churn", "test_churn", "num_comments",
                  "commits_on_files_touched", "test_lines_per_kloc", "prev_pullreqs",
                  "requester_succ_rate", "main_team_member", "conflict", "forward_links",
                  "num_participants")


def test_evaluation_specs_are_valid_and_merge_decision_keeps_the_protocol() -> None:
    files = sorted(EVALUATION.glob("*.toml"))
    assert rework.SPECS in files
    for path in files:
        for spec in load_file(path).values():
            algorithms.make_estimator(spec.task, spec.algorithm, spec.hyperparams)
            for candidate in spec.candidates:
                algorithm = candidate.get("algorithm", spec.algorithm)
                params = dict(candidate.get("hyperparams", {}))
                if algorithm == spec.algorithm:
                    params = {**spec.hyperparams, **params}
                algorithms.make_estimator(spec.task, algorithm, params)

    merge = load_file(rework.SPECS)["merge_decision"]
    assert tuple(merge.features) == PAPER_FEATURES
    assert merge.split == {"by": "draw"} and merge.test_size == 0.1
    assert set(rework.REVIEW_TIME) < set(merge.features)
