"""What the report's tables and plots read of a run's record, as typed accessors: a field renamed
in the schema fails the type checker here instead of leaving a column silently empty.
"""

from __future__ import annotations

from collections.abc import Callable

from ftbench.run.fields import number
from ftbench.run.schema import Record

Reading = Callable[[Record], float | None]


def test_acc(record: Record) -> float | None:
    return record.metrics.test_acc


def shift_mean(record: Record) -> float | None:
    """Mean accuracy over the corruptions of the shifted test sets."""
    return record.metrics.shift_mean


def shift_at(name: str) -> Reading:
    """Accuracy on the shifted test set ``name``."""
    return lambda record: (record.metrics.shift or {}).get(name)


def train_flops(record: Record) -> float | None:
    return record.cost.train_flops


def train_seconds(record: Record) -> float | None:
    return record.cost.train_seconds


def setting(*keys: str) -> Reading:
    """A numeric setting of the free-form config (``setting("strategy", "lr_decay")``)."""
    return lambda record: number(record.config_at(*keys))
