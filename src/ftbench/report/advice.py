"""What would decide an undecided strategy: how many seeds, test examples, or both.

Computed from the bounds as drawn, never clipped at 0: a bound clipped to the best's own
accuracy looks closer to deciding than it is, and the advice would promise too few seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ftbench.report.bootstrap import Replicates


@dataclass(frozen=True)
class ToDecide:
    """A rough estimate of the evidence that would decide an undecided strategy.

    It assumes the observed difference to the best stays where it is and each source's share of
    the bound's distance from it shrinks as one over the square root of its size: seeds per
    strategy, with the test set as it is; test examples, with the seeds as they are; or both
    multiplied by ``scale``. ``seeds`` or ``examples`` is None where that source alone cannot
    decide it (the other source's noise alone already reaches past the margin; for seeds, also
    where a single seed shows no seed noise). ``scale`` is infinite when the difference sits
    on −margin.
    """

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


def to_decide(replicates: Replicates, leads: tuple[np.ndarray, np.ndarray, np.ndarray], row: int,
              observed: float, low: float, high: float, margin: float) -> ToDecide:
    """Shrink the bound on the far side of −margin until it just reaches −margin.

    ``leads``: every replicate's lead of each strategy over the best of the others (strategies x
    resamples), from both sources, the seeds alone and the examples alone; ``observed``, ``low``,
    ``high``: this strategy's observed lead and its unclipped bounds. The t quantile of a few
    seeds shrinks too as seeds are added: left out, so the advice errs towards more.
    """
    strategy, k, n = replicates.strategies[row], replicates.seeds[row], replicates.examples
    half = observed - low if observed > -margin else high - observed
    if abs(observed + margin) < 1e-9 or half <= 0:  # on the margin, up to float rounding
        return ToDecide(strategy, None, None, math.inf)
    ratio = (abs(observed + margin) / half) ** 2  # the share of today's variance that would decide it
    total, v_seed, v_example = (_variance(lead[row]) for lead in leads)
    if v_seed + v_example > 0:  # each source's share of the total
        v_seed, v_example = total * v_seed / (v_seed + v_example), total * v_example / (v_seed + v_example)
    target = ratio * total
    seeds = math.ceil(k * v_seed / (target - v_example)) if k > 1 and target > v_example else None
    examples = math.ceil(n * v_example / (target - v_seed)) if target > v_seed else None
    return ToDecide(strategy, seeds, examples, 1 / ratio)
