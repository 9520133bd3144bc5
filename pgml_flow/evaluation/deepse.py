"""Story points of the 16 Jira projects of Deep-SE (``deepse-storypoints``).

Choetkiertikul et al., "A deep learning model for estimating story points", IEEE TSE 2019
(the dataset's SOURCE.txt has the full citation). Each project ships a chronological
60/20/20 split; the model trains on ``train`` and ``valid`` (holding out the newest of
them) and is tested on ``test``. Compared with the Deep-SE replication on raw story points
and GPT2SP with its MAE computation fixed (Tawosi et al. 2022), and Deep-SE as published
in 2018; the Mean and Median baselines are computed here from each project's train split
(they equal ``reproduced_mean_median_baselines.csv``; the 2018 ones cannot be reproduced).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from pgml_flow.evaluation import published
from pgml_flow.evaluation.registry import Benchmark, ProjectResult, Target, register

DEEPSE_RAW = "Deep-SE (raw SP)"
GPT2SP = "GPT2SP (fixed)"
DEEPSE_2018 = "Deep-SE (2018)"
TALEND = "withheld by Tawosi et al. from their replication (GDPR)"


def _published(root: Path) -> dict[str, dict[str, float]]:
    def pick(row: dict[str, str]) -> str | None:
        if row["source"].startswith("Tawosi2022"):
            return {"GPT2SP": GPT2SP, "Deep-SE (DL2SP, raw SP)": DEEPSE_RAW}.get(row["method"])
        if row["source"] == "Choetkiertikul2018_TSE_Table3" and row["method"] == "Deep-SE":
            return DEEPSE_2018
        return None

    found = published.read(root, pick)
    return {m: found.get(m, {}) for m in (DEEPSE_RAW, GPT2SP, DEEPSE_2018)}


def _projects(root: Path) -> list[str]:
    return sorted(p.name.removesuffix(".csv.gz") for p in (root / "data").glob("*.csv.gz"))


def _targets(results: Sequence[ProjectResult]) -> list[Target]:
    scored = [r for r in results if r.ours is not None]
    n = len(results)
    below_median = sum(1 for r in scored if r.ours is not None
                       and r.ours < r.baselines["Median"])
    rivals = [r for r in scored if DEEPSE_RAW in r.published and GPT2SP in r.published]
    below_best = sum(1 for r in rivals if r.ours is not None
                     and r.ours < min(r.published[DEEPSE_RAW], r.published[GPT2SP]))
    mean = statistics.fmean(r.ours for r in scored if r.ours is not None) if scored else None
    median = statistics.fmean(r.baselines["Median"] for r in results) if results else None
    need_median, need_best = round(12 * n / 16), round(10 * n / 16)
    return [
        Target(f"test MAE below the Median baseline on at least {need_median} of {n}",
               f"{below_median} of {n}", below_median >= need_median and len(scored) == n),
        Target(f"below the better of {DEEPSE_RAW} and {GPT2SP} on at least {need_best} of "
               f"{n}", f"{below_best} of {len(rivals)}",
               below_best >= need_best and len(scored) == n),
        Target("mean test MAE at most 2.45 (16 projects; Median 2.61)",
               "n/a" if mean is None else f"{mean:.2f} (Median {median:.2f})",
               mean is not None and mean <= 2.45 and n == 16),
    ]


BENCHMARK = register(Benchmark(
    task="complexity", dataset="deepse-storypoints", metric="mean_absolute_error",
    published=_published, targets=_targets, default_projects=_projects,
    citation="M. Choetkiertikul et al., A deep learning model for estimating story points, "
             "IEEE TSE 2019; V. Tawosi et al., Investigating the effectiveness of "
             "clustering for story point estimation / GPT2SP replication report, 2022",
    footnotes={"talenddataquality": TALEND, "talendesb": TALEND},
))
