"""Statistics of the report: intervals over seeds (scipy.stats)."""

from __future__ import annotations

import math
import statistics

from scipy import stats


def t_half_width(values: list[float], confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t interval of the mean; None below two values."""
    if len(values) < 2:
        return None
    quantile = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1))
    return quantile * statistics.stdev(values) / math.sqrt(len(values))
