"""Strategies ranked across tasks: average ranks, Friedman's test, Nemenyi's critical difference.

Demšar (2006): the formulas, the permutation p for 10 tasks or fewer, and why the test needs the
tasks it asks for are in docs/suites.md ("How the ranking is computed"). The statistics treat
tasks as independent; variants of one dataset are not, and the caller must say so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from scipy import stats

from ftbench.stats.permutation import friedman_small_p

MIN_TASKS = 5
EXACT_TASKS = 10  # up to this many tasks, the permutation test's p decides
RULE_OF_THUMB_TASKS = 10  # Demšar: the chi-square approximation wants N > 10 ...
RULE_OF_THUMB_STRATEGIES = 5  # ... and k > 5


@dataclass(frozen=True)
class Ranking:
    """Ranks of strategies over tasks and, where there are enough tasks, the test of them.

    ``strategies`` and ``average_ranks`` run from the best average rank to the worst. The test's
    fields are None when the test is left out, and ``note`` then says why; ``note`` also carries
    any caveat about a test that was run, so a report prints it whenever it is not empty.
    """

    tasks: tuple[str, ...]
    strategies: tuple[str, ...]
    ranks: dict[str, dict[str, float]]  # task -> strategy -> rank, 1 = highest accuracy
    average_ranks: dict[str, float]  # strategy -> average rank, best first
    alpha: float
    dropped: tuple[str, ...] = ()  # strategies without an accuracy on some task
    min_tasks: int | None = None  # tasks the test needs with this many strategies
    friedman_chi2: float | None = None
    friedman_p: float | None = None
    iman_davenport_f: float | None = None
    iman_davenport_p: float | None = None
    p_value: float | None = None  # the p that decides: exact or permutation up to 10 tasks, else F's
    p_method: str | None = None  # "exact permutation", "permutation (20,000 draws)" or "Iman–Davenport F"
    q_alpha: float | None = None
    cd: float | None = None
    # maximal sets of strategies not significantly different, best first; every strategy is in one
    groups: tuple[tuple[str, ...], ...] = field(default=())
    note: str = ""

    @property
    def tested(self) -> bool:
        """Whether Friedman's test and the critical difference were computed."""
        return self.friedman_chi2 is not None

    @property
    def differs(self) -> bool:
        """Whether the strategies differ at ``alpha`` (``p_value``), the gate to Nemenyi's test."""
        return self.p_value is not None and self.p_value < self.alpha

    def different(self, a: str, b: str) -> bool:
        """Whether Nemenyi's test tells strategies ``a`` and ``b`` apart at ``alpha``."""
        gap = abs(self.average_ranks[a] - self.average_ranks[b])
        return self.differs and self.cd is not None and gap >= self.cd


@functools.lru_cache(maxsize=256)  # a root search over the studentized range: a few ms a call
def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical value for k strategies: Demšar's Table 5(a) (2.343 for k=3 at 0.05)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, math.inf)) / math.sqrt(2)


