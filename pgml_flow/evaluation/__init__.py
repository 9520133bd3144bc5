"""Evaluation against published results: ``pgml-flow evaluate MODEL --dataset NAME``.

Story points, lead times and rework are what teams decide on, so the built-in models are
judged on public research data, in the database, by the same machinery that trains a
tenant's models, beside the numbers the research published (docs/models.md#evaluation):

* :mod:`~pgml_flow.evaluation.registry`: what can be evaluated (a :class:`Benchmark` per
  model and dataset, one small module each: :mod:`~pgml_flow.evaluation.deepse`,
  :mod:`~pgml_flow.evaluation.tawos_storypoints`, :mod:`~pgml_flow.evaluation.lead_time`,
  :mod:`~pgml_flow.evaluation.rework`);
* :mod:`~pgml_flow.evaluation.run`: import, train per client, score the test split;
* :mod:`~pgml_flow.evaluation.report`: the table (Markdown, CSV) and the plot (PNG).
"""

from pgml_flow.evaluation.registry import Benchmark, ProjectResult, Target, find
from pgml_flow.evaluation.run import Evaluation, evaluate, scratch_database

__all__ = ["Benchmark", "Evaluation", "ProjectResult", "Target", "evaluate", "find",
           "scratch_database"]
