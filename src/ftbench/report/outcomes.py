"""Each strategy's outcome on one task against that task's best: win, practically equivalent,
undecided, loss.

A ``Classifier`` names each strategy's outcome from one task's results and the margin;
``by_verdict`` (the default) counts only what the task's verdict decided, and a task that cannot
speak (no saved predictions, or too easy to rank) leaves every strategy undecided and says why
(``Outcomes.undecided_because``); ``by_seed_means`` compares means alone (docs/suites.md).
"""

from __future__ import annotations

from collections.abc import Callable

from ftbench.report.suite_results import TaskResults

WIN, EQUIVALENT, UNDECIDED, LOSS = "win", "equivalent", "undecided", "loss"
OUTCOMES = (WIN, EQUIVALENT, UNDECIDED, LOSS)
NO_PREDICTIONS = "no saved predictions"
TOO_EASY = "too easy to rank"


class Outcomes(dict):
    """strategy -> outcome on one task; ``undecided_because`` names why a task that decided
    nothing could not speak (None where its verdict was asked and answered)."""

    def __init__(self, outcomes: dict[str, str] | None = None, undecided_because: str | None = None):
        super().__init__(outcomes or {})
        self.undecided_because = undecided_because


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


def all_undecided(task: TaskResults, because: str) -> Outcomes:
    return Outcomes(dict.fromkeys(task.means(), UNDECIDED), because)


def too_easy(result) -> bool:
    """Whether the task's best accuracy lies within the test set's resolution of 100%: every
    strategy near the ceiling, where a difference of a margin cannot show. (Strategies merely
    close to each other are what a verdict decides on, so closeness alone does not silence a task.)"""
    return 1 - result.strategies[0].accuracy.estimate <= result.resolution


def from_verdict(result) -> Outcomes:
    """Outcomes from a task's ``verdict.Verdict``: only what it decided counts."""
    from ftbench.stats import verdict

    if too_easy(result):
        return Outcomes({j.strategy: UNDECIDED for j in result.strategies}, TOO_EASY)
    words = {verdict.EQUIVALENT: EQUIVALENT, verdict.UNDECIDED: UNDECIDED, verdict.WORSE: LOSS}
    outcomes = Outcomes({j.strategy: words[j.word] for j in result.strategies})
    decided = [j for j in result.strategies if j.word == verdict.EQUIVALENT]
    if decided:  # sorted by accuracy: the first is the observed best of those shown equivalent
        outcomes[decided[0].strategy] = WIN
    return outcomes


def by_verdict(task: TaskResults, margin: float) -> Outcomes:
    """From the task's verdict (``ftbench.stats.verdict``) at ``margin``, drawn at the task's
    confidence and resamples (``TaskResults.choice``: the command line's, else the suite's), as
    the task's own report draws it; a task whose runs kept no predictions leaves every strategy
    undecided."""
    from ftbench.report import judgement, render

    given = {k: v for k, v in task.choice.items() if v is not None}
    choice = {**judgement.DEFAULTS, **given, "margin": margin}
    result = task.verdict
    if result is None or (result.margin, result.confidence, result.resamples) != (
            choice["margin"], choice["confidence"], choice["resamples"]):  # judged again, on the same draw
        result, _, _ = render.folder_verdict(task.folder, task.runs, choice)
    if result is None:
        return all_undecided(task, NO_PREDICTIONS)
    outcomes = from_verdict(result)
    for strategy in task.means():  # a strategy whose runs kept no predictions: not judged
        outcomes.setdefault(strategy, UNDECIDED)
    return outcomes


def matches_best(outcome: str | None) -> bool:
    """Whether an outcome counts as doing as well as the task's best."""
    return outcome in (WIN, EQUIVALENT)
