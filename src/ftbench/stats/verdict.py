"""Which strategies are as good as the best, from per-example predictions: the report's verdict.

Against the best, each strategy is ``equivalent`` (the lower bound of its difference to the best
lies above −margin), ``worse`` (the upper bound lies below −margin) or ``undecided``, from the
one bootstrap of the report (``bootstrap``) and its bounds (``bounds``: joint over the candidates,
so the cheapest equivalent pick holds at the stated error). Fewer than 2 completed seeds give no
word; a failed or diverged run makes a strategy unstable, never recommended. The method, for the
report's reader: docs/report.md ("Reading the report", "How the report computes its numbers").
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ftbench.stats.advice import ToDecide, to_decide
from ftbench.stats.bootstrap import (
    Evidence,
    Interval,
    Replicates,
    align,
    bootstrap,
    difference,
    interval,
    resolution,
)
from ftbench.stats.bounds import lead, lower_bounds, upper_bounds
from ftbench.stats.choice import check

__all__ = ["Evidence", "Interval", "Judged", "Recommendation", "Replicates", "ToDecide", "Verdict", "align",
           "bootstrap", "difference", "interval", "judge", "resolution"]

EQUIVALENT, UNDECIDED, WORSE = "equivalent", "undecided", "worse"
CANNOT_RANK = ("this task is too easy/small to rank these strategies; use a harder task, more test "
               "images, or fewer training images (dataset.train_fraction)")
TOO_FEW_SEEDS = "too few seeds"
MIN_SEEDS = 2  # completed seeds before a strategy gets a word
TIE = 1e-12  # accuracies this close are one count of test examples: a tie


def unstable_text(failed: int, completed: int) -> str:
    return f"unstable: {failed} of {failed + completed} runs failed or diverged"


@dataclass(frozen=True)
class Judged:
    """One strategy against the best, in accuracy: a row of the verdict's table.

    ``to_best`` is the observed difference to the observed best (≤ 0). ``to_best_low`` and
    ``to_best_high`` bound the true difference to the best (≤ 0, one-sided at the verdict's
    confidence): the lower bound joint over the strategies with a word (``bounds.lower_bounds``),
    the upper bound over every pair (``bounds.upper_bounds``). ``word``: ``EQUIVALENT``,
    ``UNDECIDED`` or ``WORSE``; ``caveat`` says why a strategy cannot be recommended ("too few
    seeds", "unstable: …"), None if it can. ``within`` is the smallest margin at which it is shown
    equivalent to the best (None: too few seeds). ``best_share``: the share of replicates it led
    (ties split).
    """

    strategy: str
    seeds: int
    accuracy: Interval
    to_best: float
    to_best_low: float
    to_best_high: float
    word: str
    best_share: float
    within: float | None = None
    failed: int = 0
    caveat: str | None = None


@dataclass(frozen=True)
class Recommendation:
    """The cheapest stable strategy called equivalent to the best (``pick``; None when none is),
    the observed best (``best``; ``leaders``: every strategy tied with it), and the undecided
    strategies cheaper than the pick (all of them when there is no pick), cheapest first, with
    what would decide them. ``unpriced`` strategies have no cost and are never picked."""

    pick: str | None
    best: str
    undecided: tuple[ToDecide, ...]
    unpriced: tuple[str, ...]
    leaders: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Verdict:
    """Everything the report shows of one comparison.

    ``strategies`` are sorted by accuracy, best first (ties by cost, then name). ``failed``
    counts each strategy's failed final runs, those without a completed run included. ``notes``
    are sentences the report shows beside the table; ``cannot_rank`` says one of them is the
    too-easy/too-small warning. ``interval`` and ``difference`` read the one bootstrap, also for
    runs shown beside the verdict but not judged (``judge(..., judged=...)``).
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
    failed: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, strategy: str) -> Judged:
        return next(j for j in self.strategies if j.strategy == strategy)

    def interval(self, strategy: str) -> Interval:
        return interval(self.replicates, strategy)

    def difference(self, a: str, b: str) -> Interval:
        return difference(self.replicates, a, b)


