"""Following the verdict's advice decides the strategy it was given for, on synthetic predictions
whose truth is known, through the report's own ``verdict.judge``.

Each repetition draws a first experiment (3 seeds, seed noise of 2 points dominating 4,000 test
examples) until the cheap strategy is undecided at a 1-point margin, reads what would decide it
(``ToDecide.seeds``: seeds per strategy), draws a fresh experiment of that size from the same
truth, and asks whether its verdict now decides the cheap strategy (equivalent or worse).
Advice that gives no number of seeds (the test set alone already reaches past the margin) cannot
be followed; advice of more than ``MOST_SEEDS`` seeds is not followed, to keep the test short
(both are counted, and the second bounded).

Monte Carlo error: a rate near 50% measured over 300 followed pieces of advice has a standard
error of 2.9 points (√(0.5·0.5/300)); near 70%, 2.6 points.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftbench.stats.verdict import EQUIVALENT, UNDECIDED, WORSE, judge
from tests.helpers import synthetic

REPEATS, RESAMPLES, MOST_SEEDS = 300, 500, 300
SEEDS, EXAMPLES, SEED_SD, MARGIN = 3, 4000, 0.02, 0.01
COSTS = {"best": 10.0, "cheap": 1.0}


def follow_advice(truth: dict[str, float], seed: int) -> dict[str, int]:
    """Counts until ``REPEATS`` pieces of advice were followed: the fresh verdict's word on the
    cheap strategy, and the first experiments that gave no number of seeds ("none") or more than
    ``MOST_SEEDS`` ("too_many")."""
    rng = np.random.default_rng(seed)
    counts = {EQUIVALENT: 0, WORSE: 0, UNDECIDED: 0, "none": 0, "too_many": 0}
    draw = 0
    while counts[EQUIVALENT] + counts[WORSE] + counts[UNDECIDED] < REPEATS:
        draw += 1
        first = judge(synthetic(rng, truth, seeds=SEEDS, examples=EXAMPLES, seed_sd=SEED_SD), COSTS,
                      margin=MARGIN, resamples=RESAMPLES, seed=draw)
        if first["cheap"].word != UNDECIDED:
            continue
        advice = next(a for a in first.recommendation.undecided if a.strategy == "cheap")
        if advice.seeds is None or advice.seeds > MOST_SEEDS:
            counts["none" if advice.seeds is None else "too_many"] += 1
            continue
        fresh = judge(synthetic(rng, truth, seeds=advice.seeds, examples=EXAMPLES, seed_sd=SEED_SD), COSTS,
                      margin=MARGIN, resamples=RESAMPLES, seed=draw)
        counts[fresh["cheap"].word] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize(("truth", "right"), [
    ({"best": 0.85, "cheap": 0.82}, WORSE),  # 3 margins below the best
    ({"best": 0.85, "cheap": 0.85}, EQUIVALENT),  # equal to the best
], ids=["three-points-worse", "equal"])
def test_the_advised_seeds_decide_the_strategy_at_least_half_the_time(truth, right):
    """With the advised number of seeds per strategy the cheap strategy is decided in at least
    half of 300 followed pieces of advice (± 2.9 points of Monte Carlo error near 50%; measured:
    86% for the worse one, 67% for the equal one, against 80% and 52% when the advice only aimed
    for the bound to reach the margin; a quarter of the advice gave 63% and 47%), and the word,
    when there is one, is the true one in at least 95% of them. Advice past ``MOST_SEEDS`` stays
    under a third of the advice given."""
    counts = follow_advice(truth, seed=27)
    decided = counts[EQUIVALENT] + counts[WORSE]
    assert decided / REPEATS >= 0.5
    assert counts[right] >= 0.95 * decided
    assert counts["too_many"] <= (REPEATS + counts["too_many"]) / 3
