"""Each strategy's outcome on one task against that task's best: win, practically equivalent, loss.

The report across tasks counts these outcomes per strategy and recommends from them, through a
``Classifier``: a function of one task's results and the practical-equivalence margin that
names each strategy's outcome. ``by_verdict`` (the default) asks each task's verdict, which
resamples seeds and test examples from the runs' saved predictions: the best wins, a strategy
practically equivalent to it is ``equivalent``, one worse by more than the margin a ``loss``, and
one the evidence cannot place ``undecided``. ``by_seed_means`` compares means alone (no noise
weighed); any function of the same shape plugs in (``write_suite_report(classify=...)``).
"""

from __future__ import annotations

from collections.abc import Callable

from ftbench.report.suite_results import TaskResults

WIN, EQUIVALENT, UNDECIDED, LOSS = "win", "equivalent", "undecided", "loss"
OUTCOMES = (WIN, EQUIVALENT, UNDECIDED, LOSS)

# (one task's results, margin) -> strategy -> outcome, for the strategies with a result there
Classifier = Callable[[TaskResults, float], dict[str, str]]


def by_seed_means(task: TaskResults, margin: float) -> dict[str, str]:
    """From the mean test accuracy over seeds: the highest mean wins (ties all win); another
    strategy is practically equivalent when its mean lies less than ``margin`` below it, and a
    loss otherwise. The means alone: a difference smaller than the seeds' noise still counts."""
    means = task.means()
    if not means:
        return {}
    best = max(means.values())
    return {strategy: WIN if mean == best else EQUIVALENT if mean - best > -margin else LOSS
            for strategy, mean in means.items()}


def by_verdict(task: TaskResults, margin: float) -> dict[str, str]:
    """From the task's verdict (``ftbench.report.verdict``) at ``margin``; a task whose runs kept
    no predictions falls back to ``by_seed_means``."""
    from ftbench.report import judgement, verdict

    by_strategy = {s: c.runs for s, c in task.cells.items() if c.runs}
    found, _ = judgement.evidence(task.folder, by_strategy)
    if found is None:
        return by_seed_means(task, margin)
    result = verdict.judge(found, {}, margin=margin)
    words = {verdict.EQUIVALENT: EQUIVALENT, verdict.UNDECIDED: UNDECIDED, verdict.WORSE: LOSS}
    outcomes = {j.strategy: words[j.word] for j in result.strategies}
    outcomes[result.recommendation.best] = WIN
    return outcomes


def matches_best(outcome: str | None) -> bool:
    """Whether an outcome counts as doing as well as the task's best."""
    return outcome in (WIN, EQUIVALENT)
