"""The two-level bootstrap behind the verdict: seeds, then test examples, paired per example.

Drawn once per report and shared by every table and plot of it; numpy and scipy only, so the
report needs no torch. The method: docs/report.md ("How the report computes its numbers").
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ftbench.run.errors import UserError

_CELLS_PER_CHUNK = 2_000_000  # replicates x examples drawn at once: bounds memory on large test sets
_CELLS_PER_COUNT = 200_000  # ... and counted at once: counts that stay in cache count twice as fast


@dataclass(frozen=True, eq=False)
class Evidence:
    """Per-example correctness of every run on one dataset split.

    ``correct[strategy][seed]`` is a boolean array aligned to ``index`` (the sorted example
    indices every run was tested on). ``left_out`` counts examples some run lacked, which
    ``align`` dropped so that every strategy is judged on the same examples.
    """

    index: np.ndarray
    correct: Mapping[str, Mapping[Hashable, np.ndarray]]
    left_out: int = 0

    def __post_init__(self) -> None:
        n = len(self.index)
        if n == 0 or not self.correct:
            raise ValueError("evidence needs at least one strategy and one test example")
        for strategy, runs in self.correct.items():
            if not runs:
                raise ValueError(f"strategy {strategy!r} has no runs")
            for seed, correct in runs.items():
                if np.shape(correct) != (n,):
                    raise ValueError(f"{strategy!r} seed {seed!r}: {np.shape(correct)} results "
                                     f"for {n} examples")

    @property
    def examples(self) -> int:
        return len(self.index)

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.correct)


def align(runs: Mapping[str, Mapping[Hashable, Mapping[str, np.ndarray]]]) -> Evidence:
    """Evidence from saved predictions: ``runs[strategy][seed]`` maps ``index``, ``label`` and
    ``pred`` to arrays, compared on the examples all runs have (the others counted in
    ``Evidence.left_out``); runs that label one example differently cannot be paired."""
    loaded: dict[str, dict[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for strategy, seeds in runs.items():
        for seed, arrays in seeds.items():
            index, label, pred = (np.asarray(arrays[k]).ravel() for k in ("index", "label", "pred"))
            if not len(index) == len(label) == len(pred):
                raise UserError(f"predictions of {strategy} seed {seed}: index, label and pred "
                                  "differ in length")
            if len(np.unique(index)) != len(index):
                raise UserError(f"predictions of {strategy} seed {seed}: an example index appears twice")
            order = np.argsort(index, kind="stable")
            loaded.setdefault(strategy, {})[seed] = (index[order], label[order], pred[order])
    every = [arrays for seeds in loaded.values() for arrays in seeds.values()]
    if not every:
        raise UserError("no predictions to compare: every strategy needs at least one tested run")
    shared = every[0][0]
    for index, _, _ in every[1:]:
        shared = np.intersect1d(shared, index, assume_unique=True)
    if len(shared) == 0:
        raise UserError("the runs' predictions share no test example: they come from different splits")
    union = np.unique(np.concatenate([index for index, _, _ in every]))
    reference = every[0][1][np.searchsorted(every[0][0], shared)]
    correct: dict[str, dict[Hashable, np.ndarray]] = {}
    for name, by_seed in loaded.items():
        for run, (indices, labels, preds) in by_seed.items():
            at = np.searchsorted(indices, shared)
            if not np.array_equal(labels[at], reference):
                raise UserError(f"predictions of {name} seed {run} give other labels to the same "
                                  "examples: the runs come from different splits and cannot be paired")
            correct.setdefault(name, {})[run] = preds[at] == labels[at]
    return Evidence(shared, correct, left_out=len(union) - len(shared))


@dataclass(frozen=True, eq=False)
class Replicates:
    """The bootstrap's replicate accuracies, strategies x resamples, at ``confidence``.

    ``accuracy`` resamples seeds and test examples; ``seeds_only`` and ``examples_only`` resample
    one source and hold the other as observed, from the same draws, so that each source's share
    of an interval's width can be told apart.
    """

    strategies: tuple[str, ...]
    observed: np.ndarray
    accuracy: np.ndarray
    seeds_only: np.ndarray
    examples_only: np.ndarray
    seeds: tuple[int, ...]
    examples: int
    confidence: float

    def row(self, strategy: str) -> int:
        return self.strategies.index(strategy)

    def subset(self, strategies: Sequence[str]) -> Replicates:
        """The same replicates, of ``strategies`` alone (in that order)."""
        at = [self.row(s) for s in strategies]
        return Replicates(tuple(strategies), self.observed[at], self.accuracy[at], self.seeds_only[at],
                          self.examples_only[at], tuple(self.seeds[i] for i in at), self.examples,
                          self.confidence)


def bootstrap(evidence: Evidence, resamples: int = 2000, seed: int = 0,
              confidence: float = 0.95) -> Replicates:
    """In each replicate, every strategy's seeds weighed at random (``_seed_weights``) and one
    resample of the test examples shared by all, as counts, so that one matrix product gives
    every run's accuracy on every resampled test set. A replicate adds the two deviations from
    the observed mean: the seeds' and the examples' (shrunk by ``_example_share``)."""
    resamples = int(resamples)  # checked by its callers (``choice.check``)
    rng = np.random.default_rng(seed)
    strategies = evidence.strategies
    runs = [np.asarray(list(evidence.correct[s].values()), dtype=np.float32) for s in strategies]
    correct = np.concatenate(runs)  # every run, strategy by strategy: runs x examples
    ends = np.cumsum([len(r) for r in runs])
    spans = list(zip(ends - [len(r) for r in runs], ends, strict=True))
    n = evidence.examples
    per_run = correct.mean(axis=1, dtype=np.float64)
    # a strategy's accuracy on a resample is its runs' mean, and the mean is linear: one row per
    # strategy (its runs' mean on each example) goes into the product, not one per run
    per_example = np.stack([correct[lo:hi].mean(axis=0, dtype=np.float64) for lo, hi in spans])
    share = [_example_share(r) for r in runs]
    shape = (len(strategies), resamples)
    accuracy, seeds_only, examples_only = np.empty(shape), np.empty(shape), np.empty(shape)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        on_resample = _on_resamples(per_example, rng.integers(0, n, size=(b, n), dtype=np.int32))
        cols = slice(start, start + b)
        for i, (lo, hi) in enumerate(spans):
            mean = per_run[lo:hi].mean()
            seeds_only[i, cols] = _seed_weights(rng, hi - lo, b, confidence) @ per_run[lo:hi]
            on_examples = on_resample[i]
            examples_only[i, cols] = on_examples if share[i] == 1 else mean + share[i] * (on_examples - mean)
            accuracy[i, cols] = examples_only[i, cols] + (seeds_only[i, cols] - mean)  # exact for one seed
    observed = np.array([per_run[lo:hi].mean() for lo, hi in spans])
    return Replicates(strategies, observed, accuracy, seeds_only, examples_only,
                      tuple(len(r) for r in runs), n, confidence)


def _on_resamples(per_example: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Every strategy's accuracy on each resample of the test examples (strategies x resamples):
    ``drawn`` holds each resample's example indices, counted per example, then one product."""
    b, n = drawn.shape
    out = np.empty((per_example.shape[0], b))
    rows = max(1, _CELLS_PER_COUNT // n)
    offsets = (np.arange(rows, dtype=np.int32) * n)[:, None]  # row r counts into bins r*n ... r*n + n-1
    for start in range(0, b, rows):
        block = drawn[start:start + rows]
        k = len(block)
        counts = np.bincount((block + offsets[:k]).ravel(), minlength=k * n).reshape(k, n)
        out[:, start:start + k] = per_example @ counts.T.astype(np.float64) / n
    return out


def _seed_weights(rng: np.random.Generator, k: int, b: int, confidence: float) -> np.ndarray:
    """``b`` replicates of weights over ``k`` runs (b x k, each row summing to 1): centred normal
    weights widened by the Student factor t(k − 1)/z, the width of a t-interval over seeds.

    Exact Student tails (a χ² draw per replicate) were tried: t(2) has no variance, and far in
    its tails, where the joint bounds of many strategies look, it left a 3-seed comparison of
    nine strategies nothing to decide however far apart they lay.
    """
    if k < 2:
        return np.full((b, k), 1.0)
    z = rng.standard_normal((b, k))
    z -= z.mean(axis=1, keepdims=True)
    quantile = (1 + confidence) / 2
    factor = stats.t.ppf(quantile, k - 1) / special.ndtri(quantile)
    return 1 / k + factor * z / math.sqrt(k * (k - 1))


def _example_share(correct: np.ndarray) -> float:
    """The factor on a strategy's example-level deviations (``correct``: runs x examples of 0/1).

    The seed level keeps the runs' whole spread, and with it each run's luck on its own examples
    (the seed-by-example interaction), which the example resample would count again (Owen 2007):
    its deviations shrink by that share, the analysis-of-variance estimate, never more than the
    seed level carries. One seed: no seed level, nothing to shrink.
    """
    k, n = correct.shape
    if k < 2 or n < 2:
        return 1.0
    runs_var = float(np.var(correct.mean(axis=1, dtype=np.float64), ddof=1))
    per_example = correct.mean(axis=0, dtype=np.float64)
    examples_var = float(np.var(per_example)) / n  # the mean's variance under the example resample
    if examples_var <= 0:
        return 1.0
    within = float(np.var(correct, axis=0, ddof=1, dtype=np.float64).mean())
    interaction = max(0.0, within - runs_var) / (1 - 1 / n) / (k * n)
    counted = min(runs_var / k, interaction)
    return math.sqrt(max(0.0, examples_var - counted) / examples_var)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval (percentiles of the replicates)."""

    estimate: float
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def _two_sided(estimate: float, values: np.ndarray, confidence: float) -> Interval:
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(estimate), float(low), float(high))


def interval(replicates: Replicates, strategy: str) -> Interval:
    """A strategy's mean test accuracy with its two-sided interval over seeds and test examples,
    within [0, 1] (a few seeds' widened spread can reach past 100%)."""
    i = replicates.row(strategy)
    both = _two_sided(replicates.observed[i], replicates.accuracy[i], replicates.confidence)
    return Interval(both.estimate, max(0.0, both.low), min(1.0, both.high))


def difference(replicates: Replicates, a: str, b: str) -> Interval:
    """A − B in accuracy, with its two-sided interval: both strategies weighed by the same
    example resample in each replicate, so the interval carries only what differs between them."""
    i, j = replicates.row(a), replicates.row(b)
    return _two_sided(replicates.observed[i] - replicates.observed[j],
                      replicates.accuracy[i] - replicates.accuracy[j], replicates.confidence)


def joint_differences(replicates: Replicates, pairs: Sequence[tuple[str, str]]) -> list[Interval]:
    """A − B for each pair, observed ± c of its bootstrap standard deviations (``max_t``): the
    intervals hold for all the pairs at once ("did tuning change anything?")."""
    if not pairs:
        return []
    rows = np.array([[replicates.row(a), replicates.row(b)] for a, b in pairs])
    observed = replicates.observed[rows[:, 0]] - replicates.observed[rows[:, 1]]
    spread, c = max_t(replicates.accuracy[rows[:, 0]] - replicates.accuracy[rows[:, 1]], observed,
                      replicates.confidence)
    return [Interval(float(d), float(d - c * s), float(d + c * s))
            for d, s in zip(observed, spread, strict=True)]


def max_t(drawn: np.ndarray, observed: np.ndarray, confidence: float) -> tuple[np.ndarray, float]:
    """Each difference's bootstrap standard deviation (``drawn``: differences x replicates), and
    c, the ``confidence`` quantile over replicates of the largest standardised deviation of any
    of them: a band of ± c standard deviations holds for all at once (a difference that never
    moves has no width)."""
    spread = drawn.std(axis=1)
    standardised = np.divide(np.abs(drawn - observed[:, None]), spread[:, None],
                             out=np.zeros_like(drawn), where=spread[:, None] > 0)
    return spread, float(np.quantile(standardised.max(axis=0), confidence))


def resolution(examples: int, accuracy: float, confidence: float = 0.95) -> float:
    """The half-width of the Wilson score interval of an accuracy measured on ``examples`` test
    examples: how finely the test set measures one strategy's accuracy (Wilson: the normal
    interval shrinks to zero at 100%, where a too-easy task most needs the warning)."""
    if examples < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"resolution of {examples} examples at accuracy {accuracy}")
    z = float(special.ndtri((1 + confidence) / 2))
    spread = accuracy * (1 - accuracy) / examples + z * z / (4 * examples * examples)
    return z * math.sqrt(spread) / (1 + z * z / examples)
