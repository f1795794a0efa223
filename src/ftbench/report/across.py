"""Strategies across the tasks of a suite: ranks (``ranks``), outcomes against each task's best
(``outcomes``), cost relative to ``full`` (geometric mean over tasks) and the recommendation.

The cheapest strategy equivalent to the task's best on the largest share of tasks is recommended
only when every cheaper one was shown worse somewhere: one merely undecided has not been beaten
(why, and the method: docs/suites.md).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ftbench.report.outcomes import LOSS, OUTCOMES, Classifier, by_verdict, matches_best
from ftbench.report.suite_results import SuiteResults, TaskResults
from ftbench.stats.ranks import Ranking, rank_strategies

REFERENCE = "full"  # what relative cost is relative to, where the suite ran it
TIE_DIGITS = 12  # means equal to this many digits tie (the same accuracies summed in another order)


def geometric_mean(values: list[float]) -> float | None:
    positive = [v for v in values if v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in positive)) if positive else None


@dataclass
class StrategySummary:
    """One strategy over the tasks."""

    strategy: str
    tasks: int = 0  # tasks where it has a result
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    average_rank: float | None = None
    relative_costs: list[float] = field(default_factory=list)  # one per task with both costs
    gaps: list[float] = field(default_factory=list)  # test accuracy minus the task's best

    @property
    def matches(self) -> int:
        return sum(n for outcome, n in self.counts.items() if matches_best(outcome))

    @property
    def relative_cost(self) -> float | None:
        return geometric_mean(self.relative_costs)


@dataclass
class CrossTask:
    results: SuiteResults
    margin: float
    tasks: list[TaskResults]  # with at least one result
    empty: list[TaskResults]  # without any
    outcomes: dict[str, dict[str, str]]  # task -> strategy -> outcome
    ranking: Ranking | None
    reference: str | None  # what relative cost is relative to
    summaries: dict[str, StrategySummary]
    silent: dict[str, str] = field(default_factory=dict)  # task -> why it decided nothing

    @property
    def strategies(self) -> list[str]:
        return list(self.summaries)

    def share(self, strategy: str) -> float:
        return self.summaries[strategy].matches / len(self.tasks) if self.tasks else 0.0

    def _cost(self, strategy: str) -> float:
        cost = self.summaries[strategy].relative_cost
        return cost if cost is not None else math.inf

    def leader(self) -> str | None:
        """The cheapest strategy among those practically equivalent to the best on the largest
        share of tasks (the better average rank breaks a tie of cost); None when no strategy
        was shown equivalent on any task."""
        ranked = [s for s in self.strategies if self.summaries[s].tasks]
        top = max((self.share(s) for s in ranked), default=0.0)
        if top == 0:
            return None
        return min((s for s in ranked if self.share(s) == top), key=lambda s: (
            self._cost(s),
            self.summaries[s].average_rank if self.summaries[s].average_rank is not None else math.inf))

    def unbeaten_cheaper(self, strategy: str) -> list[str]:
        """Strategies cheaper than ``strategy`` that no task showed worse (no decided loss): the
        evidence has not set them aside, so they block a recommendation of ``strategy``."""
        return [s for s in self.strategies if self.summaries[s].tasks and self._cost(s) < self._cost(strategy)
                and not self.summaries[s].counts[LOSS]]

    def recommended(self) -> str | None:
        """``leader()``, unless a cheaper strategy was never shown worse (``unbeaten_cheaper``)."""
        leader = self.leader()
        return None if leader is None or self.unbeaten_cheaper(leader) else leader


def analyse(results: SuiteResults, margin: float | None = None, classify: Classifier = by_verdict,
            alpha: float = 0.05) -> CrossTask:
    """Everything the report across tasks states, from the tasks' results."""
    margin = results.record.margin if margin is None else margin
    tasks = [t for t in results.tasks if t.means()]
    outcomes = {t.name: classify(t, margin) for t in tasks}
    silent = {name: because for name, o in outcomes.items()
              if (because := getattr(o, "undecided_because", None)) is not None}
    summaries = {s: StrategySummary(s) for s in results.strategies}
    ranking = None
    if tasks:
        ranking = rank_strategies({t.name: {s: round(m, TIE_DIGITS) for s, m in t.means().items()}
                                   for t in tasks}, alpha=alpha)
        for strategy, rank in ranking.average_ranks.items():
            summaries[strategy].average_rank = rank
    reference = cost_reference(tasks)
    for task in tasks:
        means = task.means()
        best = max(means.values())
        base = task.cells.get(reference) if reference else None
        for strategy, mean in means.items():
            summary = summaries[strategy]
            summary.tasks += 1
            summary.gaps.append(mean - best)
            outcome = outcomes[task.name].get(strategy)
            if outcome in summary.counts:
                summary.counts[outcome] += 1
            cost = task.cells[strategy].total_flops
            if cost and base is not None and base.total_flops:
                summary.relative_costs.append(cost / base.total_flops)
    return CrossTask(results, margin, tasks, [t for t in results.tasks if not t.means()], outcomes,
                     ranking, reference, summaries, silent)


def cost_reference(tasks: list[TaskResults]) -> str | None:
    """``full`` where a task has its cost; otherwise the strategy with the largest geometric mean
    of training FLOPs, so that costs stay ratios below 1 as they would against ``full``."""
    if any((c := t.cells.get(REFERENCE)) is not None and c.total_flops for t in tasks):
        return REFERENCE
    costs: dict[str, list[float]] = {}
    for task in tasks:
        for strategy, cell in task.cells.items():
            if cell.total_flops:
                costs.setdefault(strategy, []).append(cell.total_flops)
    means = {s: geometric_mean(v) for s, v in costs.items()}
    return max(means, key=lambda s: means[s] or 0.0) if means else None
