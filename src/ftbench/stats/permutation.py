"""Friedman's test for few tasks: the p-value by permutation of each task's ranks, exact where it
is quick (why: docs/suites.md, "How the ranking is computed")."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np

EXACT_WORK = 500_000  # (rank-sum vectors x orders) a step of the exact count may take, else sample
EXACT_STRATEGIES = 6  # 720 orders per task; more, and the count is never quick
PERMUTATIONS = 10_000


def _statistic(rank_sums: np.ndarray) -> np.ndarray:
    """Sum of squared rank sums: for fixed N and k, Friedman's chi-square grows with it."""
    return (rank_sums.astype(np.float64) ** 2).sum(axis=-1)


def friedman_exact_p(ranks: Sequence[Sequence[float]], max_work: int = EXACT_WORK) -> float | None:
    """The exact permutation p of Friedman's statistic for a tasks x strategies table of ranks:
    the distribution of the rank sums built task by task (twice the ranks, so that shared ranks
    stay integers); None when a step would take more than ``max_work`` (rank-sum vectors x orders).
    """
    table = np.rint(2 * np.asarray(ranks, dtype=np.float64)).astype(np.int64)
    if table.shape[1] > EXACT_STRATEGIES:
        return None
    observed = _statistic(table.sum(axis=0))
    base = int(table.sum(axis=0).max()) + 1 if table.size else 1
    place = base ** np.arange(table.shape[1], dtype=np.int64)  # a rank-sum vector as one integer
    sums = np.zeros((1, table.shape[1]), dtype=np.int64)
    probability: np.ndarray = np.ones(1)
    for row in table:
        orders = _orders(tuple(sorted(row.tolist())))
        if len(sums) * len(orders) > max_work:
            return None
        grown = (sums[:, None, :] + orders[None, :, :]).reshape(-1, table.shape[1])
        keys, first, inverse = np.unique(grown @ place, return_index=True, return_inverse=True)
        probability = np.bincount(inverse.ravel(), np.repeat(probability / len(orders), len(orders)),
                                  minlength=len(keys))
        sums = grown[first]
    return float(min(1.0, probability[_statistic(sums) >= observed - 1e-9].sum()))


@functools.lru_cache(maxsize=64)  # a suite's tasks share few distinct rank rows
def _orders(row: tuple[int, ...]) -> np.ndarray:
    """Every distinct order of one task's (doubled) ranks, one per row."""
    orders = np.unique(np.array(list(itertools.permutations(row)), dtype=np.int64), axis=0)
    orders.flags.writeable = False  # shared by every caller
    return orders


def friedman_permutation_p(ranks: Sequence[Sequence[float]], draws: int = PERMUTATIONS,
                           seed: int = 0) -> float:
    """Friedman's p from ``draws`` random permutations of each task's ranks, (1 + reached) /
    (1 + draws): the observed arrangement counts as one, so p is never 0."""
    table = np.asarray(ranks, dtype=np.float64)
    n, k = table.shape
    observed = _statistic(table.sum(axis=0))
    rng = np.random.default_rng(seed)
    reached = 0
    for start in range(0, draws, 1000):
        b = min(1000, draws - start)
        order = rng.random((b, n, k)).argsort(axis=2)
        sums = np.take_along_axis(np.broadcast_to(table, (b, n, k)), order, axis=2).sum(axis=1)
        reached += int((_statistic(sums) >= observed - 1e-9).sum())
    return (1 + reached) / (1 + draws)


def friedman_small_p(ranks: Sequence[Sequence[float]]) -> tuple[float, str]:
    """The permutation p for few tasks: exact where quick, else sampled; and how it was found."""
    exact = friedman_exact_p(ranks)
    if exact is not None:
        return exact, "exact permutation"
    return friedman_permutation_p(ranks), f"permutation ({PERMUTATIONS:,} draws)"
