"""What would decide an undecided strategy: how many seeds, test examples, or both.

Computed from the bounds as drawn, never clipped at 0: a bound clipped to the best's own
accuracy looks closer to deciding than it is, and the advice would promise too few seeds.
The assumptions behind it: docs/report.md ("How the report computes its numbers").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ftbench.stats.bootstrap import Replicates

POWER = 0.8  # the chance, were the truth the observed difference, that the advised evidence decides


@dataclass(frozen=True)
class ToDecide:
    """A rough estimate of the evidence that would decide an undecided strategy: seeds per
    strategy (the test set as it is), test examples (the seeds as they are), or both multiplied
    by ``scale``. ``seeds`` or ``examples`` is None where that source alone cannot decide it (or,
    for seeds, where a single seed shows no seed noise); ``scale`` is infinite when the
    difference sits on −margin."""

    strategy: str
    seeds: int | None
    examples: int | None
    scale: float

    def text(self) -> str:
        ways = ([f"about {self.seeds} seeds per strategy"] if self.seeds is not None else []) + (
            [f"about {self.examples:,} test examples"] if self.examples is not None else [])
        if math.isfinite(self.scale):
            ways.append(f"about {self.scale:.1f}× as many of both" if self.scale < 1000
                        else "over 1,000× as many of both")
        return f"{self.strategy}: " + (", or ".join(ways) if ways else "nothing: it sits on the margin")


def _variance(values: np.ndarray) -> float:
    """A spread robust to Student's tails (a t with 1 or 2 degrees of freedom has no variance):
    the interquartile range's normal equivalent, squared."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return float(((q3 - q1) / 1.349) ** 2)


def _seed_variance_median(k: int) -> float:
    """The factor that makes the seed variance of ``k`` seeds median-unbiased: (k − 1) over the
    median of χ²(k − 1). Measured in simulation (``tests/stats/test_advice.py``): followed advice
    decided an equal strategy in 67% of draws with it, about 55% without; the one-sided 80% upper
    limit (Browne 1995) gave about 94%, at twice the seeds."""
    return (k - 1) / float(special.chdtri(k - 1, 0.5))


def to_decide(replicates: Replicates, leads: tuple[np.ndarray, np.ndarray, np.ndarray], row: int,
              observed: float, low: float, high: float, margin: float) -> ToDecide:
    """Shrink the bound on the far side of −margin until it clears −margin with probability
    ``POWER`` (sized just to reach it, half the experiments so advised stay undecided: 52% of
    simulated ones decided an equal strategy).

    ``leads``: every replicate's lead of each strategy over the best of the others (strategies x
    resamples), from both sources, the seeds alone and the examples alone; ``observed``, ``low``,
    ``high``: this strategy's observed lead and its unclipped bounds. The t quantile of a few
    seeds shrinks too as seeds are added: left out, so the advice errs towards more.
    """
    strategy, k, n = replicates.strategies[row], replicates.seeds[row], replicates.examples
    half = observed - low if observed > -margin else high - observed
    if abs(observed + margin) < 1e-9 or half <= 0:  # on the margin, up to float rounding
        return ToDecide(strategy, None, None, math.inf)
    total, v_seed, v_example = (_variance(lead[row]) for lead in leads)
    spare = float(special.ndtri(POWER)) * math.sqrt(total)  # today's z(POWER) standard deviations
    ratio = (abs(observed + margin) / (half + spare)) ** 2  # the share of today's variance that decides it
    if v_seed + v_example > 0:  # each source's share of the total
        v_seed, v_example = total * v_seed / (v_seed + v_example), total * v_example / (v_seed + v_example)
    target = ratio * total
    seeds = (math.ceil(k * v_seed * _seed_variance_median(k) / (target - v_example))
             if k > 1 and target > v_example else None)
    examples = math.ceil(n * v_example / (target - v_seed)) if target > v_seed else None
    return ToDecide(strategy, seeds, examples, 1 / ratio)
