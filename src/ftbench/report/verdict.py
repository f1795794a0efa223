"""Which strategies are as good as the best, from per-example predictions: the report's verdict.

Two sources of noise move a measured accuracy: the training seed and the test set (which
examples happened to be drawn into it). Every interval here comes from one two-level bootstrap
that resamples both: in each replicate, each strategy's seeds are drawn with replacement, and
one resample of the test examples, shared by every strategy, weighs each example. Sharing the
example resample keeps strategies paired per example, so an image every strategy gets wrong
moves all of them together and cancels from their differences. The seed level is rescaled so
that chance on the examples is not counted twice and a few seeds get Student's t tails
(``_seed_spread``).

A difference matters only beyond a **margin** (accuracy units) the user chooses. Against the
best, each strategy is

- ``equivalent`` (or better): the lower confidence bound of its difference to the best lies
  above −margin;
- ``worse``: the upper confidence bound lies below −margin;
- ``undecided``: the bounds straddle −margin; more seeds or test examples would decide it.

Which strategy is the best is not known, only estimated from the same data. The lower bound
takes the best inside every replicate (whichever strategy leads it) and corrects for how much
choosing a leader after the fact flatters it; the upper bounds hold for every pair at once, so a
"worse" stays true whichever strategy is in fact the best. "Not significant" never stands in for
"equal", and a pair whose runs never differ in spread still gets an interval from the test
examples, never p = 0.

The recommendation is the cheapest strategy called equivalent; the verdict warns when a task is
too easy or too small to rank strategies (``bootstrap.resolution``). The bootstrap: ``bootstrap``.
"""


from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from ftbench.report.bootstrap import (
    Evidence,
    Interval,
    Replicates,
    _user_error,
    align,
    bootstrap,
    difference,
    interval,
    resolution,
)

__all__ = ["Evidence", "Interval", "Replicates", "align", "bootstrap", "difference", "interval", "resolution"]

EQUIVALENT, UNDECIDED, WORSE = "equivalent", "undecided", "worse"
WORDS = (EQUIVALENT, UNDECIDED, WORSE)
CANNOT_RANK = ("this task is too easy/small to rank these strategies; use a harder task, more test "
               "images, or fewer training images (dataset.train_fraction)")



def _lead(accuracy: np.ndarray) -> np.ndarray:
    """Each strategy's accuracy less the best of the others, column by column (strategies x
    columns): the leader's lead where it leads, the gap to the leader everywhere else."""
    if len(accuracy) == 1:
        return np.zeros_like(accuracy)
    top = np.partition(accuracy, -2, axis=0)
    first, second = top[-1], top[-2]
    return accuracy - np.where(accuracy == first, second, first)


def lower_bounds(replicates: Replicates) -> np.ndarray:
    """One-sided lower bounds, at the replicates' confidence, of each strategy's true lead over
    the best of the others (negative: its gap to the best).

    The best of the others is taken inside every replicate, so whichever strategy leads a
    replicate is the best it is measured against. Choosing a leader after the fact flatters
    the leader (the best of several noisy accuracies is too high), which shows as replicates
    sitting below the observed difference; the bias-corrected percentile (Efron 1987) moves
    the quantile by as much. Percentiles, unlike a mirrored (basic) interval, keep how lopsided
    a difference is near 100%, where a missed image can only cost. A bound above 0 says the
    strategy is the best; above −margin, that it is within the margin of it.
    """
    alpha = 1 - replicates.confidence
    observed = _lead(replicates.observed[:, None])
    lead = _lead(replicates.accuracy)
    resamples = lead.shape[1]
    tie = np.isclose(lead, observed, rtol=0, atol=1e-12)
    below = ((lead < observed) & ~tie).mean(axis=1) + tie.mean(axis=1) / 2
    bias = special.ndtri(np.clip(below, 0.5 / resamples, 1 - 0.5 / resamples))
    return _quantiles(lead, special.ndtr(2 * bias + special.ndtri(alpha)))


