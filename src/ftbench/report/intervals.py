"""Accuracy intervals for the report's tables, from both sources of noise.

The verdict's own draw where it covers the runs (one interval per strategy in every table, a
suite's included); elsewhere (the shifted accuracy) the same two-level bootstrap over those runs
alone; Student's t over seeds for runs without predictions, which the table marks (docs/report.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ftbench.report import judgement
from ftbench.report.collect import Run
from ftbench.report.readings import Reading, shift_mean, test_acc
from ftbench.stats import bootstrap

BOOTSTRAP, SEEDS_ONLY = "seeds and test examples", "seeds only"
NOT_CORRUPTIONS = ("mean", "ood_root")  # shifted sets outside the mean over corruptions
_RUNS = "runs"  # the one "strategy" of an interval's evidence


@dataclass(frozen=True)
class Bounds:
    """A mean accuracy over ``n`` seeds, its interval, and what the interval resamples."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str | None  # BOOTSTRAP, SEEDS_ONLY, or None: no interval (one seed, no predictions)

    def error_bar(self) -> tuple[float, float]:
        """(below, above) the mean, for an error bar: zero where there is no interval."""
        if self.low is None or self.high is None:
            return 0.0, 0.0
        return max(0.0, self.mean - self.low), max(0.0, self.high - self.mean)

    def text(self) -> str:
        """``0.9850 [0.9712, 0.9941] (n=3)``; ‡ marks an interval over seeds only."""
        spread = "" if self.low is None or self.high is None else f" [{self.low:.4f}, {self.high:.4f}]"
        return f"{self.mean:.4f}{spread} (n={self.n})" + (" ‡" if self.method == SEEDS_ONLY else "")


def of_runs(root: Path, runs: Sequence[Run], choice: Mapping, read: Reading = test_acc,
            drawn=None, name: str | None = None) -> Bounds | None:
    """The mean of ``read`` (test or mean shifted accuracy) over the completed ``runs`` (one per
    seed), with its interval at ``choice``'s confidence (``judgement.settings``): the test
    accuracy's as the verdict's bootstrap drew it (``drawn``: a ``verdict.Verdict``, the runs as
    ``name``) when it rests on exactly these runs, so that a strategy has one interval in every
    table; else bootstrapped where every run kept the predictions behind it, else Student's t."""
    measured = [(r, v) for r in runs if r.completed and (v := read(r.result)) is not None]
    if not measured:
        return None
    kept, values = [r for r, _ in measured], [v for _, v in measured]
    replicates = drawn.replicates if drawn is not None and read is test_acc else None
    if replicates is not None and name in replicates.strategies and \
            replicates.seeds[replicates.row(name)] == len(values):
        shared = drawn.interval(name)
        return Bounds(statistics.fmean(values), shared.low, shared.high, len(values), BOOTSTRAP)
    found = _evidence(root, kept, read)
    if found is not None:
        drawn = bootstrap.interval(bootstrap.bootstrap(found, resamples=choice["resamples"],
                                                       confidence=choice["confidence"]), _RUNS)
        return Bounds(statistics.fmean(values), drawn.low, drawn.high, len(kept), BOOTSTRAP)
    return over_seeds(values, choice["confidence"])


def over_seeds(values: Sequence[float], confidence: float = 0.95) -> Bounds | None:
    """The Student-t interval of the mean of ``values`` (none from one value), within [0, 1]: an
    accuracy's interval from a few seeds can reach past either end."""
    if not values:
        return None
    mean, n = statistics.fmean(values), len(values)
    if n < 2:
        return Bounds(mean, None, None, n, None)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return Bounds(mean, max(0.0, mean - half), min(1.0, mean + half), n, SEEDS_ONLY)


def _corruptions(run: Run) -> list[str]:
    return [k for k in run.result.metrics.shift or {} if k not in NOT_CORRUPTIONS]


def _evidence(root: Path, runs: list[Run], read: Reading) -> bootstrap.Evidence | None:
    """Every run's per-example correctness behind ``read``, or None unless all runs have it."""
    if len({r.result.seed for r in runs}) != len(runs):
        return None  # the evidence is keyed by seed
    if read is test_acc:
        return _split(root, runs, "test")
    if read is not shift_mean:
        return None
    keys = _corruptions(runs[0])
    if not keys or any(sorted(_corruptions(r)) != sorted(keys) for r in runs):
        return None
    per_set = [e for key in keys if (e := _split(root, runs, key)) is not None]
    if len(per_set) != len(keys) or any(not np.array_equal(e.index, per_set[0].index) for e in per_set):
        return None
    seeds = per_set[0].correct[_RUNS]
    share = {seed: np.mean([e.correct[_RUNS][seed] for e in per_set], axis=0) for seed in seeds}
    return bootstrap.Evidence(per_set[0].index, {_RUNS: share})


def _split(root: Path, runs: list[Run], split: str) -> bootstrap.Evidence | None:
    found, missing = judgement.evidence(root, {_RUNS: runs}, split)
    if found is None or missing or len(found.correct[_RUNS]) != len(runs):
        return None
    return found
