"""The report's words for a verdict: the recommendation sentence and the answer at every margin."""

from __future__ import annotations

import numpy as np

from ftbench.report import judgement, margins
from ftbench.stats.verdict import WORSE, judge
from tests.helpers import synthetic


def test_where_no_cheaper_strategy_passes_the_margin_the_answer_at_other_margins_is_given():
    rng = np.random.default_rng(12)
    evidence = synthetic(rng, {"full": 0.90, "probe": 0.88}, seeds=5, examples=20_000, seed_sd=0.002)
    costs = {"full": 10.0, "probe": 1.0}
    verdict = judge(evidence, costs, margin=0.01, resamples=400)
    assert verdict.recommendation.pick == "full" and verdict["probe"].word == WORSE
    within = verdict["probe"].within
    assert 0.02 < within < 0.05  # truly 2 points below: shown within a little more than that
    answers = {row.margin: (row.strategy, row.relative_cost) for row in margins.table(verdict, costs)}
    assert answers[0.01] == answers[0.02] == ("full", 1.0) and answers[0.05] == ("probe", 0.1)
    sentence = judgement.recommendation(verdict, costs, "training FLOPs")
    assert f"At a wider margin: probe is shown within {100 * within:.1f} points of the best (95%)" in sentence


def test_when_even_the_leader_is_undecided_the_sentence_says_no_best_can_be_named():
    evidence = synthetic(np.random.default_rng(13), {"a": 0.85, "b": 0.85}, seeds=2, examples=300,
                         seed_sd=0.02)
    verdict = judge(evidence, {"a": 2.0, "b": 1.0}, margin=0.01, resamples=500)
    assert verdict.recommendation.pick is None
    sentence = judgement.recommendation(verdict, {"a": 2.0, "b": 1.0}, "training FLOPs")
    assert "the data cannot name a best at a margin of 1.0 points" in sentence
    assert "is shown within" in sentence and "points of the best (95%)" in sentence
