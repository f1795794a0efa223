"""A run's config as one flat mapping of dotted keys to typed leaves.

W&B's parallel-coordinates and scatter panels, and the report's grouping, compare runs key by
key: ``strategy.lr_decay`` must be a number of its own, not a field inside a nested dict.
``leaves`` keeps every path as it is (the report reads values back by path); ``flatten``, for
W&B, names a node by its ``name`` (``strategy: discriminative``), as a W&B sweep agent sets it
(``strategy=discriminative strategy.lr_decay=2.6``), so runs started either way line up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def leaves(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """Every leaf by its dotted path: ``{"strategy": {"name": "gradual", "lr": 0.01}}`` ->
    ``{"strategy.name": "gradual", "strategy.lr": 0.01}``.

    Lists stay lists (``optimizer.betas``); numbers, strings, booleans and None keep their type.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def flatten(config: Mapping) -> dict[str, Any]:
    """The leaves with each node named by its ``name``: ``{"strategy": {"name": "gradual",
    "lr": 0.01}}`` -> ``{"strategy": "gradual", "strategy.lr": 0.01}``."""
    return {path.removesuffix(".name") if path.endswith(".name") and isinstance(value, str) else path: value
            for path, value in leaves(config).items()}
