"""Story points with metadata: TAWOS projects of the TSE 2023 replication
(``tawos-storypoints-tse2023``).

V. Tawosi, R. Moussa, F. Sarro, "Agile Effort Estimation: Have We Solved the Problem Yet?",
IEEE TSE 2023. 21 projects with title and description, 20 of them with issue type and
component columns (the import sets the type and components from them, which the
complexity spec's features read); the chronological 60/20/20 split with Deep-SE's
off-by-one. Compared with its published TF-IDF+SVM, Deep-SE and Median (Supplementary
Table 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pgml_flow.evaluation import published
from pgml_flow.evaluation.registry import Benchmark, ProjectResult, Target, register

TFIDF_SVM = "TF-IDF+SVM"
DEEPSE = "Deep-SE"
MEDIAN = "Median (published)"


def _published(root: Path) -> dict[str, dict[str, float]]:
    def pick(row: dict[str, str]) -> str | None:
        if row["source"] != "Tawosi2023_TSE_Supp_Table2":
            return None
        return {"TF/IDF-SVM": TFIDF_SVM, "Deep-SE": DEEPSE, "Median": MEDIAN}.get(row["method"])

    found = published.read(root, pick)
    return {m: found.get(m, {}) for m in (TFIDF_SVM, DEEPSE, MEDIAN)}


def _targets(results: Sequence[ProjectResult]) -> list[Target]:
    scored = [r for r in results if r.ours is not None and TFIDF_SVM in r.published]
    below = sum(1 for r in scored if r.ours is not None
                and r.ours < r.published[TFIDF_SVM] and r.ours < r.baselines["Median"])
    return [Target("below the published TF-IDF+SVM and the Median on most projects",
                   f"{below} of {len(scored)}", below > len(scored) / 2)]


BENCHMARK = register(Benchmark(
    task="complexity", dataset="tawos-storypoints-tse2023", metric="mean_absolute_error",
    published=_published, targets=_targets,
    citation="V. Tawosi, R. Moussa, F. Sarro, Agile Effort Estimation: Have We Solved the "
             "Problem Yet? Insights From a Replication Study, IEEE TSE 2023",
))
