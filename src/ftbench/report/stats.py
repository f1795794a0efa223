"""Statistics of the report, from scipy.stats: intervals over seeds, paired tests, Holm."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from scipy import stats

ALPHA = 0.05
# accuracies closer than this are the same count of test examples (float32 keeps about 7 digits;
# two such values differ by up to ~1.2e-7 from rounding; a test set of a million examples
# moves in steps of 1e-6)
SAME_ACCURACY = 5e-7


@cache
def t_quantile(dof: int, confidence: float = 0.95) -> float:
    """The two-sided Student-t quantile of a ``confidence`` interval with ``dof`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def t_half_width(values: Sequence[float], confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t interval of the mean; None below two values."""
    if len(values) < 2:
        return None
    return t_quantile(len(values) - 1, confidence) * statistics.stdev(values) / math.sqrt(len(values))


@dataclass
class Paired:
    """Two strategies compared on the seeds both ran: A - B."""

    a: str
    b: str
    seeds: list
    mean_difference: float | None
    t: float | None
    p: float | None
    p_holm: float | None = None

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < ALPHA


def paired_test(a: str, b: str, by_seed_a: Mapping, by_seed_b: Mapping) -> Paired:
    """Student's paired t-test of A against B over their shared seeds (two-sided).

    Differences that are all equal carry no evidence of spread: when they are all zero the
    strategies are indistinguishable (p = 1); otherwise there is no test (t and p None), because
    a t-test would divide by zero spread and call a one-image gap on every seed certain (p = 0).
    Such a pair is judged by its bootstrap interval over test examples (``report.verdict``).
    """
    seeds = sorted(set(by_seed_a) & set(by_seed_b), key=str)
    diffs = [by_seed_a[s] - by_seed_b[s] for s in seeds]
    # equal up to rounding: accuracies are counts over the test set, kept as float32 (about 7
    # digits), so 1 - 269/270 and 269/270 - 268/270 differ in the last bits, which is no spread
    spreadless = len(diffs) >= 2 and all(math.isclose(d, diffs[0], abs_tol=SAME_ACCURACY) for d in diffs)
    if len(diffs) < 2 or (spreadless and not math.isclose(diffs[0], 0, abs_tol=SAME_ACCURACY)):
        return Paired(a, b, seeds, statistics.fmean(diffs) if diffs else None, None, None)
    if spreadless:
        t, p = 0.0, 1.0
    else:
        result = stats.ttest_rel([by_seed_a[s] for s in seeds], [by_seed_b[s] for s in seeds])
        t, p = float(result.statistic), float(result.pvalue)
    return Paired(a, b, seeds, statistics.fmean(diffs), t, p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test, left out)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m, running, adjusted = len(tested), 0.0, [None] * len(p_values)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def all_pairs(by_strategy: Mapping[str, Mapping]) -> list[Paired]:
    """Every pair of strategies (in the given order), tested and Holm-adjusted as one family."""
    names = list(by_strategy)
    pairs = [paired_test(a, b, by_strategy[a], by_strategy[b])
             for i, a in enumerate(names) for b in names[i + 1:]]
    for pair, adjusted in zip(pairs, holm([p.p for p in pairs]), strict=True):
        pair.p_holm = adjusted
    return pairs