def judge(evidence: Evidence, costs: Mapping[str, float | None], margin: float = 0.01,
          confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
          failed: Mapping[str, int] | None = None, judged: Sequence[str] | None = None) -> Verdict:
    """Sort every strategy into equivalent / undecided / worse against the best, and recommend the
    cheapest equivalent stable one (``costs``: lower is cheaper, e.g. total FLOPs with the search).

    ``failed``: each strategy's failed or diverged final runs (they make it unstable). ``judged``:
    the strategies compared (default: all of the evidence); the others are bootstrapped with them
    and only given intervals (``Verdict.interval``), e.g. a tuned comparison's default runs.
    """
    check({"margin": margin, "confidence": confidence, "resamples": resamples}, min_resamples=1)
    failed = {s: n for s, n in (failed or {}).items() if n}
    drawn = bootstrap(evidence, resamples, seed, confidence)
    replicates = drawn.subset(list(judged) if judged is not None else evidence.strategies)
    observed, seeds = replicates.observed, np.array(replicates.seeds)
    measured = seeds >= MIN_SEEDS
    lows = lower_bounds(replicates, joint=measured)
    highs = np.zeros(len(observed))
    if measured.sum() >= 2:  # only strategies whose seed noise is measured can hold another "worse"
        highs[measured] = upper_bounds(replicates.subset([s for s, m in zip(replicates.strategies, measured,
                                                                             strict=True) if m]))
    top = replicates.accuracy.max(axis=0)
    leading = np.isclose(replicates.accuracy, top, rtol=0, atol=TIE)
    shares = (leading / leading.sum(axis=0)).mean(axis=1)
    best = observed.max()
    rows = []
    for i, strategy in enumerate(replicates.strategies):
        k, lost = int(seeds[i]), failed.get(strategy, 0)
        word = (UNDECIDED if not measured[i] else EQUIVALENT if lows[i] > -margin
                else WORSE if highs[i] < -margin else UNDECIDED)
        reasons = ([] if measured[i] else [TOO_FEW_SEEDS]) + ([unstable_text(lost, k)] if lost else [])
        caveat = "; ".join(reasons) or None
        rows.append(Judged(strategy, k, interval(replicates, strategy), float(observed[i] - best),
                           min(0.0, float(lows[i])), min(0.0, float(highs[i])), word, float(shares[i]),
                           max(0.0, -float(lows[i])) if measured[i] else None, lost, caveat))
    rows.sort(key=lambda j: (-j.accuracy.estimate, _price(costs, j.strategy), j.strategy))
    width = resolution(evidence.examples, rows[0].accuracy.estimate, confidence)
    notes, cannot_rank = _notes(evidence, rows, margin, width)
    leads = (lead(replicates.accuracy), lead(replicates.seeds_only), lead(replicates.examples_only))
    advice = {s: to_decide(replicates, leads, i, float(lead(observed[:, None])[i, 0]), float(lows[i]),
                           float(highs[i]), margin) for i, s in enumerate(replicates.strategies)}
    return Verdict(tuple(rows), _recommend(rows, costs, advice), margin, confidence, resamples,
                   evidence.examples, evidence.left_out, width, cannot_rank, tuple(notes), drawn, failed)


def _price(costs: Mapping[str, float | None], strategy: str) -> float:
    cost = costs.get(strategy)
    return float("inf") if cost is None else cost


def _recommend(judged: list[Judged], costs: Mapping[str, float | None],
               advice: Mapping[str, ToDecide]) -> Recommendation:
    priced = [j for j in judged if costs.get(j.strategy) is not None and j.caveat is None]
    pick = min((j for j in priced if j.word == EQUIVALENT),
               key=lambda j: (_price(costs, j.strategy), -j.accuracy.estimate, j.strategy), default=None)
    undecided = sorted((j for j in priced if j.word == UNDECIDED
                        and (pick is None or _price(costs, j.strategy) < _price(costs, pick.strategy))),
                       key=lambda j: (_price(costs, j.strategy), j.strategy))
    top = judged[0].accuracy.estimate
    leaders = tuple(sorted(j.strategy for j in judged if abs(j.accuracy.estimate - top) <= TIE))
    return Recommendation(pick.strategy if pick else None, judged[0].strategy,
                          tuple(advice[j.strategy] for j in undecided),
                          tuple(j.strategy for j in judged if costs.get(j.strategy) is None), leaders)


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
    single = [j.strategy for j in judged if j.seeds < MIN_SEEDS]
    if single:
        notes.append(f"{', '.join(single)} completed fewer than {MIN_SEEDS} seeds: seed noise is not "
                     f"measured, so {'it gets' if len(single) == 1 else 'they get'} no word and cannot be "
                     "recommended.")
    return notes, bool(reasons)
