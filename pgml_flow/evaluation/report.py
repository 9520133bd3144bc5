"""An evaluation's table, as rows, Markdown and CSV, and its plot (PNG).

The rows are what the CLI prints too: per project, the test rows, each published
method's number, the Mean and Median baselines of the train split, ours on the test
split, ours on the model's own held-out rows (known before the test split is looked at)
and the candidate chosen on validation; a last row with the means over the projects.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pgml_flow.evaluation.registry import ProjectResult
from pgml_flow.evaluation.run import Evaluation
from pgml_models.specs import lower_is_better

OURS = "ours"
HELD_OUT = "ours, held-out rows"


def columns(evaluation: Evaluation) -> list[str]:
    return (["project", "test rows", *evaluation.methods, "Mean", "Median", OURS, HELD_OUT]
            + (["chosen on validation"] if any(p.chosen for p in evaluation.projects)
               else []))


def _values(evaluation: Evaluation, p: ProjectResult) -> list[float | None]:
    return ([p.published.get(m) for m in evaluation.methods]
            + [p.baselines.get("Mean"), p.baselines.get("Median"), p.ours, p.held_out])


def rows(evaluation: Evaluation) -> list[list[str]]:
    """The table as text cells (numbers with two decimals, '' where there is none)."""
    chosen = any(p.chosen for p in evaluation.projects)
    out = []
    for p in evaluation.projects:
        mark = " ¹" if p.project in evaluation.footnotes else ""
        out.append([p.project + mark, f"{p.test_rows:,}",
                    *[_num(v) for v in _values(evaluation, p)]]
                   + ([p.chosen or p.status] if chosen else []))
    out.append(mean_row(evaluation) + ([""] if chosen else []))
    return out


def mean_row(evaluation: Evaluation) -> list[str]:
    n = len(evaluation.projects)
    means = []
    for k in range(len(evaluation.methods) + 4):
        values = [_values(evaluation, p)[k] for p in evaluation.projects]
        present = [v for v in values if v is not None]
        means.append(_num(sum(present) / len(present)) + ("" if len(present) == n else
                                                           f" ({len(present)})")
                     if present else "")
    return [f"mean of {n}", f"{sum(p.test_rows for p in evaluation.projects):,}", *means]


def markdown(evaluation: Evaluation) -> str:
    """The table in Markdown, the best number of each row in bold, then the targets."""
    head = columns(evaluation)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    numeric = range(2, 2 + len(evaluation.methods) + 3)  # the methods, Mean, Median, ours
    for cells in rows(evaluation):
        values = [_float(cells[k]) for k in numeric]
        present = [v for v in values if v is not None]
        best = (None if not present else min(present) if lower_is_better(evaluation.metric)
                else max(present))
        shown = list(cells)
        for k, v in zip(numeric, values, strict=True):
            if v is not None and v == best:
                shown[k] = f"**{cells[k]}**"
        lines.append("| " + " | ".join(shown) + " |")
    notes = sorted(set(evaluation.footnotes.values()))
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "; ".join(f"¹ {n}" for n in notes) + ".\n"
    text += "\n" + "\n".join(f"- {t.goal}: {t.result} ({'met' if t.met else 'not met'})"
                             for t in evaluation.targets) + "\n"
    return text


def csv_text(evaluation: Evaluation) -> str:
    """One row per project (numbers unrounded), then the means."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["project", "test_rows", *evaluation.methods, "mean_baseline",
                     "median_baseline", "ours", "ours_held_out", "chosen", "status"])
    for p in evaluation.projects:
        writer.writerow([p.project, p.test_rows,
                         *["" if v is None else f"{v:.4f}" for v in _values(evaluation, p)],
                         p.chosen or "", p.status])
    return out.getvalue()


def plot(evaluation: Evaluation, path: Path) -> None:
    """Grouped bars per project: ours against each published method and the Median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [*evaluation.methods, "Median", OURS]
    projects = evaluation.projects
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(8.0, 0.9 * len(projects) + 2), 4.5))
    for k, name in enumerate(series):
        values = [(p.ours if name == OURS else p.baselines.get("Median") if name == "Median"
                   else p.published.get(name)) for p in projects]
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(projects))]
        axes.bar([x for x, v in zip(xs, values, strict=True) if v is not None],
                 [v for v in values if v is not None], width,
                 label=name, color="black" if name == OURS else None)
    axes.set_xticks(range(len(projects)))
    axes.set_xticklabels([p.project for p in projects], rotation=45, ha="right")
    axes.set_ylabel(f"test {evaluation.metric.replace('_', ' ')}")
    axes.set_title(f"{evaluation.task} on {evaluation.dataset}: ours against published")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(evaluation: Evaluation, folder: Path) -> list[Path]:
    """``<task>-<dataset>.md``, ``.csv`` and ``.png`` in ``folder`` (made if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{evaluation.task}-{evaluation.dataset}"
    md, table, png = (stem.with_suffix(s) for s in (".md", ".csv", ".png"))
    md.write_text(markdown(evaluation))
    table.write_text(csv_text(evaluation))
    plot(evaluation, png)
    return [md, table, png]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _float(cell: str) -> float | None:
    try:
        return float(cell.split(" ")[0])
    except ValueError:
        return None
