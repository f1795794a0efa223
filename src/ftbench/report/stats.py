"""Student's t over seeds: the interval of runs that kept no predictions (marked ‡), the one
place the report has no bootstrap to draw from."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from functools import cache

from scipy import stats


@cache
def t_quantile(dof: int, confidence: float = 0.95) -> float:
    """The two-sided Student-t quantile of a ``confidence`` interval with ``dof`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def t_half_width(values: Sequence[float], confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t interval of the mean; None below two values."""
    if len(values) < 2:
        return None
    return t_quantile(len(values) - 1, confidence) * statistics.stdev(values) / math.sqrt(len(values))
