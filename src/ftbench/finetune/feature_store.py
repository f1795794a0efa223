"""The feature store on disk: cached backbone features that outlive the run, keyed by content
(``ftbench.finetune.features.features_key``)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from ftbench.run.atomic import save_tensors
from ftbench.run.hashing import tensors_digest

log = logging.getLogger("ftbench")


class DiskFeatureStore:
    """Features on disk, keyed by content, so later runs on the same frozen backbone and data
    (other seeds, other head-only strategies) skip the backbone entirely.

    Each file holds a digest of its tensors, checked on every read together with the labels
    and the number of items: a damaged or truncated file is recomputed (with a warning), never
    trained on. The labels served are always the data set's own.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str, labels: torch.Tensor) -> TensorDataset | None:
        """The stored features of ``labels``' items, or None if absent or damaged."""
        from safetensors import SafetensorError, safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                recorded = (f.metadata() or {}).get("digest")
                features, stored_labels = f.get_tensor("features"), f.get_tensor("labels")
            intact = (recorded == _digest(features, stored_labels) and features.ndim == 2
                      and len(features) == len(labels)
                      and torch.equal(stored_labels, labels))
        except (SafetensorError, OSError, KeyError, RuntimeError, ValueError):
            intact = False
        if not intact:
            log.warning("feature store: %s is damaged or does not match its data; computing the "
                        "features again", path)
            return None
        return TensorDataset(features, labels)

    def save(self, key: str, features: TensorDataset) -> None:
        tensors = {"features": features.tensors[0], "labels": features.tensors[1]}
        save_tensors(self.path(key), tensors, metadata={"digest": _digest(*tensors.values())})


def _digest(features: torch.Tensor, labels: torch.Tensor) -> str:
    return tensors_digest([("features", features), ("labels", labels)])
