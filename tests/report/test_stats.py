"""The report's statistics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from ftbench.report.stats import all_pairs, holm, paired_test, t_half_width


def test_the_paired_t_test_matches_a_hand_computation():
    a = {0: 0.90, 1: 0.92, 2: 0.95}
    b = {0: 0.88, 1: 0.91, 2: 0.90}
    pair = paired_test("a", "b", a, b)
    # differences 0.02, 0.01, 0.05: mean 0.02667, sd 0.020817, t = mean / (sd / sqrt 3)
    assert pair.mean_difference == pytest.approx(0.026667, abs=1e-6)
    assert pair.t == pytest.approx(0.026667 / (0.020817 / math.sqrt(3)), rel=1e-4)
    # two-sided p of t = 2.2188 with 2 degrees of freedom: 2 * (1 - F(t)), F the t CDF
    assert pair.p == pytest.approx(0.15665, abs=2e-4)
    assert pair.seeds == [0, 1, 2]


def test_pairs_use_only_the_seeds_both_ran_and_say_so_below_two():
    assert paired_test("a", "b", {0: 1.0, 1: 0.5, 7: 0.1}, {1: 0.4, 7: 0.3}).seeds == [1, 7]
    single = paired_test("a", "b", {0: 0.9}, {0: 0.8})
    assert single.p is None and single.mean_difference == pytest.approx(0.1)
    same = paired_test("a", "b", {0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.8})
    assert same.p == 1.0 and not same.significant


def test_a_pair_with_no_spread_gets_no_p_value():
    # 1.0 three times against 269/270 three times: a one-image gap on a 270-image test set.
    # Zero spread is no evidence of certainty; the bootstrap over test examples judges it
    # (tests/report/test_verdict.py), the t-test reports nothing rather than p = 0
    pair = paired_test("a", "b", {0: 1.0, 1: 1.0, 2: 1.0}, {0: 269 / 270, 1: 269 / 270, 2: 269 / 270})
    assert pair.p is None and pair.t is None and not pair.significant
    assert pair.mean_difference == pytest.approx(1 / 270)
    # equal gaps that differ only in their last bits are no spread either (scipy would give p ~ 1e-28)
    rounded = paired_test("a", "b", {0: 1.0, 1: 269 / 270, 2: 1.0},
                          {0: 269 / 270, 1: 268 / 270, 2: 269 / 270})
    assert rounded.p is None and not rounded.significant
    assert holm([None, 0.01]) == [None, pytest.approx(0.01)]


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01=0.03, max(0.03, 2*0.02=0.04)=0.04, max(0.04, 1*0.04)=0.04
    assert holm([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])
    # sorted 0.3, 0.5, 0.6 -> 3*0.3=0.9, max(0.9, 2*0.5=1.0)=1.0, max(1.0, 0.6)=1.0: monotone, capped
    assert holm([0.5, 0.3, 0.6]) == pytest.approx([1.0, 0.9, 1.0])
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_all_pairs_adjust_the_whole_family():
    by = {"x": {0: 0.90, 1: 0.91, 2: 0.92}, "y": {0: 0.50, 1: 0.52, 2: 0.53},
          "z": {0: 0.91, 1: 0.90, 2: 0.93}}
    pairs = all_pairs(by)
    assert [(p.a, p.b) for p in pairs] == [("x", "y"), ("x", "z"), ("y", "z")]
    raw = [p.p for p in pairs]
    assert [p.p_holm for p in pairs] == pytest.approx(holm(raw))
    assert pairs[0].significant and not pairs[1].significant


def test_t_interval_by_hand():
    assert t_half_width([0.5, 0.7]) == pytest.approx(12.7062 * 0.141421 / math.sqrt(2), rel=1e-4)
    assert t_half_width([0.5]) is None


def test_differences_equal_up_to_float32_rounding_have_no_spread_and_no_p_value():
    import numpy as np

    # accuracies as runs record them (float32): tuned 2 of 270 images above default on every seed
    default = {s: float(np.float32(k / 270)) for s, k in ((1, 260), (2, 258), (3, 261))}
    tuned = {s: float(np.float32(k / 270)) for s, k in ((1, 262), (2, 260), (3, 263))}
    pair = paired_test("tuned", "default", tuned, default)
    assert pair.p is None and pair.t is None and pair.mean_difference == pytest.approx(2 / 270)
