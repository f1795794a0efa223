"""The verdict's bounds on each strategy's difference to the best, from the bootstrap's replicates:
lower ones decide "equivalent" (joint over the candidates), upper ones "worse" (over every pair).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ftbench.stats.bootstrap import Replicates, max_t


def lead(accuracy: np.ndarray) -> np.ndarray:
    """Each strategy's accuracy less the best of the others, column by column (strategies x
    columns): the leader's lead where it leads, the gap to the leader everywhere else."""
    if len(accuracy) == 1:
        return np.zeros_like(accuracy)
    top = np.partition(accuracy, -2, axis=0)
    first, second = top[-1], top[-2]
    return accuracy - np.where(accuracy == first, second, first)


def joint_level(alpha: float, joint: np.ndarray) -> float:
    """The per-strategy level at which the lower bounds of the ``joint`` rows all hold with
    probability at least 1 − ``alpha``: Bonferroni over the candidates (a level calibrated on the
    replicates, a max statistic, picked a wrong strategy twice as often: docs/report.md)."""
    return alpha / max(1, int(np.count_nonzero(joint)))


def lower_bounds(replicates: Replicates, joint: np.ndarray | None = None) -> np.ndarray:
    """One-sided lower bounds of each strategy's true lead over the best of the others (negative:
    its gap to the best), holding together for the ``joint`` rows (a boolean mask; default all).

    The best of the others is taken inside every replicate; the flattery of choosing a leader
    after the fact shows as replicates below the observed difference, and the bias-corrected
    percentile (Efron 1987) moves the quantile by as much. Percentiles, unlike a mirrored (basic)
    interval, keep how lopsided a difference is near 100%.
    """
    alpha = 1 - replicates.confidence
    observed = lead(replicates.observed[:, None])
    leads = lead(replicates.accuracy)
    resamples = leads.shape[1]
    tie = np.isclose(leads, observed, rtol=0, atol=1e-12)
    below = ((leads < observed) & ~tie).mean(axis=1) + tie.mean(axis=1) / 2
    bias = special.ndtri(np.clip(below, 0.5 / resamples, 1 - 0.5 / resamples))
    joint = np.ones(len(leads), bool) if joint is None else np.asarray(joint, bool)
    level = joint_level(alpha, joint)
    return _quantiles(leads, special.ndtr(2 * bias + special.ndtri(level)))


def _quantiles(rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each row's quantile at its own level, interpolated as ``np.quantile`` does by default."""
    ordered = np.sort(rows, axis=1)
    position = levels * (rows.shape[1] - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, rows.shape[1] - 1)
    at = np.arange(len(rows))
    return ordered[at, below] + (position - below) * (ordered[at, above] - ordered[at, below])


def upper_bounds(replicates: Replicates) -> np.ndarray:
    """One-sided upper bounds of each strategy's true difference to the best, holding for all
    strategies together (not clipped at 0): the smallest of its pairwise upper bounds, each from
    one max-|t| band over every pair (``bootstrap.max_t``), so that choosing the best after the
    fact cannot turn noise into "worse"."""
    accuracy, observed = replicates.accuracy, replicates.observed
    if len(observed) == 1:
        return np.zeros(1)
    others = ~np.eye(len(observed), dtype=bool)
    difference = observed[:, None] - observed[None, :]
    spread = np.zeros_like(difference)
    spread[others], c = max_t((accuracy[:, None, :] - accuracy[None, :, :])[others], difference[others],
                              replicates.confidence)
    return np.where(others, difference + c * spread, np.inf).min(axis=1)
