"""A run's config as one flat mapping of dotted keys to typed leaves.

W&B's parallel-coordinates and scatter panels, and the report's grouping, compare runs key by
key: ``strategy.lr_decay`` must be a number of its own, not a field inside a nested dict. A
node's ``name`` is the node itself (``strategy: discriminative``), as a W&B sweep agent sets
it (``strategy=discriminative strategy.lr_decay=2.6``), so runs started either way line up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"strategy": {"name": "gradual", "lr": 0.01}}`` -> ``{"strategy": "gradual", "strategy.lr": 0.01}``.

    Lists stay lists (``optimizer.betas``); numbers, strings, booleans and None keep their type.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if isinstance(value.get("name"), str):
                flat[path] = value["name"]
            flat.update(flatten({k: v for k, v in value.items() if k != "name"}, f"{path}."))
        else:
            flat[path] = value
    return flat
