"""Statistics of the report: intervals over seeds (scipy.stats)."""

from __future__ import annotations

import math
import statistics
from functools import cache

from scipy import stats


@cache
def t_quantile(dof: int, confidence: float = 0.95) -> float:
    """The two-sided Student-t quantile of a ``confidence`` interval with ``dof`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def t_half_width(values: list[float], confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t interval of the mean; None below two values."""
    if len(values) < 2:
        return None
    return t_quantile(len(values) - 1, confidence) * statistics.stdev(values) / math.sqrt(len(values))
