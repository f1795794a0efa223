"""Each task's outcomes at the report's settings: ``outcomes.by_verdict`` at a task's confidence
and resamples (``TaskResults.choice``: the command line's, else the suite's), so that a suite
report honours every setting a task's report does."""

from __future__ import annotations

from ftbench.report import judgement, verdict
from ftbench.report.outcomes import EQUIVALENT, LOSS, UNDECIDED, WIN, by_seed_means
from ftbench.report.suite_results import TaskResults


def by_verdict_at_settings(task: TaskResults, margin: float) -> dict[str, str]:
    """As ``outcomes.by_verdict``, the verdict drawn at ``task.choice``'s confidence and resamples."""
    by_strategy = {s: c.runs for s, c in task.cells.items() if c.runs}
    found, _ = judgement.evidence(task.folder, by_strategy)
    if found is None:
        return by_seed_means(task, margin)
    settings = {k: task.choice[k] for k in ("confidence", "resamples") if k in task.choice}
    result = verdict.judge(found, {}, margin=margin, **settings)
    words = {verdict.EQUIVALENT: EQUIVALENT, verdict.UNDECIDED: UNDECIDED, verdict.WORSE: LOSS}
    outcomes = {j.strategy: words[j.word] for j in result.strategies}
    outcomes[result.recommendation.best] = WIN
    return outcomes