def _quantiles(rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each row's quantile at its own level, interpolated as ``np.quantile`` does by default."""
    ordered = np.sort(rows, axis=1)
    position = levels * (rows.shape[1] - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, rows.shape[1] - 1)
    at = np.arange(len(rows))
    return ordered[at, below] + (position - below) * (ordered[at, above] - ordered[at, below])


def upper_bounds(replicates: Replicates) -> np.ndarray:
    """One-sided upper bounds, at the replicates' confidence, of each strategy's true difference
    to the best, holding for all strategies together.

    A strategy is worse than the best by more than d when some strategy beats it by more than d,
    so its bound is the smallest of its pairwise upper bounds: the pair's observed difference
    plus c of its bootstrap standard deviations. c is the quantile, over replicates, of the
    largest standardised deviation of any pair, so every pairwise bound holds at once whichever
    strategy is in fact the best: choosing the best after the fact cannot turn noise into "worse".
    """
    accuracy, observed = replicates.accuracy, replicates.observed
    if len(observed) == 1:
        return np.zeros(1)
    pairs = accuracy[:, None, :] - accuracy[None, :, :]
    difference = observed[:, None] - observed[None, :]
    spread = pairs.std(axis=2)
    standardised = np.divide(pairs - difference[..., None], spread[..., None],
                             out=np.zeros_like(pairs), where=spread[..., None] > 0)
    others = ~np.eye(len(observed), dtype=bool)
    c = np.quantile(standardised[others].max(axis=0), replicates.confidence)
    bound = np.where(others, difference + c * spread, np.inf)
    return np.minimum(0.0, bound.min(axis=1))


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
            ways.append(f"about {self.scale:.1f}× as many of both")
        return f"{self.strategy}: " + (", or ".join(ways) if ways else "nothing: it sits on the margin")


def _to_decide(replicates: Replicates, row: int, to_best: float, low: float, high: float,
               margin: float) -> ToDecide:
    """Shrink the bound on the far side of −margin until it just reaches −margin."""
    strategy, k, n = replicates.strategies[row], replicates.seeds[row], replicates.examples
    half = to_best - low if to_best > -margin else high - to_best
    if to_best == -margin or half <= 0:
        return ToDecide(strategy, None, None, math.inf)
    ratio = (abs(to_best + margin) / half) ** 2  # the share of today's variance that would decide it
    total = float(np.var(_lead(replicates.accuracy)[row]))
    v_seed = float(np.var(_lead(replicates.seeds_only)[row]))
    v_example = float(np.var(_lead(replicates.examples_only)[row]))
    if v_seed + v_example > 0:  # each source's share of the total
        v_seed, v_example = total * v_seed / (v_seed + v_example), total * v_example / (v_seed + v_example)
    target = ratio * total
    seeds = math.ceil(k * v_seed / (target - v_example)) if k > 1 and target > v_example else None
    examples = math.ceil(n * v_example / (target - v_seed)) if target > v_seed else None
    return ToDecide(strategy, seeds, examples, 1 / ratio)


@dataclass(frozen=True)
class Judged:
    """One strategy against the best, in accuracy: a row of the verdict's table.

    ``to_best`` is the observed difference to the observed best (≤ 0). ``to_best_low`` and
    ``to_best_high`` bound the true difference to the best (≤ 0), each one-sided at the verdict's
    confidence: the lower bound for this strategy (``lower_bounds``), the upper bound holding for
    all strategies at once (``upper_bounds``). ``word`` is one of ``WORDS``. ``best_share`` is the
    share of replicates in which this strategy led.
    """

    strategy: str
    seeds: int
    accuracy: Interval
    to_best: float
    to_best_low: float
    to_best_high: float
    word: str
    best_share: float


@dataclass(frozen=True)
class Recommendation:
    """The cheapest strategy called equivalent to the best (``pick``; None when none is), the
    observed best, and the undecided strategies cheaper than the pick (all of them when there is
    no pick), cheapest first, with what would decide them. ``unpriced`` strategies have no cost
    and are never picked."""

    pick: str | None
    best: str
    undecided: tuple[ToDecide, ...]
    unpriced: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Verdict:
    """Everything the report shows of one comparison; ``difference`` gives any pair's interval.

    ``strategies`` are sorted by accuracy, best first. ``notes`` are sentences the report shows
    beside the table; ``cannot_rank`` says one of them is the too-easy/too-small warning.
    """

    strategies: tuple[Judged, ...]
    recommendation: Recommendation
    margin: float
    confidence: float
    resamples: int
    examples: int
    left_out: int
    resolution: float
    cannot_rank: bool
    notes: tuple[str, ...]
    replicates: Replicates = field(repr=False)

    def __getitem__(self, strategy: str) -> Judged:
        return next(j for j in self.strategies if j.strategy == strategy)

    def difference(self, a: str, b: str) -> Interval:
        return difference(self.replicates, a, b)


def judge(evidence: Evidence, costs: Mapping[str, float | None], margin: float = 0.01,
          confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Verdict:
    """Sort every strategy into equivalent / undecided / worse against the best, and recommend the
    cheapest equivalent one (``costs``: lower is cheaper, e.g. total FLOPs with the search)."""
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 <= margin < 1:
        raise _user_error(f"report.margin={margin}: the margin is an accuracy difference, at least 0 and "
                          "below 1 (e.g. 0.01 for one point)")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.5 < confidence < 1:
        raise _user_error(f"report.confidence={confidence}: choose a confidence between 0.5 and 1, e.g. 0.95")
    replicates = bootstrap(evidence, resamples, seed, confidence)
    observed = replicates.observed
    lows, highs = lower_bounds(replicates), upper_bounds(replicates)
    leaders = np.bincount(replicates.accuracy.argmax(axis=0), minlength=len(observed)) / resamples
    judged = []
    for i, strategy in enumerate(replicates.strategies):
        word = EQUIVALENT if lows[i] > -margin else WORSE if highs[i] < -margin else UNDECIDED
        judged.append(Judged(strategy, replicates.seeds[i], interval(replicates, strategy),
                             float(observed[i] - observed.max()), min(0.0, float(lows[i])), float(highs[i]),
                             word, float(leaders[i])))
    judged.sort(key=lambda j: -j.accuracy.estimate)
    width = resolution(evidence.examples, judged[0].accuracy.estimate, confidence)
    notes, cannot_rank = _notes(evidence, judged, margin, width)
    return Verdict(tuple(judged), _recommend(judged, costs, replicates, margin), margin, confidence,
                   resamples, evidence.examples, evidence.left_out, width, cannot_rank, tuple(notes),
                   replicates)


def _recommend(judged: list[Judged], costs: Mapping[str, float | None], replicates: Replicates,
               margin: float) -> Recommendation:
    priced = [j for j in judged if costs.get(j.strategy) is not None]
    pick = min((j for j in priced if j.word == EQUIVALENT),
               key=lambda j: (costs[j.strategy], -j.accuracy.estimate), default=None)
    undecided = sorted((j for j in priced if j.word == UNDECIDED
                        and (pick is None or costs[j.strategy] < costs[pick.strategy])),
                       key=lambda j: costs[j.strategy])
    return Recommendation(
        pick.strategy if pick else None, judged[0].strategy,
        tuple(_to_decide(replicates, replicates.row(j.strategy), j.to_best, j.to_best_low, j.to_best_high,
                         margin) for j in undecided),
        tuple(j.strategy for j in judged if costs.get(j.strategy) is None))


def _notes(evidence: Evidence, judged: list[Judged], margin: float, width: float) -> tuple[list[str], bool]:
    """Sentences the report shows beside the verdict, and whether the task cannot rank them."""
    best, n = judged[0], evidence.examples
    resolves = f"the test set's resolution (±{width:.4f} at {n:,} examples)"
    notes, reasons = [], []
    if 1 - best.accuracy.estimate <= width:
        reasons.append(f"the best accuracy ({best.accuracy.estimate:.4f}) is within it of 100%")
    close = [j.strategy for j in judged[1:] if best.accuracy.estimate - j.accuracy.estimate <= width]
    if close:
        reasons.append(f"{', '.join(close)} {'lies' if len(close) == 1 else 'lie'} within it of the best "
                       f"({best.strategy})")
    if reasons:
        notes.append(f"At {resolves}, {' and '.join(reasons)}: {CANNOT_RANK}.")
    if margin < width:
        notes.append(f"The margin ({margin:.4f}) is below {resolves}: a difference of one margin is "
                     "decided only where strategies fail on much the same examples.")
    if evidence.left_out:
        notes.append(f"{evidence.left_out:,} test examples missing from some run were left out; every "
                     f"strategy is judged on the {n:,} examples all runs have.")
    single = [j.strategy for j in judged if j.seeds < 2]
    if single:
        notes.append(f"{', '.join(single)} ran one seed: {'its' if len(single) == 1 else 'their'} "
                     "interval holds test-set noise only; seed noise is not measured.")
    return notes, bool(reasons)
