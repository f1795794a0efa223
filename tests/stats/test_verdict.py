"""The verdict against the best: hand-checked cases, and error rates on synthetic predictions whose
truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ftbench.run.failures import UserError
from ftbench.stats.verdict import (
    CANNOT_RANK,
    EQUIVALENT,
    UNDECIDED,
    WORSE,
    Evidence,
    align,
    bootstrap,
    difference,
    interval,
    judge,
    resolution,
)
from tests.helpers import synthetic


def missing(examples: int, *wrong: int) -> np.ndarray:
    correct = np.ones(examples, dtype=bool)
    correct[list(wrong)] = False
    return correct


# Done when 1: a one-image gap on 270 images


def test_a_one_image_gap_on_270_images_is_not_called_different_and_the_cheaper_is_recommended():
    # 1.0 on every seed against 269/270 on every seed, each seed missing a different image
    evidence = Evidence(np.arange(270), {
        "full": {s: missing(270) for s in range(3)},
        "probe": {s: missing(270, 10 * s) for s in range(3)},
    })
    verdict = judge(evidence, {"full": 100.0, "probe": 1.0}, margin=0.01)
    assert verdict["probe"].to_best == pytest.approx(-1 / 270)
    assert verdict["probe"].word == EQUIVALENT and verdict["full"].word == EQUIVALENT
    assert -0.01 < verdict["probe"].to_best_low < -1 / 270
    assert verdict.recommendation.pick == "probe" and verdict.recommendation.best == "full"
    gap = verdict.difference("probe", "full")
    assert 0.0 in gap and gap.low < -1 / 270  # an interval, not p = 0
    # 270 images cannot rank strategies at 100%: the report says so, with what to change
    assert verdict.cannot_rank and any(CANNOT_RANK in note for note in verdict.notes)


def test_the_same_image_missed_on_every_seed_is_undecided_not_worse():
    # One image every seed gets wrong could be a failure mode 1-2% of new images share (the exact
    # binomial bound of 1 in 270 is 1.8%): more than a one-point margin, so not equivalent, yet no
    # evidence of worse. The recommendation stays with the best and says what would decide it.
    evidence = Evidence(np.arange(270), {
        "full": {s: missing(270) for s in range(3)},
        "probe": {s: missing(270, 7) for s in range(3)},
    })
    verdict = judge(evidence, {"full": 100.0, "probe": 1.0}, margin=0.01)
    assert verdict["probe"].word == UNDECIDED
    assert verdict.recommendation.pick == "full"
    (decide,) = verdict.recommendation.undecided
    assert decide.strategy == "probe" and decide.examples > 270 and decide.seeds is None  # seeds agree
    assert "test examples" in decide.text()


# Done when 2: error rates on synthetic predictions


@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_equal_strategies_are_rarely_called_worse_and_a_clearly_worse_one_rarely_equivalent():
    """Nine strategies of equal true accuracy and a tenth 3 points below, 5 seeds (seed noise of
    one point) and 2,000 test examples, over 200 draws. Among the nine, some strategy is called
    worse than the best by more than the 1-point margin in at most 5% of draws (+2% Monte Carlo
    error); the tenth is called equivalent in at most 20%."""
    rng = np.random.default_rng(2024)
    truth = {**{f"equal{i}": 0.85 for i in range(9)}, "below": 0.82}
    draws, false_worse, false_equivalent, equal_found_equivalent = 200, 0, 0, 0.0
    for draw in range(draws):
        verdict = judge(synthetic(rng, truth, seeds=5, examples=2000), {}, margin=0.01, resamples=300,
                        seed=draw)
        false_worse += any(j.word == WORSE for j in verdict.strategies if j.strategy != "below")
        false_equivalent += verdict["below"].word == EQUIVALENT
        equal_found_equivalent += np.mean([j.word == EQUIVALENT for j in verdict.strategies
                                           if j.strategy != "below"])
    assert false_worse / draws <= 0.05 + 0.02
    assert false_equivalent / draws <= 0.20
    # and the verdict is not silent: equal strategies are found equivalent in some draws (rarely:
    # ten lower bounds that hold jointly, at 1 − 0.05/10 each, cost power at one margin)
    assert equal_found_equivalent / draws > 0.02


def test_a_strategy_on_the_margin_is_rarely_called_equivalent():
    # true difference exactly -margin: "equivalent" would be wrong, at most ~5% of the time
    rng = np.random.default_rng(7)
    draws = 150
    called = sum(judge(synthetic(rng, {"best": 0.85, "edge": 0.84}, seed_sd=0.005), {}, margin=0.01,
                       resamples=300, seed=draw)["edge"].word == EQUIVALENT for draw in range(draws))
    assert called / draws <= 0.05 + 0.03


def test_more_test_examples_decide_more_equal_strategies():
    # evidence is rewarded: the same truth, four times the test set, more strategies called equivalent
    rng = np.random.default_rng(11)
    truth = {f"s{i}": 0.85 for i in range(5)}

    def share(examples: int) -> float:
        return float(np.mean([[j.word == EQUIVALENT for j in judge(
            synthetic(rng, truth, examples=examples, seed_sd=0.002, seeds=5), {}, resamples=300,
            seed=d).strategies]
            for d in range(20)]))

    small, large = share(500), share(2000)
    assert large > 2 * small and large > small + 0.15


# hand-checkable cases


def test_an_accuracy_interval_contains_the_observed_mean_over_seeds():
    evidence = Evidence(np.arange(10), {"a": {0: missing(10, 0, 1), 1: missing(10, 2), 2: missing(10)}})
    replicates = bootstrap(evidence, resamples=500)
    acc = interval(replicates, "a")
    assert acc.estimate == pytest.approx((0.8 + 0.9 + 1.0) / 3)
    assert acc.estimate in acc and acc.high == 1.0 and acc.low < acc.estimate


def test_paired_differences_share_the_example_resample():
    # identical runs differ by exactly 0 in every replicate, and a copy with one more error
    # never leads its original: both are weighed by the same resampled examples
    rng = np.random.default_rng(3)
    runs = {s: rng.random(200) < 0.8 for s in range(3)}
    copy = {s: c.copy() for s, c in runs.items()}
    worse = {s: c & (np.arange(200) != np.flatnonzero(c)[0]) for s, c in runs.items()}
    evidence = Evidence(np.arange(200), {"a": {0: runs[0]}, "b": {0: copy[0]}, "c": {0: worse[0]}})
    replicates = bootstrap(evidence, resamples=1000, seed=1)
    same = difference(replicates, "a", "b")
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    assert np.all(replicates.accuracy[2] <= replicates.accuracy[0])
    gap = difference(replicates, "c", "a")
    assert gap.estimate == pytest.approx(-1 / 200) and gap.high == 0.0
    assert judge(evidence, {}).difference("a", "b") == same


def test_three_seeds_far_apart_get_the_width_of_students_t():
    # 0.7, 0.8, 0.9, each run's correct examples inside the next's: the seed moves the accuracy,
    # chance on the examples does not. A resample of three seeds never strays past the seeds seen;
    # the two-sided 95% t-interval of a mean of three reaches t(2; 0.975) * sd / sqrt(3) = 0.2484
    # below it, and so does the bootstrap's 2.5% quantile
    seeds = {s: np.arange(1000) < n for s, n in enumerate((700, 800, 900))}
    replicates = bootstrap(Evidence(np.arange(1000), {"a": seeds}), resamples=4000)
    assert replicates.observed[0] == pytest.approx(0.8)
    below = 0.8 - np.quantile(replicates.accuracy[0], 0.025)
    assert below == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3), rel=0.1)
    assert np.std(replicates.examples_only[0]) < 0.015  # the test examples alone move it little
    acc = interval(replicates, "a")
    assert acc.low < 0.7 and acc.high == 1.0  # beyond the seeds seen, and never past 100%


def test_chance_on_the_examples_is_not_counted_again_as_seed_noise():
    # 20 runs that differ only by which examples each gets right by chance (no seed effect): the
    # mean's spread is the binomial sqrt(p(1 - p) / (runs * examples)), which the example
    # resample already carries; resampling the runs as they are would add it a second time
    rng = np.random.default_rng(0)
    runs = {k: rng.random(2000) < 0.8 for k in range(20)}
    replicates = bootstrap(Evidence(np.arange(2000), {"a": runs}), resamples=2000)
    assert np.std(replicates.accuracy[0]) == pytest.approx(math.sqrt(0.8 * 0.2 / (20 * 2000)), rel=0.15)


def test_the_resolution_is_the_wilson_half_width():
    # z = 1.95996: z * sqrt(0.25/100 + z^2/40000) / (1 + z^2/100) = 0.09617
    assert resolution(100, 0.5) == pytest.approx(0.09617, abs=1e-5)
    ci = stats.binomtest(267, 270).proportion_ci(method="wilson")
    assert resolution(270, 267 / 270) == pytest.approx((ci.high - ci.low) / 2)
    # at 100% it stays open: z^2 / (2n + 2z^2) on 270 images
    assert resolution(270, 1.0) == pytest.approx(1.95996**2 / (540 + 2 * 1.95996**2), rel=1e-5)


def test_no_warning_where_the_task_can_rank():
    rng = np.random.default_rng(5)
    evidence = synthetic(rng, {"a": 0.70, "b": 0.60, "c": 0.50}, examples=20_000, seed_sd=0.002)
    verdict = judge(evidence, {"a": 3.0, "b": 2.0, "c": 1.0}, resamples=300)
    assert [j.word for j in verdict.strategies] == [EQUIVALENT, WORSE, WORSE]
    assert verdict.recommendation.pick == "a" and verdict.recommendation.undecided == ()
    assert not verdict.cannot_rank and verdict.notes == ()
    assert verdict.resolution < 0.01
    # a margin of 0 asks for the best itself: a clear leader is shown to be it
    strict = judge(evidence, {"a": 3.0, "b": 2.0, "c": 1.0}, margin=0.0, resamples=300)
    assert [j.word for j in strict.strategies] == [EQUIVALENT, WORSE, WORSE]
    assert strict["a"].to_best_low == 0.0 and strict.recommendation.pick == "a"


def test_a_margin_finer_than_the_test_set_is_said():
    evidence = Evidence(np.arange(100), {"a": {0: np.arange(100) < 80}, "b": {0: np.arange(100) < 78}})
    verdict = judge(evidence, {}, margin=0.01, resamples=300)
    assert verdict.resolution > 0.07
    assert any("margin (0.0100) is below" in note for note in verdict.notes)
    assert any("fewer than 2 seeds" in note for note in verdict.notes)


def test_the_cheaper_undecided_ones_come_with_what_would_decide_them():
    rng = np.random.default_rng(9)
    evidence = synthetic(rng, {"big": 0.85, "small": 0.845}, examples=400, seed_sd=0.004)
    verdict = judge(evidence, {"big": 10.0, "small": 1.0}, resamples=500)
    assert verdict["small"].word == UNDECIDED
    assert verdict.recommendation.pick != "small"
    decide = next(d for d in verdict.recommendation.undecided if d.strategy == "small")
    assert decide.scale > 1  # more of both
    assert decide.examples is None or decide.examples > 400
    assert decide.seeds is None or decide.seeds > 3
    assert decide.text().startswith("small: about")


def test_unpriced_strategies_are_never_picked():
    evidence = Evidence(np.arange(50), {"a": {0: missing(50), 1: missing(50)},
                                        "b": {0: missing(50), 1: missing(50)}})
    recommendation = judge(evidence, {"a": None, "b": 5.0}).recommendation
    assert recommendation.pick == "b" and recommendation.unpriced == ("a",)


def test_the_same_seed_gives_the_same_verdict():
    evidence = synthetic(np.random.default_rng(1), {"a": 0.8, "b": 0.79})
    first, again = judge(evidence, {}, seed=4, resamples=300), judge(evidence, {}, seed=4, resamples=300)
    assert first.strategies == again.strategies
    assert not np.array_equal(bootstrap(evidence, 300, seed=5).accuracy, first.replicates.accuracy)


# from saved predictions


def test_align_pairs_runs_on_the_examples_all_of_them_have():
    labels = np.array([3, 1, 4, 1, 5])
    a = {"index": np.array([10, 11, 12, 13, 14]), "label": labels, "pred": np.array([3, 1, 0, 1, 5])}
    shuffled = [4, 0, 3, 2]  # example 11 missing, order scrambled
    b = {"index": a["index"][shuffled], "label": labels[shuffled], "pred": np.array([5, 0, 1, 4])}
    evidence = align({"a": {0: a}, "b": {0: b}})
    assert evidence.index.tolist() == [10, 12, 13, 14] and evidence.left_out == 1
    assert evidence.correct["a"][0].tolist() == [True, False, True, True]
    assert evidence.correct["b"][0].tolist() == [False, True, True, True]
    notes = judge(evidence, {}, resamples=100).notes
    assert any("1 test examples missing from some run were left out" in note for note in notes)


def test_align_refuses_runs_from_different_splits():
    a = {"index": np.arange(3), "label": np.array([0, 1, 2]), "pred": np.array([0, 1, 2])}
    other = {**a, "label": np.array([0, 2, 2])}
    with pytest.raises(UserError, match="different splits"):
        align({"a": {0: a}, "b": {0: other}})
    with pytest.raises(UserError, match="share no test example"):
        align({"a": {0: a}, "b": {0: {**a, "index": np.arange(3, 6)}}})
    with pytest.raises(UserError, match="appears twice"):
        align({"a": {0: {**a, "index": np.array([0, 0, 1])}}})


@pytest.mark.parametrize(("option", "value"), [("margin", -0.01), ("margin", 1.5), ("confidence", 1.0),
                                               ("confidence", 0.3), ("resamples", 0), ("resamples", 2.5)])
def test_bad_settings_name_the_setting(option, value):
    evidence = Evidence(np.arange(5), {"a": {0: missing(5)}})
    with pytest.raises(UserError, match=f"report.{option}={value}"):
        judge(evidence, {}, **{option: value})


def test_ties_share_the_lead_whatever_the_input_order():
    # one identical run each: every replicate ties, and each strategy leads half of it
    runs = {0: np.random.default_rng(0).random(300) < 0.8}
    for order in (("a", "b"), ("b", "a")):
        evidence = Evidence(np.arange(300), {name: {s: c.copy() for s, c in runs.items()} for name in order})
        verdict = judge(evidence, {"a": 1.0, "b": 1.0}, resamples=200)
        assert verdict.recommendation.leaders == ("a", "b") and verdict.recommendation.best == "a"
        assert [j.best_share for j in verdict.strategies] == pytest.approx([0.5, 0.5])
