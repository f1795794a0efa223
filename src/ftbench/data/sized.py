"""The number of items of a dataset, checked rather than assumed.

torch's ``Dataset`` declares no ``__len__`` (an iterable dataset need not have one); every
dataset ftbench builds is a map-style one that has it, and ``size_of`` says so to the type
checker by checking it.
"""

from __future__ import annotations

from collections.abc import Sized

from torch.utils.data import Dataset


def size_of(dataset: Dataset) -> int:
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} has no length; allowed: a map-style dataset")
    return len(dataset)