def critical_difference(k: int, n_tasks: int, alpha: float = 0.05) -> float:
    """Smallest difference of average ranks Nemenyi's test calls significant."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n_tasks))


def min_tasks(k: int, alpha: float = 0.05) -> int:
    """Tasks needed before the test is run for k strategies: at least ``MIN_TASKS``, and enough for
    unanimous tasks to reach the CD (docs/suites.md says why)."""
    if k < 2:
        raise ValueError(f"a test needs at least 2 strategies, got k={k}")
    unanimous = math.ceil(nemenyi_q(k, alpha) ** 2 * k * (k + 1) / (6 * (k - 1) ** 2) - 1e-9)
    return max(MIN_TASKS, unanimous)


def friedman(average_ranks: Sequence[float], n_tasks: int) -> tuple[float, float]:
    """Friedman's chi-square from average ranks (Demšar's formula, no tie correction) and its p-value."""
    k = len(average_ranks)
    spread = sum(r * r for r in average_ranks) - k * (k + 1) ** 2 / 4
    chi2 = max(0.0, 12 * n_tasks / (k * (k + 1)) * spread)  # rounding can push 0 below zero
    return chi2, float(stats.chi2.sf(chi2, k - 1))


def iman_davenport(chi2: float, n_tasks: int, k: int) -> tuple[float, float]:
    """Iman–Davenport's F from Friedman's chi-square, and its p-value.

    Tasks that all agree on one order without ties give the largest chi-square, N(k-1), where
    F is infinite; its p is then the exact chance of unanimity, (k!)^(1-N), never 0.
    """
    denominator = n_tasks * (k - 1) - chi2
    if denominator <= 1e-12 * n_tasks * k:
        return math.inf, math.factorial(k) ** (1.0 - n_tasks)
    f = (n_tasks - 1) * chi2 / denominator
    return f, float(stats.f.sf(f, k - 1, (k - 1) * (n_tasks - 1)))


def not_different_groups(average_ranks: Mapping[str, float], cd: float) -> tuple[tuple[str, ...], ...]:
    """Maximal runs of strategies (best first) whose average ranks all lie within less than ``cd``.

    On one axis the sets of pairwise-close strategies are runs of neighbours, so each strategy
    opens a run as far as the CD reaches, and runs inside an earlier one are left out. A
    strategy close to none stands alone: every strategy is in some group.
    """
    names = sorted(average_ranks, key=average_ranks.__getitem__)
    groups, reached = [], -1
    for i, first in enumerate(names):
        j = i
        while j + 1 < len(names) and average_ranks[names[j + 1]] - average_ranks[first] < cd:
            j += 1
        if j > reached:
            groups.append(tuple(names[i : j + 1]))
            reached = j
    return tuple(groups)


def task_ranks(accuracies: Mapping[str, float]) -> dict[str, float]:
    """Ranks on one task: 1 for the highest accuracy, ties share the average of their ranks."""
    names = list(accuracies)
    ranks = stats.rankdata([-accuracies[name] for name in names], method="average")
    return {name: float(rank) for name, rank in zip(names, ranks, strict=True)}


def rank_strategies(table: Mapping[str, Mapping[str, float | None]], alpha: float = 0.05) -> Ranking:
    """Rank the strategies of a task -> strategy -> accuracy table and test the ranks.

    A missing strategy, None or a non-finite accuracy counts as no result on that task. Ties are
    exact equality of the accuracies given; round them first if near-equal ones should tie.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if not table:
        raise ValueError("no tasks to rank strategies on")
    tasks = tuple(table)
    results = {t: {name: float(v) for name, v in table[t].items() if v is not None and math.isfinite(v)}
               for t in tasks}
    order = list(dict.fromkeys(name for task in tasks for name in table[task]))
    missing = {name: [t for t in tasks if name not in results[t]] for name in order}
    kept = [name for name in order if not missing[name]]
    dropped = tuple(name for name in order if missing[name])
    notes = []
    if dropped:
        named = "; ".join(f"{name} (no result on {', '.join(missing[name])})" for name in dropped)
        notes.append(f"Left out of the ranking, as they lack a result on some task: {named}.")

    ranks = {task: task_ranks({name: results[task][name] for name in kept}) for task in tasks}
    average = {name: sum(ranks[task][name] for task in tasks) / len(tasks) for name in kept}
    best_first = sorted(kept, key=average.__getitem__)
    ranking = Ranking(tasks, tuple(best_first), ranks, {name: average[name] for name in best_first}, alpha,
                      dropped)
    k, n = len(kept), len(tasks)
    if k < 2:
        have = "No strategy has" if k == 0 else "Only one strategy has"
        notes.append(f"{have} a result on every task: nothing to compare.")
        return replace(ranking, note=" ".join(notes))
    needed = min_tasks(k, alpha)
    if n < needed:
        notes.append(f"Too few tasks for Friedman's test: {n} task{'s' if n != 1 else ''}, and {k} strategies"
                     f" need at least {needed}; ranks only.")
        return replace(ranking, min_tasks=needed, note=" ".join(notes))

    chi2, chi2_p = friedman([average[name] for name in kept], n)
    f, f_p = iman_davenport(chi2, n, k)
    if n <= EXACT_TASKS:
        p, method = friedman_small_p([[ranks[task][name] for name in kept] for task in tasks])
    else:
        p, method = f_p, "Iman–Davenport F"
    q = nemenyi_q(k, alpha)
    cd = critical_difference(k, n, alpha)
    if p < alpha:
        groups = not_different_groups(ranking.average_ranks, cd)
    else:
        groups = (tuple(best_first),)
        notes.append(f"Friedman's test ({method} p = {p:.3g}) finds no difference between"
                     f" the strategies at alpha = {alpha:g}: the average ranks may differ by chance.")
    if n <= EXACT_TASKS:
        notes.append(f"With {n} tasks the chi-square and F approximations do not hold; the p-value that"
                     f" decides is the {method} p of Friedman's statistic.")
    elif k <= RULE_OF_THUMB_STRATEGIES:
        notes.append(f"With {n} tasks and {k} strategies the chi-square approximation is rough (Demšar's"
                     f" rule of thumb asks for more than {RULE_OF_THUMB_TASKS} tasks and"
                     f" {RULE_OF_THUMB_STRATEGIES} strategies); the Iman–Davenport p-value is the one to"
                     " read.")
    return replace(ranking, min_tasks=needed, friedman_chi2=chi2, friedman_p=chi2_p, iman_davenport_f=f,
                   iman_davenport_p=f_p, p_value=p, p_method=method, q_alpha=q, cd=cd, groups=groups,
                   note=" ".join(notes))

