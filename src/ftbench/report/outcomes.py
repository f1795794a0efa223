"""Each strategy's outcome on one task against that task's best: win, practically equivalent, loss.

The report across tasks counts these outcomes per strategy and recommends from them, through a
``Classifier``: a function of one task's results and the practical-equivalence margin that
names each strategy's outcome. ``by_seed_means`` is the classifier used until a per-task
verdict that resamples seeds and test examples (and so also weighs how sure a difference is)
takes its place; any function of the same shape plugs in (``write_suite_report(classify=...)``).
"""

from __future__ import annotations

from collections.abc import Callable

from ftbench.report.suite_results import TaskResults

WIN, EQUIVALENT, LOSS = "win", "equivalent", "loss"
OUTCOMES = (WIN, EQUIVALENT, LOSS)

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


def matches_best(outcome: str | None) -> bool:
    """Whether an outcome counts as doing as well as the task's best."""
    return outcome in (WIN, EQUIVALENT)
