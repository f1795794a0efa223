"""Which search trial is the best: one rule for the tuned protocol, which retrains that
trial's configuration, and for its report, which names it, so the two never disagree."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def best_trial(trials: Iterable[T], status: Callable[[T], object], val_acc: Callable[[T], object],
               number: Callable[[T], int]) -> T | None:
    """Of the trials that completed with a validation accuracy, the most accurate; of equally
    accurate ones the earliest (the lowest trial ``number``); None when none completed. A
    pruned, failed or diverged trial is never the best, whatever value it reported."""

    def accuracy(trial: T) -> float | None:
        value = val_acc(trial)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return float(value)

    done = [t for t in trials if status(t) == "completed" and accuracy(t) is not None]
    return max(done, key=lambda t: (accuracy(t), -number(t)), default=None)
